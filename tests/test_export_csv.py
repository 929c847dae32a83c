"""The CSV export: columns, data dictionary, identifiers, pseudonyms, filters, streaming, audit."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from workup import reads
from workup.exports import csv_export
from workup.exports.coding import coding_for
from workup.exports.loading import iter_exports
from workup.exports.pseudonym import patient_pseudonym
from workup.models import AuditEvent, Workup
from workup.protocols.cache import get_spec
from workup.records import writes

from .conftest import ROOT, record
from .factories import PatientFactory

EXPORT = "/workups/export.csv"
DICTIONARY = "/workups/export-dictionary.csv"
DEMO = ROOT / "fixtures" / "demo.json"


def read_csv(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    return header, [dict(zip(header, row, strict=True)) for row in reader]


def streamed(response) -> str:
    assert response.status_code == 200, response.status_code
    assert response.streaming
    return b"".join(response.streaming_content).decode("utf-8")


def dictionary_columns(text: str) -> list[str]:
    return [row["column"] for row in csv.DictReader(io.StringIO(text))]


@pytest.fixture
def as_clinician(client, clinician_a):
    client.force_login(clinician_a)
    return client


def last_event() -> AuditEvent:
    return AuditEvent.objects.order_by("-id").first()


def test_the_data_dictionary_describes_every_column_in_order(as_clinician, workup_a):
    for query in ("", "?identifiers=1"):
        header, rows = read_csv(streamed(as_clinician.get(EXPORT + query)))
        dictionary = as_clinician.get(DICTIONARY + query)
        assert dictionary.status_code == 200
        assert dictionary_columns(dictionary.content.decode()) == header
        assert len(rows) == 1


def test_every_column_of_the_demo_export_has_a_label_type_and_meaning(tmp_path, protocol_v2):
    call_command("load_demo", str(DEMO), stdout=io.StringIO())
    path = tmp_path / "dictionary.csv"
    out = io.StringIO()
    call_command("export_workups", site="north", dictionary=str(path), stdout=out)
    header, rows = read_csv(out.getvalue())
    dictionary = list(csv.DictReader(path.open(encoding="utf-8")))
    assert [d["column"] for d in dictionary] == header
    assert len(rows) == Workup.objects.filter(patient__site__code="north").count() == 12
    spec = get_spec(reads.current_protocol())
    for step in spec.steps:
        for suffix in ["state", "date", "records", *(f.code for f in step.fields)]:
            assert f"{step.code}.{suffix}" in header
    by_column = {d["column"]: d for d in dictionary}
    for entry in dictionary:
        assert entry["label"] and entry["type"], entry
    tryptase = by_column["serum_tryptase.value_ng_ml"]
    assert (tryptase["type"], tryptase["unit"], tryptase["ucum"]) == ("decimal", "ng/mL", "ng/mL")
    assert tryptase["allowed_values"] == "0..2000"
    assert by_column["cbc_diff.platelets_10e9_l"]["ucum"] == "10*9/L"
    assert "positive=Positive" in by_column["kit_d816v_peripheral_blood.result"]["allowed_values"]
    assert "suggested=Suggested next step" in by_column["dexa.state"]["allowed_values"]
    assert "calc.bst" in by_column and "calc.rema_score" in by_column


def test_values_are_exported_as_recorded(as_clinician, clinician_a, workup_a):
    record(workup_a, clinician_a, "serum_tryptase", {"value_ng_ml": 32.5, "is_baseline": True})
    record(
        workup_a,
        clinician_a,
        "kit_d816v_peripheral_blood",
        {"result": "positive", "method": "ddpcr", "high_sensitivity": True, "vaf_percent": 0.12},
        performed_on=date(2026, 1, 20),
    )
    _, rows = read_csv(streamed(as_clinician.get(EXPORT)))
    row = rows[0]
    assert row["serum_tryptase.value_ng_ml"] == "32.5"
    assert row["serum_tryptase.is_baseline"] == "true"
    assert row["serum_tryptase.state"] == "done"
    assert row["serum_tryptase.date"] == "2026-01-15"
    assert row["kit_d816v_peripheral_blood.result"] == "positive"
    assert row["kit_d816v_peripheral_blood.vaf_percent"] == "0.12"
    assert row["kit_d816v_peripheral_blood.date"] == "2026-01-20"
    assert row["calc.bst"] == "32.5"
    assert row["bone_marrow_biopsy.state"] == "suggested"
    assert row["dexa.records"] == "0" and row["dexa.date"] == ""
    assert row["protocol.code"] == "mastocytosis" and row["protocol.version"] == "1"


def test_a_repeatable_step_shows_the_result_the_rules_use_and_counts_them_all(
    as_clinician, clinician_a, workup_a
):
    record(workup_a, clinician_a, "serum_tryptase", {"value_ng_ml": 12, "is_baseline": True})
    record(
        workup_a,
        clinician_a,
        "serum_tryptase",
        {"value_ng_ml": 40.0, "is_baseline": False},
        performed_on=date(2026, 2, 1),
    )
    _, rows = read_csv(streamed(as_clinician.get(EXPORT)))
    row = rows[0]
    assert row["serum_tryptase.records"] == "2"
    assert (row["serum_tryptase.value_ng_ml"], row["serum_tryptase.date"]) == ("12", "2026-01-15")


def test_identifiers_appear_only_when_asked(as_clinician, patient_a, workup_a):
    text = streamed(as_clinician.get(EXPORT))
    header, rows = read_csv(text)
    assert "patient.mrn" not in header and "workup.id" not in header
    assert patient_a.mrn not in text and patient_a.family_name not in text
    assert rows[0]["patient.pseudonym"].startswith("north-")

    header, rows = read_csv(streamed(as_clinician.get(EXPORT + "?identifiers=1")))
    assert rows[0]["patient.mrn"] == patient_a.mrn
    assert rows[0]["patient.family_name"] == patient_a.family_name
    assert rows[0]["patient.birth_date"] == patient_a.birth_date.isoformat()
    assert rows[0]["workup.id"] == str(workup_a.pk)


def test_a_viewer_exports_only_pseudonymised_data_unless_configured(
    client, viewer_a, patient_a, workup_a, settings
):
    client.force_login(viewer_a)
    _, rows = read_csv(streamed(client.get(EXPORT)))
    assert len(rows) == 1 and "patient.mrn" not in rows[0]

    settings.EXPORT_VIEWER_IDENTIFIERS = False
    response = client.get(EXPORT + "?identifiers=1")
    assert response.status_code == 403
    assert last_event().action == AuditEvent.Action.DENIED

    settings.EXPORT_VIEWER_IDENTIFIERS = True
    _, rows = read_csv(streamed(client.get(EXPORT + "?identifiers=1")))
    assert rows[0]["patient.mrn"] == patient_a.mrn


def test_the_worklist_offers_identifiers_only_to_those_allowed(
    client, clinician_a, viewer_a, workup_a, settings
):
    client.force_login(clinician_a)
    page = client.get(reverse("worklist")).content.decode()
    assert 'action="/workups/export.csv"' in page
    assert 'formaction="/workups/export-dictionary.csv"' in page
    assert 'name="identifiers"' in page

    client.force_login(viewer_a)
    page = client.get(reverse("worklist")).content.decode()
    assert 'action="/workups/export.csv"' in page
    assert 'name="identifiers"' not in page
    settings.EXPORT_VIEWER_IDENTIFIERS = True
    assert 'name="identifiers"' in client.get(reverse("worklist")).content.decode()


def test_the_worklist_export_keeps_the_step_filter(as_clinician, workup_a):
    page = as_clinician.get(reverse("worklist") + "?step=history").content.decode()
    assert '<input type="hidden" name="step" value="history">' in page


def test_the_pseudonym_is_stable_per_site_and_not_the_id():
    first = patient_pseudonym("secret", "north", 42)
    assert first == patient_pseudonym("secret", "north", 42)
    assert first.startswith("north-") and len(first) == len("north-") + 16
    assert patient_pseudonym("secret", "south", 42).removeprefix("south-") != first.removeprefix(
        "north-"
    )
    assert patient_pseudonym("secret", "north", 43) != first
    assert patient_pseudonym("another secret", "north", 42) != first


def test_exports_give_the_same_pseudonym_each_time(as_clinician, patient_a, workup_a):
    _, first = read_csv(streamed(as_clinician.get(EXPORT)))
    _, second = read_csv(streamed(as_clinician.get(EXPORT)))
    assert first[0]["patient.pseudonym"] == second[0]["patient.pseudonym"]
    assert first[0]["workup.pseudonym"] == second[0]["workup.pseudonym"]
    assert first[0]["patient.pseudonym"] != first[0]["workup.pseudonym"]


def test_the_export_keeps_the_worklist_filters(as_clinician, clinician_a, site_a, workup_a):
    other = PatientFactory(site=site_a, family_name="Zeller", mrn="Z-1", created_by=clinician_a)
    other_workup = writes.open_workup(patient=other, user=clinician_a)
    record(other_workup, clinician_a, "history", {"mediator_symptoms": False})

    _, rows = read_csv(streamed(as_clinician.get(EXPORT)))
    assert len(rows) == 2
    # Step filter (query string): open workups where the step is suggested.
    _, rows = read_csv(streamed(as_clinician.get(EXPORT + "?step=history&identifiers=1")))
    assert [r["workup.id"] for r in rows] == [str(workup_a.pk)]
    # Search (session), as the worklist keeps it.
    as_clinician.post(reverse("worklist_search"), {"q": "Zel"})
    _, rows = read_csv(streamed(as_clinician.get(EXPORT + "?identifiers=1")))
    assert [r["patient.mrn"] for r in rows] == ["Z-1"]
    event = last_event()
    assert event.changes["search"] == "Zel" and event.changes["workups"] == 1


def test_another_sites_workups_never_appear(client, clinician_b, site_b, patient_a, workup_a):
    mine = writes.open_workup(patient=PatientFactory(site=site_b, mrn="S-9"), user=clinician_b)
    client.force_login(clinician_b)
    header, rows = read_csv(streamed(client.get(EXPORT + "?identifiers=1")))
    assert [r["workup.id"] for r in rows] == [str(mine.pk)]
    assert client.get(EXPORT + "?site=north").status_code == 404


@pytest.mark.parametrize(
    "query, status",
    [
        ("?step=no_such_step", 400),
        ("?step=his%00tory", 400),
        ("?site=no%00rth", 404),
        ("?site=nowhere", 404),
        ("?protocol=masto%00cytosis", 404),
        ("?version=99999999999", 404),
        ("?version=1%00", 404),
        ("?protocol=mastocytosis&version=7", 404),
    ],
)
def test_bad_parameters_are_refused_never_widened(as_clinician, workup_a, query, status):
    assert as_clinician.get(EXPORT + query).status_code == status


def test_a_user_without_a_site_exports_an_empty_file(client, protocol_admin, workup_a):
    client.force_login(protocol_admin)
    header, rows = read_csv(streamed(client.get(EXPORT)))
    assert header and rows == []
    assert client.get(EXPORT + "?identifiers=1").status_code == 403


def test_every_export_is_audited(as_clinician, clinician_a, workup_a):
    before = AuditEvent.objects.count()
    streamed(as_clinician.get(EXPORT + "?identifiers=1"))
    event = last_event()
    assert (event.action, event.user, event.object_type) == ("export", clinician_a, "workup")
    assert event.changes["identifiers"] is True and event.changes["workups"] == 1
    assert event.changes["sites"] == ["north"] and event.changes["format"] == "csv"
    as_clinician.get(DICTIONARY)
    event = last_event()
    assert event.action == "export" and event.changes["format"] == "csv-dictionary"
    assert AuditEvent.objects.count() == before + 2


def test_the_export_loads_workups_in_chunks_with_a_fixed_number_of_queries(
    clinician_a, site_a, workup_a
):
    for index in range(4):
        patient = PatientFactory(site=site_a, created_by=clinician_a)
        workup = writes.open_workup(patient=patient, user=clinician_a)
        for day in range(1, 2 + index):
            record(workup, clinician_a, "cbc_diff", {"hemoglobin_g_dl": 12.0}, date(2026, 1, day))
    spec = get_spec(reads.current_protocol())
    with CaptureQueriesContext(connection) as queries:
        items = list(iter_exports(Workup.objects.all(), spec, chunk_size=2))
    assert len(items) == 5
    # 3 chunks (2, 2, 1) of 3 queries each (workups, records, marks), and one empty chunk.
    assert len(queries) == 3 * 3 + 1
    assert sorted(len(i.records) for i in items) == [0, 1, 2, 3, 4]


def test_the_view_streams_the_file(as_clinician, workup_a):
    response = as_clinician.get(EXPORT)
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="workups-mastocytosis')


def test_the_command_writes_a_site_and_is_audited(tmp_path, clinician_a, patient_a, workup_a):
    out = io.StringIO()
    call_command("export_workups", site="north", identifiers=True, stdout=out)
    _, rows = read_csv(out.getvalue())
    assert [r["patient.mrn"] for r in rows] == [patient_a.mrn]
    event = last_event()
    assert event.action == "export" and event.username.startswith("manage.py export_workups")
    assert event.changes["identifiers"] is True

    out = io.StringIO()
    call_command("export_workups", site="north", protocol="mastocytosis", version=1, stdout=out)
    assert patient_a.mrn not in out.getvalue()
    with pytest.raises(CommandError, match="No site"):
        call_command("export_workups", site="nowhere", stdout=io.StringIO())
    with pytest.raises(CommandError, match="No protocol"):
        call_command("export_workups", site="north", version=99, stdout=io.StringIO())


def test_text_that_a_spreadsheet_would_run_is_neutralised():
    assert csv_export.csv_value("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert csv_export.csv_value("@SUM") == "'@SUM"
    assert csv_export.csv_value(-2.5) == "-2.5"
    assert csv_export.csv_value("lumbar spine") == "lumbar spine"
    assert csv_export.csv_value(True) == "true" and csv_export.csv_value(None) == ""


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-1+2", "'-1+2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tsecret", "'\tsecret"),
        ("\rsecret", "'\rsecret"),
        ("-2.5", "-2.5"),
        ("+1e3", "+1e3"),
        ("lumbar spine", "lumbar spine"),
        ("", ""),
        (12, 12),
    ],
)
def test_every_cell_the_csv_writer_writes_is_neutralised(cell, written):
    assert csv_export.neutralised(cell) == written
    line = "".join(csv_export.stream_rows(["h"], [[cell]])).split("\r\n", 1)[1]
    assert next(csv.reader(io.StringIO(line))) == [str(written)]


def test_a_hostile_name_in_the_export_and_its_dictionary_is_neutralised(
    as_clinician, patient_a, workup_a
):
    patient_a.family_name = '=HYPERLINK("http://x")'
    patient_a.save()
    header, rows = read_csv(streamed(as_clinician.get(EXPORT + "?identifiers=1")))
    assert rows[0]["patient.family_name"] == '\'=HYPERLINK("http://x")'
    dictionary = as_clinician.get(DICTIONARY + "?identifiers=1")
    for text in (
        streamed(as_clinician.get(EXPORT + "?identifiers=1")),
        dictionary_text(dictionary),
    ):
        for row in csv.reader(io.StringIO(text)):
            assert not any(c[:1] in ("=", "+", "@", "\t", "\r") for c in row), row


def dictionary_text(response) -> str:
    return streamed(response) if response.streaming else response.content.decode()


def test_columns_come_from_the_protocol(spec):
    columns = csv_export.columns(spec, coding_for(spec), identifiers=False)
    names = [c.name for c in columns]
    assert len(names) == len(set(names))
    assert names.index("history.state") < names.index("history.mediator_symptoms")
    assert not any(n.startswith("calc.") and n[5:] == "adult" for n in names)


def test_the_export_finds_the_patients_the_worklist_finds_accents_ignored(
    as_clinician, clinician_a, site_a
):
    """One search for both: the export mirrors the worklist it is started from."""
    for family in ("Müller", "Muller", "Meyer"):
        patient = PatientFactory(site=site_a, family_name=family, created_by=clinician_a)
        writes.open_workup(patient=patient, user=clinician_a)
    as_clinician.post("/search/", {"q": "mull"})

    worklist = as_clinician.get("/").content.decode()
    _, rows = read_csv(streamed(as_clinician.get(EXPORT, {"identifiers": "1"})))
    exported = {row["patient.family_name"] for row in rows}
    assert exported == {"Müller", "Muller"}
    assert all(name in worklist for name in exported) and "Meyer" not in worklist


def test_the_export_step_filter_tells_suggested_from_not_yet(
    as_clinician, clinician_a, site_a, protocol_v2
):
    waiting = writes.open_workup(
        patient=PatientFactory(site=site_a, created_by=clinician_a), user=clinician_a
    )
    record(waiting, clinician_a, "history", {"mediator_symptoms": True, "anaphylaxis": False})
    suggested = writes.open_workup(
        patient=PatientFactory(site=site_a, created_by=clinician_a), user=clinician_a
    )
    record(suggested, clinician_a, "skin_exam", {"typical_lesions": True})

    def exported(step):
        query = {"step": step, "identifiers": "1"}
        _, rows = read_csv(streamed(as_clinician.get(EXPORT, query)))
        return {int(row["workup.id"]) for row in rows}

    assert exported("bone_marrow_biopsy") == {suggested.pk}  # R9 (adult, lesions)
    assert exported("not_yet:bone_marrow_biopsy") == {waiting.pk}
    assert as_clinician.get(EXPORT, {"step": "later:bone_marrow_biopsy"}).status_code == 400
