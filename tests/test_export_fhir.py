"""The FHIR R4 export: every Bundle validates (fhir.resources R4B), codes, round trips, access."""

from __future__ import annotations

import io
import json
import uuid
from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from fhir.resources.R4B.bundle import Bundle
from hypothesis import given
from hypothesis import strategies as st

from workup import reads
from workup.exports import fhir
from workup.exports.coding import CodingFileError, coding_for, parse_coding, read_coding_file
from workup.models import AuditEvent, Patient, StepRecord, Workup
from workup.protocols.cache import get_spec
from workup.records import writes

from .conftest import ROOT, record

DEMO = ROOT / "fixtures" / "demo.json"
CODES = ROOT / "fixtures" / "codes" / "mastocytosis-v1.json"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
TRYPTASE_STEPS = ("serum_tryptase", "acute_tryptase")
# Codes that workup-protocol.md section (f) marks UNVERIFIED, PARTIAL or "do not use".
NEVER_EXPORTED = (
    "312581009",
    "38221",
    "121873004",
    "260385009",
    "21370-2",
    "54448-2",
    "396487001",
    "86273004",
    "38263-0",
    "88519-4",
)
# Required bindings that fhir.resources does not check itself.
OBSERVATION_STATUS = {"registered", "preliminary", "final", "amended"}
ACTIVITY_STATUS = {
    "not-started",
    "scheduled",
    "in-progress",
    "on-hold",
    "completed",
    "cancelled",
    "stopped",
    "unknown",
    "entered-in-error",
}


def fhir_url(workup, query: str = "") -> str:
    return f"/workups/{workup.pk}/fhir/{query}"


def get_bundle(client, workup, query: str = "") -> dict:
    response = client.get(fhir_url(workup, query))
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("application/fhir+json")
    return json.loads(response.content)


def resources(bundle: dict, resource_type: str) -> list[dict]:
    return [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type
    ]


def codes(concept: dict) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for c in concept.get("coding", [])}


def check_bundle(bundle: dict) -> None:
    """Valid R4B, every reference resolves inside the Bundle, required codes, no diagnosis."""
    parsed = Bundle.model_validate(bundle)
    assert parsed.type == "collection"
    full_urls = {e["fullUrl"] for e in bundle["entry"]}
    text = json.dumps(bundle)
    for reference in _references(bundle):
        assert reference in full_urls, reference
    kinds = {e["resource"]["resourceType"] for e in bundle["entry"]}
    assert kinds <= {"Patient", "Observation", "Procedure", "CarePlan"}
    assert "Condition" not in text
    for code in NEVER_EXPORTED:
        assert f'"{code}"' not in text, code
    for observation in resources(bundle, "Observation"):
        assert observation["status"] in OBSERVATION_STATUS
    for procedure in resources(bundle, "Procedure"):
        assert procedure["status"] == "completed"
    (plan,) = resources(bundle, "CarePlan")
    assert (plan["status"], plan["intent"]) == ("active", "plan")
    for activity in plan["activity"]:
        assert activity["detail"]["status"] in ACTIVITY_STATUS


def _references(value):
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference":
                yield item
            else:
                yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


@pytest.fixture
def demo(protocol_v2):
    call_command("load_demo", str(DEMO), stdout=io.StringIO())
    return get_user_model().objects


def test_every_demo_workup_bundle_validates(client, demo):
    client.force_login(demo.get(username="admin"))
    workups = list(Workup.objects.all())
    assert len(workups) == 15  # demo.json: 17 patients, 2 of them referred without a workup
    for workup in workups:
        for query in ("", "?identifiers=1"):
            check_bundle(get_bundle(client, workup, query))


