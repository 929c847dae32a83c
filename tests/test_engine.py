"""The engine's semantics, on a tiny protocol that knows nothing of mastocytosis."""

from datetime import date

from workup.core import engine
from workup.core.engine import PatientInput, RecordInput, build_facts, evaluate
from workup.core.spec import (
    CalculationSpec,
    CriterionGroupSpec,
    CriterionSpec,
    DisagreementSpec,
    FieldSpec,
    ProtocolSpec,
    RuleSpec,
    StepSpec,
)
from workup.core.validation import validate_protocol

LEVEL = FieldSpec("level", "Level", "decimal", unit="u", min_value=0, max_value=100)
FLAG = FieldSpec("is_fasting", "Fasting", "boolean")
SPEC = ProtocolSpec(
    code="toy",
    version=1,
    title="Toy protocol",
    steps=(
        StepSpec("intake", "Intake", "A", 1, fields=(FieldSpec("worried", "Worried", "boolean"),)),
        StepSpec(
            "lab",
            "Lab",
            "A",
            2,
            fields=(LEVEL, FLAG),
            repeatable=True,
            counts_latest_where="is_fasting",
        ),
        StepSpec("scan", "Scan", "B", 3, fields=(FieldSpec("seen", "Seen", "boolean"),)),
    ),
    calculations=(
        CalculationSpec("adult", "Adult", {">=": [{"var": "patient.age_years"}, 18]}),
        CalculationSpec(
            "fasting_level",
            "Fasting level",
            {"if": [{"===": [{"var": "lab.is_fasting"}, True]}, {"var": "lab.level"}, None]},
            display=True,
        ),
    ),
    rules=(
        RuleSpec(
            "T1", "Intake first", "suggest", "intake", {"!": {"var": "done.intake"}}, "r", "[S1]"
        ),
        RuleSpec("T2", "Lab", "suggest", "lab", {"!": {"var": "done.lab"}}, "r", "[S1]"),
        RuleSpec(
            "T3",
            "Repeat lab fasting",
            "suggest",
            "lab",
            {"===": [{"var": "lab.is_fasting"}, False]},
            "r",
            "[S1]",
            repeat_when_done=True,
        ),
        RuleSpec(
            "T4",
            "Scan when high",
            "suggest",
            "scan",
            {">": [{"var": "calc.fasting_level"}, 20]},
            "r",
            "[S2]",
            label={"if": [{">": [{"var": "calc.fasting_level"}, 50]}, "urgent", None]},
        ),
        RuleSpec(
            "T5",
            "No scan in children",
            "not_indicated",
            "scan",
            {"!": {"var": "calc.adult"}},
            "r",
            "[S2]",
            label="follow-up only",
        ),
        RuleSpec("T6", "Scan again", "suggest", "scan", {"var": "done.scan"}, "r", "[S2]"),
        RuleSpec("T7", "Switched off", "suggest", "scan", True, "r", "[S2]", enabled=False),
        RuleSpec(
            "T8", "Note on lab", "note", "lab", {"var": "done.lab"}, "r", "[S1]", label="see trend"
        ),
        RuleSpec("T9", "Done is done", "housekeeping", None, {}, "r", "[S1]"),
    ),
    criterion_groups=(CriterionGroupSpec("sm", "Lab items", counts_label="lab items"),),
    criteria=(
        CriterionSpec(
            "C1",
            "sm",
            "minor",
            "Level > 20",
            who_logic={"if": [{"var": "done.lab"}, {">": [{"var": "lab.level"}, 20]}, None]},
            icc_logic=None,
        ),
    ),
    disagreements=(
        DisagreementSpec(
            "D1",
            "Threshold",
            "20 [S1] vs 30 [S2]",
            "shows both",
            "scan",
            {">": [{"var": "calc.fasting_level"}, 20]},
        ),
    ),
    sources={"S1": "Source one", "S2": "Source two"},
)


def run(age=40.0, records=(), marks=None):
    facts = build_facts(SPEC, patient=PatientInput(age, "female"), records=list(records))
    return evaluate(SPEC, facts, marks)


def lab(level, fasting, day):
    return RecordInput("lab", {"level": level, "is_fasting": fasting}, date(2026, 1, day))


def test_the_toy_protocol_is_valid():
    assert validate_protocol(SPEC) == []


def test_nothing_recorded_suggests_the_first_steps():
    result = run()
    assert result.steps["intake"].state == engine.SUGGESTED
    assert result.steps["lab"].state == engine.SUGGESTED
    assert [r.code for r in result.steps["intake"].suggest_reasons] == ["T1"]


def test_a_missing_value_makes_a_comparison_false_not_an_error():
    result = run()
    assert result.derived["fasting_level"] is None
    assert result.steps["scan"].state == engine.NOT_SUGGESTED
    assert result.errors == []


def test_a_done_step_is_not_suggested_again_but_the_reason_is_kept():
    result = run(records=[RecordInput("intake", {"worried": True}, date(2026, 1, 1))])
    assert result.steps["intake"].state == engine.DONE
    assert result.steps["intake"].suppressed_reasons == []  # T1 does not fire once done


