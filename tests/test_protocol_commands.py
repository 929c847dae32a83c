"""Protocol commands: export_protocol, check_protocol, run_protocol_cases,
import_protocol_cases, diff_protocol, and load_protocol with versions."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from workup import reads
from workup.models import Protocol, ProtocolCase, Rule, loading_version
from workup.protocols import versions

from .conftest import PROTOCOL_FIXTURE, VIGNETTES

pytestmark = pytest.mark.django_db

SHIPPED = json.loads(PROTOCOL_FIXTURE.read_text())


def run(*args, **options) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def fails(*args, **options) -> tuple[str, CommandError]:
    out = StringIO()
    with pytest.raises(CommandError) as error:
        call_command(*args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue(), error.value


@pytest.fixture
def v1(db):
    return Protocol.objects.get(code="mastocytosis", version=1)


@pytest.fixture
def draft(v1, protocol_admin):
    return versions.new_draft(protocol=v1, user=protocol_admin)


def write(tmp_path, rows, name="protocol.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(rows, indent=1, ensure_ascii=False))
    return str(path)


def shipped_copy():
    return json.loads(PROTOCOL_FIXTURE.read_text())


def row(rows, model, code, step=None):
    return next(
        r
        for r in rows
        if r["model"] == model
        and r["fields"].get("code") == code
        and (step is None or r["fields"]["step"][-1] == step)
    )


# export / load / export ---------------------------------------------------------------


def test_export_load_export_is_byte_identical(tmp_path, v1):
    first = tmp_path / "first.json"
    run("export_protocol", "mastocytosis", version=1, output=str(first))
    assert json.loads(first.read_text()) == SHIPPED  # the same content as the shipped file

    # A fresh database: the version's rows are gone (no workup uses it).
    with loading_version(v1):
        Protocol.objects.filter(pk=v1.pk).delete()
    assert not Protocol.objects.filter(code="mastocytosis").exists()
    assert "Loaded protocol mastocytosis v1" in run("load_protocol", str(first))

    second = tmp_path / "second.json"
    run("export_protocol", "mastocytosis", version=1, output=str(second))
    assert second.read_bytes() == first.read_bytes()


def test_a_draft_round_trips_too_and_stays_a_draft(tmp_path, draft):
    Rule.objects.filter(protocol=draft, code="R12").update(
        condition={"and": [{"var": "calc.adult"}, {">": [{"var": "calc.bst_adj"}, 25]}]}
    )
    first = run("export_protocol", "mastocytosis", version=2)
    path = write(tmp_path, json.loads(first))
    draft.delete()
    run("load_protocol", path)
    assert Protocol.objects.get(code="mastocytosis", version=2).status == "draft"
    assert run("export_protocol", "mastocytosis", version=2) == first


def test_export_writes_the_case_library_in_the_vignette_shape(tmp_path):
    cases = tmp_path / "cases.json"
    run(
        "export_protocol",
        "mastocytosis",
        version=1,
        output=str(tmp_path / "p.json"),
        cases=str(cases),
    )
    exported = {c["id"]: c for c in json.loads(cases.read_text())}
    for vignette in json.loads(VIGNETTES.read_text()):
        assert {k: v for k, v in exported[vignette["id"]].items() if k in vignette} == vignette


def test_export_of_an_unknown_version_names_the_known_ones():
    _, error = fails("export_protocol", "mastocytosis", version=7)
    assert "No protocol mastocytosis v7" in str(error) and "v1" in str(error)


def test_loading_a_newer_published_version_retires_the_older(tmp_path, draft, v1):
    rows = json.loads(run("export_protocol", "mastocytosis", version=2))
    rows[0]["fields"]["status"] = "published"
    draft.delete()
    run("load_protocol", write(tmp_path, rows))
    v1.refresh_from_db()
    assert v1.status == "retired"
    assert reads.current_protocol().version == 2
    loaded = Rule.objects.get(protocol__version=2, code="R12")
    assert loaded.history.latest().history_change_reason == "loaded from protocol.json"


def test_a_changed_fixture_is_refused_for_a_version_with_workups(tmp_path, workup_a):
    rows = shipped_copy()
    row(rows, "workup.rule", "R12")["fields"]["condition"] = {">": [{"var": "calc.bst_adj"}, 25]}
    _, error = fails("load_protocol", write(tmp_path, rows))
    assert "workup(s) are pinned" in str(error)
    # and loading the identical file again is fine
    assert "already loaded" in run("load_protocol", str(PROTOCOL_FIXTURE))


# check_protocol -----------------------------------------------------------------------


def check(tmp_path, rows, **options) -> tuple[str, CommandError]:
    out, error = fails("check_protocol", write(tmp_path, rows), **options)
    assert error.returncode == 1
    return out


def test_the_shipped_fixture_and_its_cases_pass_check_protocol():
    out = run("check_protocol", str(PROTOCOL_FIXTURE), cases=str(VIGNETTES))
    assert "mastocytosis v1 is valid" in out and "cases of" in out


def test_check_protocol_touches_no_database(tmp_path, django_assert_num_queries):
    with django_assert_num_queries(0):
        run("check_protocol", str(PROTOCOL_FIXTURE))


def test_check_protocol_finds_unknown_codes_with_their_location(tmp_path):
    rows = shipped_copy()
    row(rows, "workup.rule", "R12")["fields"]["condition"] = {
        ">": [{"var": "serum_tryptase.basal"}, 20]
    }
    row(rows, "workup.rule", "R3")["fields"]["target_step"] = ["mastocytosis", 1, "physical"]
    row(rows, "workup.fielddefinition", "rema_score")["fields"]["calculation"] = "rema"
    out = check(tmp_path, rows)
    assert "rule R12: unknown variable 'serum_tryptase.basal' (known under 'serum_tryptase':" in out
    assert "(workup.rule R3): target_step names unknown step 'physical'" in out
    assert "field history.rema_score: unknown calculation 'rema'" in out


def test_check_protocol_finds_broken_jsonlogic(tmp_path):
    rows = shipped_copy()
    row(rows, "workup.rule", "R12")["fields"]["condition"] = {"gt": [{"var": "calc.bst"}, 20]}
    row(rows, "workup.rule", "R3")["fields"]["condition"] = {"!": {"var": 3}}
    row(rows, "workup.calculation", "adult")["fields"]["expression"] = {
        ">=": [{"var": "patient.age_years"}, 18],
        "==": [1, 1],
    }
    out = check(tmp_path, rows)
    assert "rule R12: unknown operator 'gt'" in out
    assert "rule R3: a variable name must be written out as text" in out
    assert "calculation adult: an operation must have exactly one operator" in out


def test_check_protocol_finds_an_expression_that_fails_when_evaluated(tmp_path):
    rows = shipped_copy()
    row(rows, "workup.calculation", "bst")["fields"]["expression"] = {"/": [1, 0]}
    out = check(tmp_path, rows)
    assert "calculation bst could not be evaluated" in out


def test_check_protocol_finds_duplicate_orders_and_codes(tmp_path):
    rows = shipped_copy()
    row(rows, "workup.stepdefinition", "skin_exam")["fields"]["order"] = 1
    row(rows, "workup.calculation", "child")["fields"]["order"] = 1
    row(rows, "workup.fielddefinition", "anaphylaxis", "history")["fields"]["order"] = 1
    duplicate = json.loads(json.dumps(row(rows, "workup.rule", "R3")))
    rows.append(duplicate)
    out = check(tmp_path, rows)
    assert "steps history and skin_exam: duplicate order 1" in out
    assert "(workup.calculation adult) and entry" in out
    assert "(workup.calculation child): duplicate order 1 among calculations" in out
    assert "(workup.fielddefinition history.anaphylaxis): duplicate order 1 among fields" in out
    assert "(workup.rule R3): duplicate code (also entry" in out


def test_check_protocol_finds_a_reference_to_another_version(tmp_path):
    rows = shipped_copy()
    row(rows, "workup.rule", "R12")["fields"]["protocol"] = ["mastocytosis", 2]
    out = check(tmp_path, rows)
    assert (
        "(workup.rule R12): protocol ['mastocytosis', 2] belongs to another protocol version" in out
    )


def test_check_protocol_reports_a_file_that_is_not_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[{"model": ')
    out, error = fails("check_protocol", str(path))
    assert "not valid JSON" in out and error.returncode == 1


def test_check_protocol_runs_a_case_file_and_names_failing_cases(tmp_path):
    cases = json.loads(VIGNETTES.read_text())
    cases[2]["expected_not_suggested"] = ["bone_marrow_biopsy"]
    path = write(tmp_path, cases, "cases.json")
    out, _ = fails("check_protocol", str(PROTOCOL_FIXTURE), cases=path)
    assert "case E03: bone_marrow_biopsy should not be suggested, but is (R12, R15)" in out


# run_protocol_cases ---------------------------------------------------------------------


def test_the_shipped_case_library_passes():
    out = run("run_protocol_cases", "mastocytosis")
    assert "mastocytosis v1 (published): 8 case(s)" in out
    assert "8 passed, 0 failed." in out
    assert all(f"PASS {c['id']}" in out for c in json.loads(VIGNETTES.read_text()))


def test_a_failing_case_exits_with_status_1_and_says_why(draft):
    Rule.objects.filter(protocol=draft, code="R6").update(enabled=False)
    out, error = fails("run_protocol_cases", "mastocytosis", version=2)
    assert error.returncode == 1 and "6 passed, 2 failed." in str(error)
    assert "FAIL E02: cbc_diff should be suggested, but is not suggested" in out
    assert "PASS E01" in out


def test_an_empty_case_library_is_a_failure(draft):
    ProtocolCase.objects.filter(protocol=draft).delete()
    _, error = fails("run_protocol_cases", "mastocytosis", version=2)
    assert "has no cases" in str(error)


# import_protocol_cases ------------------------------------------------------------------


def test_importing_cases_adds_updates_and_is_idempotent(tmp_path, draft):
    cases = json.loads(VIGNETTES.read_text())
    cases[0]["summary"] = "Changed summary"
    cases.append({**cases[1], "id": "E99", "summary": "A new case"})
    path = write(tmp_path, cases, "cases.json")
    out = run("import_protocol_cases", "mastocytosis", path, version=2)
    assert "1 added, 1 updated, 7 unchanged" in out
    assert ProtocolCase.objects.get(protocol=draft, code="E01").summary == "Changed summary"
    assert "0 added, 0 updated, 9 unchanged" in run(
        "import_protocol_cases", "mastocytosis", path, version=2
    )


def test_an_invalid_case_file_is_refused_whole_naming_the_case(tmp_path, draft):
    cases = json.loads(VIGNETTES.read_text())
    cases.append({**cases[0], "id": "E98"})
    cases[3]["findings"]["serum_tryptase"]["value_ng_ml"] = "high"
    cases[4]["expected_suggested"] = ["marrow"]
    _, error = fails("import_protocol_cases", "mastocytosis", write(tmp_path, cases), version=2)
    message = str(error)
    assert "nothing was imported" in message
    assert "case E04: serum_tryptase.value_ng_ml: expected a number" in message
    assert "case E05: expected_suggested names unknown step 'marrow'" in message
    assert not ProtocolCase.objects.filter(protocol=draft, code="E98").exists()


def test_cases_of_a_published_version_in_use_can_be_added_but_not_changed(tmp_path, workup_a):
    cases = json.loads(VIGNETTES.read_text())
    changed = [{**cases[0], "summary": "Changed"}]
    _, error = fails("import_protocol_cases", "mastocytosis", write(tmp_path, changed), version=1)
    assert "cannot be changed" in str(error)
    added = [{**cases[0], "id": "E50"}]
    assert "1 added" in run(
        "import_protocol_cases", "mastocytosis", write(tmp_path, added), version=1
    )


# diff_protocol ---------------------------------------------------------------------------


def test_diff_protocol_names_a_changed_threshold_and_other_changes(draft):
    Rule.objects.filter(protocol=draft, code="R12").update(
        condition={"and": [{"var": "calc.adult"}, {">": [{"var": "calc.bst_adj"}, 25]}]}
    )
    Rule.objects.filter(protocol=draft, code="R30").delete()
    field = draft.stepdefinition_set.get(code="serum_tryptase").fields.get(code="value_ng_ml")
    field.max_value = 5000
    field.save()
    out = run("diff_protocol", "mastocytosis", "1", "2")
    assert "mastocytosis: v1 → v2, 3 change(s)" in out
    assert "- rule R12 changed: threshold 20 → 25 in condition" in out
    assert "- rule R30 removed" in out
    assert "- field serum_tryptase.value_ng_ml changed: max_value: 2000 → 5000" in out


def test_diff_of_identical_versions_is_empty(draft):
    assert "0 change(s)" in run("diff_protocol", "mastocytosis", "1", "2")


def test_check_protocol_finds_unknown_groups_and_broken_trend_series(tmp_path):
    rows = shipped_copy()
    row(rows, "workup.criterionitem", "sm_major")["fields"]["group"] = "labs"
    row(rows, "workup.trendseries", "baseline")["fields"]["field_code"] = "is_baseline"
    row(rows, "workup.trendseries", "acute")["fields"]["marker"] = "star"
    row(rows, "workup.trendseries", "not-baseline")["fields"]["detail_fields"] = [["nothing", "x"]]
    row(rows, "workup.protocol", "mastocytosis")["fields"]["trend_title"] = ""
    out = check(tmp_path, rows)
    assert "criterion sm_major: unknown group 'labs' (known: b_finding, c_finding, fact" in out
    assert (
        "trend series baseline: field_code 'is_baseline' must name a number field of "
        "step serum_tryptase" in out
    )
    assert "trend series acute: unknown marker 'star'" in out
    assert "trend series not-baseline: detail_fields entry ['nothing', 'x'] must be" in out
    assert "protocol: trend series need a trend title (the chart's heading)" in out