def test_tryptase_values_units_and_dates_round_trip_exactly(client, demo):
    client.force_login(demo.get(username="admin"))
    checked = 0
    for workup in Workup.objects.all():
        bundle = get_bundle(client, workup)
        exported = sorted(
            (
                json.dumps(o["valueQuantity"]["value"]),
                o["effectiveDateTime"],
                next(c["code"] for c in o["code"]["coding"] if c["code"].endswith("value_ng_ml")),
            )
            for o in resources(bundle, "Observation")
            if (LOINC, "21582-2") in codes(o["code"])
        )
        recorded = sorted(
            (
                json.dumps(r.values["value_ng_ml"]),
                r.performed_on.isoformat(),
                f"{r.step.code}.value_ng_ml",
            )
            for r in StepRecord.objects.filter(workup=workup, step__code__in=TRYPTASE_STEPS)
        )
        assert exported == recorded
        parsed = Bundle.model_validate(bundle)
        for entry in parsed.entry:
            observation = entry.resource
            if observation.__resource_type__ != "Observation":
                continue
            if any(c.code == "21582-2" for c in observation.code.coding):
                quantity = observation.valueQuantity
                assert (quantity.unit, quantity.system, quantity.code) == ("ng/mL", UCUM, "ng/mL")
                assert isinstance(quantity.value, Decimal)
                checked += 1
    # Every tryptase result of the demo: 10 serum values and one acute value (N-1007).
    assert (
        checked == StepRecord.objects.filter(step__code__in=TRYPTASE_STEPS).count() == 12
    )  # every tryptase of the demo file


def test_every_tryptase_result_is_exported_baseline_and_acute_told_apart(
    client, clinician_a, workup_a
):
    record(workup_a, clinician_a, "serum_tryptase", {"value_ng_ml": 12.4, "is_baseline": True})
    record(
        workup_a,
        clinician_a,
        "serum_tryptase",
        {"value_ng_ml": 9.0, "is_baseline": False},
        performed_on=date(2026, 1, 2),
    )
    record(
        workup_a,
        clinician_a,
        "acute_tryptase",
        {"value_ng_ml": 31.7, "hours_after_onset": 2},
        performed_on=date(2025, 12, 30),
    )
    client.force_login(clinician_a)
    bundle = get_bundle(client, workup_a)
    check_bundle(bundle)
    tryptase = {
        o["effectiveDateTime"]: o
        for o in resources(bundle, "Observation")
        if (LOINC, "21582-2") in codes(o["code"])
    }
    assert sorted(tryptase) == ["2025-12-30", "2026-01-02", "2026-01-15"]
    baseline, repeat, acute = tryptase["2026-01-15"], tryptase["2026-01-02"], tryptase["2025-12-30"]
    assert baseline["valueQuantity"]["value"] == 12.4
    assert baseline["component"][0]["valueBoolean"] is True
    assert repeat["component"][0]["valueBoolean"] is False
    assert "Baseline serum tryptase" in baseline["note"][0]["text"]
    assert "Acute (event) serum tryptase" in acute["note"][0]["text"]
    local = {c["code"] for c in acute["code"]["coding"] if c["system"] != LOINC}
    assert local == {"acute_tryptase.value_ng_ml"}
    hours = acute["component"][0]["valueQuantity"]
    assert (hours["value"], hours["system"], hours["code"]) == (2, UCUM, "h")


def test_kit_is_coded_with_loinc_and_a_local_answer(client, demo):
    client.force_login(demo.get(username="clinician"))
    workup = Workup.objects.get(patient__mrn="N-1004")
    bundle = get_bundle(client, workup)
    (kit,) = [o for o in resources(bundle, "Observation") if (LOINC, "55201-8") in codes(o["code"])]
    answer = kit["valueCodeableConcept"]["coding"][0]
    recorded = StepRecord.objects.get(workup=workup, step__code="kit_d816v_peripheral_blood")
    assert answer["code"] == recorded.values["result"]
    assert answer["system"].startswith("urn:workup:protocol:mastocytosis")
    assert not answer["system"].startswith(SNOMED)
    qualifiers = {c["code"]["coding"][0]["code"] for c in kit["component"]}
    assert "kit_d816v_peripheral_blood.method" in qualifiers