def test_a_rule_that_may_repeat_suggests_a_done_step_again():
    result = run(records=[lab(30, False, 1)])
    lab_step = result.steps["lab"]
    assert lab_step.state == engine.SUGGESTED
    assert [r.code for r in lab_step.suggest_reasons] == ["T3"]
    assert [r.code for r in lab_step.suppressed_reasons] == []


def test_suggestions_that_cannot_repeat_are_listed_as_suppressed_on_a_done_step():
    result = run(records=[RecordInput("scan", {"seen": True}, date(2026, 1, 1))])
    assert result.steps["scan"].state == engine.DONE
    assert [r.code for r in result.steps["scan"].suppressed_reasons] == ["T6"]


def test_the_latest_flagged_record_counts_over_a_later_unflagged_one():
    result = run(records=[lab(10, True, 1), lab(60, True, 2), lab(5, False, 3)])
    assert result.facts["lab"]["level"] == 60
    assert result.derived["fasting_level"] == 60
    assert (
        result.steps["lab"].state == engine.DONE
    )  # T3 does not fire: the counting record is fasting


def test_without_a_flagged_record_the_latest_counts():
    result = run(records=[lab(10, False, 1), lab(7, False, 2)])
    assert result.facts["lab"]["level"] == 7


def test_thresholds_are_strict_and_labels_are_computed():
    assert run(records=[lab(20, True, 1)]).steps["scan"].state == engine.NOT_SUGGESTED
    high = run(records=[lab(20.1, True, 1)]).steps["scan"]
    assert high.state == engine.SUGGESTED and high.suggest_reasons[0].label is None
    assert run(records=[lab(51, True, 1)]).steps["scan"].suggest_reasons[0].label == "urgent"


def test_a_suggestion_wins_over_not_indicated():
    result = run(age=10, records=[lab(30, True, 1)])
    assert result.steps["scan"].state == engine.SUGGESTED
    assert [r.code for r in result.steps["scan"].not_indicated_reasons] == ["T5"]


def test_not_indicated_when_no_suggestion_fires():
    scan = run(age=17.99).steps["scan"]
    assert scan.state == engine.NOT_INDICATED
    assert scan.not_indicated_reasons[0].label == "follow-up only"
    assert run(age=18).steps["scan"].state == engine.NOT_SUGGESTED


def test_a_clinicians_mark_wins_and_keeps_the_reasons():
    result = run(records=[lab(30, True, 1)], marks={"scan": engine.DECLINED})
    assert result.steps["scan"].state == engine.DECLINED
    assert [r.code for r in result.steps["scan"].suggest_reasons] == ["T4"]


def test_a_disabled_rule_never_fires():
    result = run()
    assert "T7" not in [r.code for r in result.steps["scan"].suggest_reasons]


def test_notes_and_criteria_and_disagreements():
    result = run(records=[lab(30, True, 1)])
    assert [n.label for n in result.steps["lab"].notes] == ["see trend"]
    assert result.criteria["C1"].who == engine.DOCUMENTED
    assert result.criteria["C1"].icc is None
    assert result.disagreements == ["D1"]
    assert run().criteria["C1"].who == engine.NOT_ASSESSED
    assert run().disagreements == []


def test_an_expression_that_fails_is_reported_not_hidden():
    broken = ProtocolSpec(
        code="b",
        version=1,
        title="B",
        steps=(StepSpec("x", "X", "A", 1),),
        rules=(RuleSpec("B1", "Broken", "suggest", "x", {"%": [1, 0]}, "r", "s"),),
    )
    result = evaluate(broken, build_facts(broken, patient=PatientInput(30, "male"), records=[]))
    assert result.steps["x"].state == engine.NOT_SUGGESTED
    assert len(result.errors) == 1 and "rule B1" in result.errors[0]


def test_validation_names_unknown_variables_and_operators():
    bad = ProtocolSpec(
        code="b",
        version=1,
        title="B",
        steps=(StepSpec("x", "X", "A", 1, fields=(FieldSpec("a", "A", "boolean"),)),),
        calculations=(
            CalculationSpec("c", "C", {"var": "calc.later"}),
            CalculationSpec("later", "L", {"var": "x.a"}),
        ),
        rules=(
            RuleSpec("B1", "Typo", "suggest", "x", {"var": "x.b"}, "r", "s"),
            RuleSpec("B2", "Bad op", "suggest", "x", {"frobnicate": [1]}, "r", "s"),
            RuleSpec("B3", "Bad step", "suggest", "nowhere", True, "r", "s"),
            RuleSpec("B4", "Bad head", "suggest", "x", {"var": "histroy.a"}, "r", "s"),
        ),
    )
    problems = validate_protocol(bad)
    assert any("calculation c" in p and "calc.later" in p for p in problems)
    assert any("rule B1" in p and "'x.b'" in p and "x.a" in p for p in problems)
    assert any("rule B2" in p and "frobnicate" in p for p in problems)
    assert any("rule B3" in p and "nowhere" in p for p in problems)
    assert any("rule B4" in p and "histroy" in p for p in problems)
