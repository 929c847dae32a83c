"""The checklist engine: facts -> calculations -> rule outcomes -> step states.

Pure functions over plain data (`spec.py`): no ORM, no request. Rules and
calculations are JSONLogic, run compiled (`compiler.py`, once per protocol
version); `evaluate(..., interpreted=True)` runs them in the maintained
maykin-json-logic-py interpreter instead, the reference the compiled rules are
tested against. See docs/protocol-authoring.md for the facts every expression
sees and how a step's state is decided.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, NamedTuple

from json_logic import jsonLogic

from workup.core.spec import ProtocolSpec, RuleSpec, StepSpec

# Step states. The vocabulary of a checklist, never of a diagnosis.
DONE = "done"
SUGGESTED = "suggested"
NOT_INDICATED = "not_indicated"
# A rule that could suggest or rule out the step lacks data: "not yet: record X".
NOT_YET = "not_yet"
# No rule suggests the step and nothing it needs is missing.
NOT_SUGGESTED = "not_suggested"
ORDERED = "ordered"
DECLINED = "declined"
MARK_STATES = (ORDERED, NOT_INDICATED, DECLINED)

# Criterion statuses.
DOCUMENTED = "documented"
NOT_DOCUMENTED = "not_documented"
NOT_ASSESSED = "not_assessed"
NOT_APPLICABLE = "not_applicable"


@dataclass(frozen=True)
class PatientInput:
    age_years: float | None
    sex: str | None
    adult_pathway: bool = False


@dataclass(frozen=True)
class RecordInput:
    step_code: str
    values: Mapping[str, Any]
    performed_on: date | None = None
    # Tie-breaker between records of one day: later entries count as later.
    sequence: int = 0


@dataclass(frozen=True)
class RuleOutcome:
    """A rule that fired, with the label it shows; everything the reader needs."""

    rule: RuleSpec
    label: str | None = None

    @property
    def code(self) -> str:
        return self.rule.code


@dataclass(slots=True)
class StepOutcome:
    code: str
    state: str
    done: bool = False
    mark: str | None = None
    suggest_reasons: list[RuleOutcome] = field(default_factory=list)
    # Suggestions that did not count because the step is already done (R28).
    suppressed_reasons: list[RuleOutcome] = field(default_factory=list)
    not_indicated_reasons: list[RuleOutcome] = field(default_factory=list)
    # Rules that say the step cannot be decided yet (their label says what is awaited).
    not_yet_reasons: list[RuleOutcome] = field(default_factory=list)
    notes: list[RuleOutcome] = field(default_factory=list)
    # Deciding inputs of the step not recorded yet, by their labels.
    missing: list[str] = field(default_factory=list)

    @property
    def awaiting(self) -> list[str]:
        """What the step waits for, in words: "record history", "specialist decision"."""
        texts = [f"record {_join(self.missing)}"] if self.missing else []
        texts += [o.label or o.rule.title for o in self.not_yet_reasons]
        return list(dict.fromkeys(texts))


class CriterionOutcome(NamedTuple):
    # A named tuple, not a frozen dataclass: made ~50 times per evaluation, and a tuple is
    # made in a fraction of the time.
    who: str | None
    icc: str | None


@dataclass
class Evaluation:
    facts: dict[str, Any]
    derived: dict[str, Any]
    steps: dict[str, StepOutcome]
    criteria: dict[str, CriterionOutcome]
    disagreements: list[str]
    # Expressions that failed at run time. Shown on the checklist, never hidden:
    # a rule that cannot be evaluated must not look like a rule that did not fire.
    errors: list[str] = field(default_factory=list)

    def codes_in_state(self, state: str) -> list[str]:
        return [code for code, step in self.steps.items() if step.state == state]

    @property
    def suggested(self) -> list[str]:
        return self.codes_in_state(SUGGESTED)

    @property
    def not_yet(self) -> list[str]:
        return self.codes_in_state(NOT_YET)


def counting_record(step: StepSpec, records: Iterable[RecordInput]) -> RecordInput | None:
    """The record whose values the rules see (see docs/protocol-authoring.md)."""
    ordered = sorted(records, key=lambda r: (r.performed_on or date.min, r.sequence))
    if not ordered:
        return None
    if step.counts_latest_where:
        flagged = [r for r in ordered if r.values.get(step.counts_latest_where) is True]
        if flagged:
            return flagged[-1]
    return ordered[-1]


def build_facts(
    spec: ProtocolSpec, *, patient: PatientInput, records: Iterable[RecordInput]
) -> dict[str, Any]:
    """The plain dict every rule and calculation sees. Calculations are added by evaluate()."""
    by_step: dict[str, list[RecordInput]] = {step.code: [] for step in spec.steps}
    for record in records:
        by_step.setdefault(record.step_code, []).append(record)
    facts: dict[str, Any] = {
        "patient": {
            "age_years": patient.age_years,
            "sex": patient.sex,
            "adult_pathway": patient.adult_pathway,
        },
        "done": {code: bool(recs) for code, recs in by_step.items() if code in spec.steps_by_code},
        "calc": {},
    }
    for step in spec.steps:
        record = counting_record(step, by_step[step.code])
        facts[step.code] = dict(record.values) if record else {}
    return facts


def evaluate(
    spec: ProtocolSpec,
    facts: dict[str, Any],
    marks: Mapping[str, str] | None = None,
    *,
    interpreted: bool = False,
) -> Evaluation:
    """Run calculations, rules, criteria and disagreements; decide every step's state.

    `marks` maps step codes to a clinician's mark (ordered, not_indicated, declined).
    `interpreted` runs the expressions in the JSONLogic package (the reference).
    """
    facts = {key: dict(value) if isinstance(value, dict) else value for key, value in facts.items()}
    facts["calc"] = {}
    errors: list[str] = []
    # The compiled expressions by id; none: every expression runs in the interpreter.
    compiled = {} if interpreted else spec.compiled.by_id
    derived = _run_calculations(spec, facts, errors, compiled)

    outcomes: dict[str, list[tuple[RuleSpec, str | None]]] = {}
    for rule in spec.step_rules:
        if _truthy(_apply(rule.condition, facts, "rule {}", errors, compiled, rule.code)):
            label = _label(rule, facts, errors, compiled)
            outcomes.setdefault(rule.target_step, []).append((rule, label))

    marks = marks or {}
    steps = {
        step.code: _decide_step(
            step,
            facts,
            outcomes.get(step.code, []),
            marks.get(step.code),
            _missing_inputs(step, facts, errors, compiled),
        )
        for step in spec.steps
    }
    criteria = {
        item.code: CriterionOutcome(
            who=_criterion_status(item.who_logic, facts, "{} (WHO)", errors, compiled, item.code),
            icc=_criterion_status(item.icc_logic, facts, "{} (ICC)", errors, compiled, item.code),
        )
        for item in spec.criteria
    }
    disagreements = [
        d.code
        for d in spec.disagreements
        if _truthy(_apply(d.condition, facts, "disagreement {}", errors, compiled, d.code))
    ]
    return Evaluation(
        facts=facts,
        derived=derived,
        steps=steps,
        criteria=criteria,
        disagreements=disagreements,
        errors=errors,
    )


def _run_calculations(
    spec: ProtocolSpec, facts: dict[str, Any], errors: list[str], compiled: CompiledTable
) -> dict:
    derived: dict[str, Any] = {}
    for calc in spec.calculations:
        value = _apply(calc.expression, facts, "calculation {}", errors, compiled, calc.code)
        if isinstance(value, float):
            value = round(value, 4)
        elif value == "" or value == []:
            value = None  # a text or list with nothing in it: nothing to show

        derived[calc.code] = value
        facts["calc"][calc.code] = value
        # Fields filled by this calculation (e.g. history.rema_score) become
        # visible to later calculations and to the rules at once.
        for step_code, field_code in spec.fields_filled_by.get(calc.code, ()):
            facts[step_code][field_code] = value
    return derived


def _missing_inputs(
    step: StepSpec, facts: dict[str, Any], errors: list[str], compiled: CompiledTable
) -> list[str]:
    """Labels of the step's deciding inputs that are not recorded (when they apply)."""
    if not step.deciding_inputs or facts["done"].get(step.code):
        return []
    if step.deciding_applies not in (None, {}) and not _truthy(
        _apply(step.deciding_applies, facts, "deciding inputs of {}", errors, compiled, step.code)
    ):
        return []
    return [
        item.label
        for item in step.deciding_inputs
        if not _truthy(
            _apply(item.recorded, facts, "deciding input of {}", errors, compiled, step.code)
        )
    ]


