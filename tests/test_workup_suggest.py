"""The batch interface: `manage.py workup_suggest CASES.json`."""

import copy
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from workup.models import Patient, StepRecord

from .conftest import VIGNETTES

pytestmark = pytest.mark.django_db

CASES = json.loads(VIGNETTES.read_text())


def suggest(tmp_path, cases):
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases) if not isinstance(cases, str) else cases)
    out = StringIO()
    call_command("workup_suggest", str(path), stdout=out)
    return json.loads(out.getvalue())


def suggest_error(tmp_path, cases) -> str:
    with pytest.raises(CommandError) as error:
        suggest(tmp_path, cases)
    assert error.value.returncode == 2
    return str(error.value)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_every_vignette_gets_its_expected_suggestions(tmp_path, case):
    [result] = suggest(tmp_path, [case])
    assert result["id"] == case["id"]
    for step in case["expected_suggested"]:
        assert step in result["suggested"], f"{step} should be suggested: {result}"
    for step in case["expected_not_suggested"]:
        assert step not in result["suggested"], f"{step} should not be suggested: {result}"
    fired = {code for codes in result["reasons"].values() for code in codes}
    for step in case["expected_suggested"]:
        assert result["reasons"][step], f"{step} is suggested without a reason"
    # The rules the vignette names as deciding ones appear among the reasons,
    # except the display and housekeeping rules that decide no state.
    deciding = {r for r in case["rule_refs"] if r not in ("R20", "R21", "R28", "R29")}
    assert deciding <= fired, f"missing {deciding - fired}"


def test_the_output_has_the_documented_shape(tmp_path):
    [result] = suggest(tmp_path, [CASES[2]])
    assert set(result) == {
        "id",
        "suggested",
        "not_indicated",
        "not_yet",
        "done",
        "reasons",
        "derived",
        "warnings",
    }
    assert "history" in result["done"]
    assert result["derived"]["rema_score"] == 7


def test_a_supplied_derived_value_that_differs_is_a_warning_not_a_failure(tmp_path):
    case = copy.deepcopy(CASES[2])
    case["findings"]["history"]["rema_score"] = 3
    [result] = suggest(tmp_path, [case])
    assert any("history.rema_score" in w and "7" in w for w in result["warnings"])
    assert result["warnings"] and "bone_marrow_biopsy" in result["suggested"]


def test_a_matching_derived_value_gives_no_warning(tmp_path):
    [result] = suggest(tmp_path, [CASES[2]])
    assert result["warnings"] == []


def test_it_touches_no_patient(tmp_path):
    suggest(tmp_path, CASES)
    assert Patient.objects.count() == 0 and StepRecord.objects.count() == 0


def _with(case_index, step, field, value):
    case = copy.deepcopy(CASES[case_index])
    case["findings"].setdefault(step, {})[field] = value
    return [case]


@pytest.mark.parametrize(
    ("cases", "expected"),
    [
        (_with(2, "serum_tryptase", "value_ng_ml", 2500), "case E03: serum_tryptase.value_ng_ml"),
        (_with(2, "serum_tryptase", "value_ng_ml", "high"), "serum_tryptase.value_ng_ml"),
        (_with(2, "skin_exam", "lesion_pattern", "spots"), "skin_exam.lesion_pattern"),
        (_with(2, "history", "favourite_colour", True), "history.favourite_colour"),
        (_with(2, "bone_scan", "done", True), "unknown step 'bone_scan'"),
        ([{"id": "X1", "patient": {"age_years": -3, "sex": "male"}}], "case X1: patient.age_years"),
        ([{"id": "X2", "patient": {"age_years": 30, "sex": "m"}}], "case X2: patient.sex"),
        ([{"id": [1.5], "patient": {"age_years": 30, "sex": "male"}}], "case #1: 'id' must be"),
        ({"not": "a list"}, "expected a JSON list"),
        ("[{not json", "not valid JSON"),
    ],
)
def test_invalid_input_exits_2_naming_the_case_and_field(tmp_path, cases, expected):
    assert expected in suggest_error(tmp_path, cases)


def test_evaluating_cases_makes_no_reference_cycles(spec):
    """workup_suggest pauses the cycle collector while it evaluates (it keeps every result
    until all are written): that is only safe while evaluating leaves no cycles behind."""
    import gc

    from workup.core.cases import suggest as suggest_case

    cases = json.loads(VIGNETTES.read_text(encoding="utf-8"))
    suggest_case(spec, cases[0], 0)  # compile the rules first: that is done once
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        results = [suggest_case(spec, case, index) for index, case in enumerate(cases * 5)]
        assert len(results) == 5 * len(cases) > 0
        del results
        assert gc.collect() == 0
    finally:
        if was_enabled:
            gc.enable()
