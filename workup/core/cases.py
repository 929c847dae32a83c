"""Evaluate cases (the vignette shape) against a protocol, and judge them. Pure; no ORM.

A case is a plain dict: `id`, `patient` (age_years, sex, optionally
adult_pathway), `findings` (values per step code), and for the case library
`expected_suggested` / `expected_not_suggested` / `expected_not_yet` (step
codes). Used by
`workup_suggest` (batch suggestions), `run_protocol_cases`, the admin's
"Run cases" and publishing, which refuses while a case fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from workup.core import engine
from workup.core.engine import Evaluation, PatientInput, RecordInput, build_facts, evaluate
from workup.core.spec import ProtocolSpec
from workup.core.values import validate_step_values

SEXES = ("male", "female", "other", "unknown")
EXPECTATIONS = ("expected_suggested", "expected_not_suggested", "expected_not_yet")


class InvalidCase(Exception):
    """A case that cannot be evaluated; `field` names the part of the case at fault."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def case_label(case: Any, index: int) -> str:
    case_id = case.get("id") if isinstance(case, dict) else None
    return f"case {case_id if case_id is not None else f'#{index + 1}'}"


def evaluate_case(
    spec: ProtocolSpec, case: Any, index: int = 0, *, interpreted: bool = False
) -> tuple[dict, Evaluation]:
    """The suggestions for one case (the `workup_suggest` output) and the evaluation behind it.

    `interpreted`: run the rules in the JSONLogic interpreter (the reference), not compiled.
    """
    if not isinstance(case, dict):
        raise InvalidCase(f"case #{index + 1}: expected an object")
    case_id = case.get("id", f"#{index + 1}")
    if isinstance(case_id, bool) or not isinstance(case_id, str | int):
        # Echoed in the output: a list or a float (NaN) would make it invalid JSON.
        raise InvalidCase(f"case #{index + 1}: 'id' must be text or a whole number", "id")
    label = case_label(case, index)
    patient = case.get("patient")
    if not isinstance(patient, dict):
        raise InvalidCase(f"{label}: 'patient' must be an object with age_years and sex", "patient")
    age = patient.get("age_years")
    if isinstance(age, bool) or not isinstance(age, int | float) or not 0 <= age <= 120:
        raise InvalidCase(f"{label}: patient.age_years must be a number from 0 to 120", "patient")
    sex = patient.get("sex")
    if sex not in SEXES:
        raise InvalidCase(f"{label}: patient.sex must be one of {', '.join(SEXES)}", "patient")
    findings = case.get("findings", {})
    if not isinstance(findings, dict):
        raise InvalidCase(f"{label}: 'findings' must be an object keyed by step code", "findings")

    records, supplied_calculated = [], []
    today = date.today()
    for step_code, values in findings.items():
        if step_code not in spec.steps_by_code:
            raise InvalidCase(f"{label}: unknown step '{step_code}'", "findings")
        step = spec.step(step_code)
        problems = validate_step_values(step, values)
        if problems:
            raise InvalidCase(f"{label}: {problems[0]}", "findings")
        entered = {}
        for code, value in values.items():
            if step.field(code).is_calculated:
                supplied_calculated.append((step_code, code, value))
            else:
                entered[code] = value
        records.append(RecordInput(step_code, entered, today))

    facts = build_facts(
        spec,
        patient=PatientInput(
            age_years=age, sex=sex, adult_pathway=bool(patient.get("adult_pathway"))
        ),
        records=records,
    )
    evaluation = evaluate(spec, facts, interpreted=interpreted)
    warnings = [f"could not evaluate: {e}" for e in evaluation.errors]
    for step_code, field_code, supplied in supplied_calculated:
        computed = evaluation.facts[step_code].get(field_code)
        if computed != supplied:
            warnings.append(
                f"{step_code}.{field_code}: the case gives {supplied!r}, "
                f"the protocol computes {computed!r} (the computed value is used)"
            )
    reasons = {}
    for code, outcome in evaluation.steps.items():
        deciding = (
            outcome.suggest_reasons
            if outcome.state == engine.SUGGESTED
            else outcome.not_indicated_reasons
            if outcome.state == engine.NOT_INDICATED
            else []
        )
        if deciding:
            reasons[code] = [o.code for o in deciding]
    result = {
        "id": case_id,
        "suggested": evaluation.codes_in_state(engine.SUGGESTED),
        "not_indicated": evaluation.codes_in_state(engine.NOT_INDICATED),
        # Undecided for lack of data: what each step waits for ("record history").
        "not_yet": [
            {"step": code, "awaiting": outcome.awaiting, "missing": outcome.missing}
            for code, outcome in evaluation.steps.items()
            if outcome.state == engine.NOT_YET
        ],
        "done": [code for code, outcome in evaluation.steps.items() if outcome.done],
        "reasons": reasons,
        "derived": evaluation.derived,
        "warnings": warnings,
    }
    return result, evaluation