def _decide_step(
    step: StepSpec,
    facts: dict[str, Any],
    fired: list[tuple[RuleSpec, str | None]],
    mark: str | None,
    missing: list[str],
) -> StepOutcome:
    """Precedence: done (unless suggested again) > mark > suggested > not yet > not indicated."""
    done = bool(facts["done"].get(step.code))
    outcome = StepOutcome(code=step.code, state=NOT_SUGGESTED, done=done, mark=mark)
    if len(fired) > 1:
        fired = sorted(fired, key=lambda pair: (pair[0].priority, pair[0].code))
    for rule, label in fired:
        reason = RuleOutcome(rule=rule, label=label)
        if rule.action == "suggest":
            if done and not rule.repeat_when_done:
                outcome.suppressed_reasons.append(reason)
            else:
                outcome.suggest_reasons.append(reason)
        elif rule.action == "not_indicated":
            outcome.not_indicated_reasons.append(reason)
        elif rule.action == "not_yet" and not done:
            outcome.not_yet_reasons.append(reason)
        elif rule.action == "note":
            outcome.notes.append(reason)

    outcome.missing = missing
    if done and not outcome.suggest_reasons:
        outcome.state = DONE
    elif mark in MARK_STATES:
        outcome.state = mark
    elif outcome.suggest_reasons:
        outcome.state = SUGGESTED
    elif done:
        outcome.state = DONE
    elif outcome.missing or outcome.not_yet_reasons:
        outcome.state = NOT_YET
    elif outcome.not_indicated_reasons:
        outcome.state = NOT_INDICATED
    return outcome