def test_biopsies_are_procedures_skin_with_snomed_marrow_local(client, demo):
    client.force_login(demo.get(username="clinician"))
    bundle = get_bundle(client, Workup.objects.get(patient__mrn="N-1006"))
    procedures = {p["code"]["text"]: p for p in resources(bundle, "Procedure")}
    assert len(procedures) == 2
    skin = next(p for title, p in procedures.items() if title.startswith("Skin biopsy"))
    marrow = next(p for title, p in procedures.items() if title.startswith("Bone marrow"))
    assert (SNOMED, "240977001") in codes(skin["code"])
    assert {system for system, _ in codes(marrow["code"])} == {"urn:workup:protocol:mastocytosis"}
    skin_url = next(e["fullUrl"] for e in bundle["entry"] if e["resource"] is skin)
    findings = [o for o in resources(bundle, "Observation") if o.get("partOf")]
    assert any(o["partOf"] == [{"reference": skin_url}] for o in findings)
    # Marrow KIT is LOINC 55201-8 too (section (f): "and BM KIT").
    marrow_kit = [o for o in findings if (LOINC, "55201-8") in codes(o["code"])]
    assert len(marrow_kit) <= 1


def test_the_care_plan_carries_states_reasons_and_sources(client, clinician_a, workup_a):
    record(workup_a, clinician_a, "serum_tryptase", {"value_ng_ml": 32.0, "is_baseline": True})
    workup_a.refresh_from_db()
    writes.set_mark(
        workup=workup_a,
        step_code="dexa",
        status="declined",
        reason="Patient declined today",
        user=clinician_a,
        expected_version=None,
    )
    writes.set_mark(
        workup=workup_a,
        step_code="cbc_diff",
        status="ordered",
        reason="Drawn, pending",
        user=clinician_a,
        expected_version=None,
    )
    client.force_login(clinician_a)
    bundle = get_bundle(client, workup_a, "?identifiers=1")
    check_bundle(bundle)
    (plan,) = resources(bundle, "CarePlan")
    assert "does not make or state a diagnosis" in plan["description"]
    activities = {a["detail"]["code"]["text"]: a for a in plan["activity"]}
    state = {
        title: a["detail"]["statusReason"]["coding"][0]["code"] for title, a in activities.items()
    }
    spec = get_spec(workup_a.protocol)
    marrow = activities[spec.step("bone_marrow_biopsy").title]["detail"]
    assert (marrow["status"], state[spec.step("bone_marrow_biopsy").title]) == (
        "not-started",
        "suggested",
    )
    reasons = {c["coding"][0]["code"]: c["text"] for c in marrow["reasonCode"]}
    assert "R12" in reasons and "Source: [NCCN18" in reasons["R12"]
    dexa = activities[spec.step("dexa").title]["detail"]
    assert (
        dexa["status"] == "cancelled" and "Patient declined today" in dexa["statusReason"]["text"]
    )
    assert activities[spec.step("cbc_diff").title]["detail"]["status"] == "scheduled"
    tryptase = activities[spec.step("serum_tryptase").title]
    assert tryptase["detail"]["status"] == "completed" and tryptase["outcomeReference"]
    assert any(n["text"].startswith("[NCCN18]") for n in plan["note"])

    # Pseudonymised: mark reasons are free text and stay out.
    plain = json.dumps(get_bundle(client, workup_a))
    assert "Patient declined today" not in plain


def test_not_indicated_steps_are_do_not_perform(client, clinician_a, site_a):
    from .factories import PatientFactory

    child = PatientFactory(site=site_a, birth_date=date(2020, 1, 1), created_by=clinician_a)
    workup = writes.open_workup(patient=child, user=clinician_a)
    record(workup, clinician_a, "physical_exam", {"hepatomegaly": False, "splenomegaly": False})
    client.force_login(clinician_a)
    (plan,) = resources(get_bundle(client, workup), "CarePlan")
    marrow = next(a for a in plan["activity"] if a["detail"]["code"]["text"].startswith("Bone"))
    assert marrow["detail"]["doNotPerform"] is True
    assert marrow["detail"]["statusReason"]["coding"][0]["code"] == "not_indicated"
    assert "R10" in {c["coding"][0]["code"] for c in marrow["detail"]["reasonCode"]}