def suggest(spec: ProtocolSpec, case: Any, index: int = 0) -> dict:
    """What `workup_suggest` prints for one case."""
    return evaluate_case(spec, case, index)[0]


@dataclass(frozen=True)
class CaseResult:
    case_id: str
    passed: bool
    # Why it failed, each in words that name the step and the rules.
    failures: tuple[str, ...] = ()
    suggested: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def expectation_problems(spec: ProtocolSpec, case: Any) -> list[tuple[str, str]]:
    """(field, message) for expectation lists that are malformed or name unknown steps."""
    problems = []
    for key in EXPECTATIONS:
        listed = case.get(key, []) if isinstance(case, dict) else []
        if not isinstance(listed, list) or not all(isinstance(c, str) for c in listed):
            problems.append((key, f"{key} must be a list of step codes"))
            continue
        for code in listed:
            if code not in spec.steps_by_code:
                problems.append((key, f"{key} names unknown step '{code}'"))
    return problems


def case_problems(spec: ProtocolSpec, case: Any, index: int = 0) -> list[tuple[str | None, str]]:
    """Everything that keeps a case from running: (field, message); empty when it can run."""
    problems: list[tuple[str | None, str]] = []
    try:
        evaluate_case(spec, case, index)
    except InvalidCase as error:
        problems.append((error.field, str(error)))
    label = case_label(case, index)
    problems += [(key, f"{label}: {message}") for key, message in expectation_problems(spec, case)]
    return problems


def run_case(spec: ProtocolSpec, case: Any, index: int = 0) -> CaseResult:
    """Passes when every expected_suggested step is suggested, no expected_not_suggested is,
    and every expected_not_yet step reads "not yet"."""
    case_id = str(case.get("id", f"#{index + 1}")) if isinstance(case, dict) else f"#{index + 1}"
    try:
        result, evaluation = evaluate_case(spec, case, index)
    except InvalidCase as error:
        return CaseResult(case_id, False, (f"cannot run: {error}",))
    failures = [message for _, message in expectation_problems(spec, case)]
    failures += [f"could not evaluate: {e}" for e in evaluation.errors]
    for code in case.get("expected_suggested", []):
        outcome = evaluation.steps.get(code)
        if outcome is not None and outcome.state != engine.SUGGESTED:
            failures.append(f"{code} should be suggested, but is {_state_words(outcome)}")
    for code in case.get("expected_not_suggested", []):
        outcome = evaluation.steps.get(code)
        if outcome is not None and outcome.state == engine.SUGGESTED:
            rules = ", ".join(o.code for o in outcome.suggest_reasons)
            failures.append(f"{code} should not be suggested, but is ({rules})")
    for code in case.get("expected_not_yet", []):
        outcome = evaluation.steps.get(code)
        if outcome is not None and outcome.state != engine.NOT_YET:
            failures.append(f"{code} should be 'not yet', but is {_state_words(outcome)}")
    warnings = tuple(w for w in result["warnings"] if not w.startswith("could not evaluate"))
    return CaseResult(
        case_id=case_id,
        passed=not failures,
        failures=tuple(dict.fromkeys(failures)),
        suggested=tuple(result["suggested"]),
        warnings=warnings,
    )


def run_cases(spec: ProtocolSpec, cases: list[Any]) -> list[CaseResult]:
    return [run_case(spec, case, index) for index, case in enumerate(cases)]


def _state_words(outcome: engine.StepOutcome) -> str:
    if outcome.state == engine.NOT_INDICATED:
        rules = ", ".join(o.code for o in outcome.not_indicated_reasons)
        return f"not indicated ({rules})"
    if outcome.state == engine.DONE:
        suppressed = ", ".join(o.code for o in outcome.suppressed_reasons)
        return f"done{f' (already done: {suppressed})' if suppressed else ''}"
    if outcome.state == engine.NOT_YET:
        return f"not yet ({'; '.join(outcome.awaiting)})"
    if outcome.state == engine.NOT_SUGGESTED:
        return "not suggested (no rule fires and nothing is missing)"
    return outcome.state.replace("_", " ")