def _criterion_status(
    logic: Any, facts: dict, where: str, errors: list[str], compiled: CompiledTable, code: str
) -> str | None:
    if logic is None:
        return None  # not part of this classification
    value = _apply(logic, facts, where, errors, compiled, code)
    if value is None:
        return NOT_ASSESSED
    if value == NOT_APPLICABLE:
        return NOT_APPLICABLE
    if isinstance(value, bool):
        return DOCUMENTED if value else NOT_DOCUMENTED
    errors.append(
        f"{where.format(code)}: gave {value!r}, expected true, false, null or 'not_applicable'"
    )
    return NOT_ASSESSED


def _label(rule: RuleSpec, facts: dict, errors: list[str], compiled: CompiledTable) -> str | None:
    if rule.label is None or rule.label == "":
        return None
    if isinstance(rule.label, str):
        return rule.label
    value = _apply(rule.label, facts, "label of rule {}", errors, compiled, rule.code)
    if isinstance(value, list):  # e.g. the inputs a score still needs, joined for reading
        value = _join([str(v) for v in value if v not in (None, "")])
    return str(value) if value not in (None, "") else None


def _join(words: list[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} and {words[-1]}"


CompiledTable = dict[int, Callable[[dict], Any]]


def _apply(
    expression: Any, facts: dict, where: str, errors: list[str], compiled: CompiledTable, code: str
) -> Any:
    """Run one expression, compiled (or, without a compiled function, interpreted); a failure
    is reported where it is (`where` formatted with `code`: built only then, as most
    evaluations report nothing)."""
    try:
        return (compiled.get(id(expression)) or _interpreter(expression))(facts)
    except Exception as exc:  # noqa: BLE001 - any failure is reported, never hidden
        errors.append(f"{where.format(code)} could not be evaluated: {exc}")
        return None


def _interpreter(expression: Any) -> Callable[[dict], Any]:
    """The interpreter's function for an expression (the reference; also any expression the
    compiler did not see). No expression, or an empty one, gives None."""
    if expression is None or expression == {}:
        return _nothing
    return lambda facts: jsonLogic(expression, facts)


def _nothing(facts: dict) -> None:
    return None


def _truthy(value: Any) -> bool:
    return bool(value) and value is not None