def test_the_patient_carries_identifiers_only_when_asked(client, clinician_a, patient_a, workup_a):
    client.force_login(clinician_a)
    (patient,) = resources(get_bundle(client, workup_a), "Patient")
    assert "name" not in patient and "birthDate" not in patient
    assert [i["value"] for i in patient["identifier"]][0].startswith("north-")
    assert patient["gender"] == "male"
    (patient,) = resources(get_bundle(client, workup_a, "?identifiers=1"), "Patient")
    mrn = patient["identifier"][0]
    assert mrn["value"] == patient_a.mrn and mrn["type"]["coding"][0]["code"] == "MR"
    assert mrn["system"] == "urn:workup:site:north:mrn"
    assert patient["name"][0]["family"] == patient_a.family_name
    assert patient["birthDate"] == patient_a.birth_date.isoformat()


def test_another_sites_user_gets_404(client, clinician_b, workup_a):
    client.force_login(clinician_b)
    assert client.get(fhir_url(workup_a)).status_code == 404
    assert client.get(fhir_url(workup_a, "?identifiers=1")).status_code == 404
    assert AuditEvent.objects.order_by("-id").first().action == AuditEvent.Action.DENIED


def test_a_viewer_exports_without_identifiers_unless_configured(
    client, viewer_a, patient_a, workup_a, settings
):
    client.force_login(viewer_a)
    assert patient_a.mrn not in json.dumps(get_bundle(client, workup_a))
    settings.EXPORT_VIEWER_IDENTIFIERS = False
    assert client.get(fhir_url(workup_a, "?identifiers=1")).status_code == 403
    settings.EXPORT_VIEWER_IDENTIFIERS = True
    assert patient_a.mrn in json.dumps(get_bundle(client, workup_a, "?identifiers=1"))


def test_every_fhir_export_is_audited(client, clinician_a, workup_a):
    client.force_login(clinician_a)
    get_bundle(client, workup_a, "?identifiers=1")
    event = AuditEvent.objects.order_by("-id").first()
    assert (event.action, event.user, event.workup_id) == ("export", clinician_a, workup_a.pk)
    assert "with identifiers" in event.summary


def _without_moments(value):
    """The Bundle less the moment it was made (timestamp, issued): all else must match."""
    if isinstance(value, dict):
        return {
            k: _without_moments(v) for k, v in value.items() if k not in ("timestamp", "issued")
        }
    if isinstance(value, list):
        return [_without_moments(v) for v in value]
    return value


def export_ndjson(**options) -> list[dict]:
    out = io.StringIO()
    call_command("export_workups", site="north", format="fhir-ndjson", stdout=out, **options)
    text = out.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize("query", ["", "?identifiers=1"])
def test_the_bulk_ndjson_holds_each_workups_bundle_line_by_line(client, demo, query):
    published = reads.current_protocol("mastocytosis")
    north = Workup.objects.filter(patient__site__code="north", protocol=published).order_by("pk")
    assert north.count() >= 5
    bundles = export_ndjson(identifiers=bool(query), validate=True)
    client.force_login(demo.get(username="admin"))
    expected = [get_bundle(client, workup, query) for workup in north]
    assert [b["id"] for b in bundles] == [b["id"] for b in expected]
    for bundle, one in zip(bundles, expected, strict=True):
        check_bundle(bundle)
        assert _without_moments(bundle) == _without_moments(one)
    text = json.dumps(bundles)
    for patient in Patient.objects.filter(workups__in=north):
        assert (patient.mrn in text) == bool(query), patient.mrn
    assert "south-" not in text


def test_the_bulk_ndjson_is_audited_and_refuses_csv_options(demo):
    export_ndjson()
    event = AuditEvent.objects.order_by("-id").first()
    assert event.action == "export" and event.changes["format"] == "fhir-ndjson"
    assert "as FHIR NDJSON from the command line" in event.summary
    with pytest.raises(CommandError, match="--dictionary goes with --format csv"):
        export_ndjson(dictionary="/tmp/never-written.csv")
    with pytest.raises(CommandError, match="--validate goes with --format fhir-ndjson"):
        call_command("export_workups", site="north", validate=True, stdout=io.StringIO())


def test_an_invalid_bundle_stops_the_bulk_export_with_a_message_not_a_traceback(demo, monkeypatch):
    # A builder bug is simulated by a Bundle the R4B models refuse (a field FHIR lacks).
    real_build = fhir.build_bundle
    built = []

    def build_one_broken(*args, **kwargs):
        bundle = real_build(*args, **kwargs)
        built.append(bundle)
        if len(built) == 2:
            bundle["notAFhirElement"] = True
        return bundle

    monkeypatch.setattr(fhir, "build_bundle", build_one_broken)
    out = io.StringIO()
    with pytest.raises(CommandError, match="is not valid FHIR R4") as raised:
        call_command(
            "export_workups", site="north", format="fhir-ndjson", validate=True, stdout=out
        )
    assert built[1]["entry"][-1]["resource"]["identifier"][0]["value"] in str(raised.value)
    assert len(out.getvalue().splitlines()) == 1  # the first workup's line, then it stopped


def test_building_and_validating_bundles_never_changes_the_shared_codes(client, demo):
    """Concepts are made once per coding and shared by every Bundle: none may change them."""
    import copy

    spec = get_spec(reads.current_protocol("mastocytosis"))
    coding = coding_for(spec)
    export_ndjson(identifiers=True, validate=True)
    before = copy.deepcopy(coding._concepts)
    assert before  # the export made some
    client.force_login(demo.get(username="admin"))
    for workup in Workup.objects.all():
        check_bundle(get_bundle(client, workup, "?identifiers=1"))
    export_ndjson(validate=True)
    assert {k: v for k, v in coding._concepts.items() if k in before} == before


@given(st.text(max_size=80))
def test_resource_ids_are_the_uuid5_of_their_names(name):
    assert fhir.stable_id(name) == str(uuid.uuid5(fhir._NAMESPACE, name))


def test_a_bundle_line_survives_integers_beyond_64_bits():
    line = fhir.ndjson_line({"resourceType": "Bundle", "value": 2**70, "text": "é"})
    assert line.endswith("\n") and "\n" not in line[:-1]
    assert json.loads(line) == {"resourceType": "Bundle", "value": 2**70, "text": "é"}


def test_the_coding_file_matches_the_protocol(spec):
    coding = read_coding_file(CODES, spec)
    assert coding_for(spec).local_system == coding.local_system
    tryptase = coding.field_codes("serum_tryptase", "value_ng_ml")
    assert [(c.system, c.code) for c in tryptase] == [(LOINC, "21582-2")]
    assert coding.ucum("ng/mL") == "ng/mL" and coding.ucum("×10⁹/L") == "10*9/L"
    assert coding.step("bone_marrow_biopsy").procedure == ()


def test_the_coding_file_refuses_unverified_codes(spec):
    data = json.loads(CODES.read_text(encoding="utf-8"))
    data["steps"]["bone_marrow_biopsy"]["procedure"] = [
        {
            "system": SNOMED,
            "code": "312581009",
            "display": "Bone marrow biopsy",
            "status": "UNVERIFIED",
        }
    ]
    with pytest.raises(CodingFileError, match="only VERIFIED"):
        parse_coding(data, spec=spec)
    data = json.loads(CODES.read_text(encoding="utf-8"))
    data["steps"]["serum_tryptase"]["fields"]["no_such_field"] = {"codes": []}
    with pytest.raises(CodingFileError, match="no such field"):
        parse_coding(data, spec=spec)


def test_a_codes_file_for_other_content_gives_local_codes_not_an_error(
    client, clinician_a, patient_a, protocol_admin, caplog
):
    """A site that authors its own v2 (not the shipped one) still exports, with local codes."""
    from workup.models import Protocol
    from workup.protocols import versions

    v1 = Protocol.objects.get(code="mastocytosis", version=1)
    own_v2 = versions.new_draft(protocol=v1, user=protocol_admin)
    versions.publish(protocol=own_v2, user=protocol_admin)  # retires v1
    workup = writes.open_workup(patient=patient_a, user=clinician_a)
    assert workup.protocol_id == own_v2.pk
    record(workup, clinician_a, "serum_tryptase", {"value_ng_ml": 32.5, "is_baseline": True})
    client.force_login(clinician_a)

    bundle = get_bundle(client, workup)

    check_bundle(bundle)
    codings = [c for o in resources(bundle, "Observation") for c in o["code"]["coding"]]
    assert codings and all(c["system"].startswith("urn:workup:protocol") for c in codings)
    assert "does not match mastocytosis v2: exporting local codes only" in caplog.text
