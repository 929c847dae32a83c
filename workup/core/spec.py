"""Plain, immutable descriptions of a protocol: what the pure engine works on.

Built from the database (`protocol_cache.py`) or straight from a fixture file
(`protocol_file.py`); the engine and the checklist builder never see the ORM.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from workup.core.compiler import CompiledExpressions
from workup.core.logic_text import logic_text

JSONLogic = Any


def natural_code_key(code: str) -> tuple:
    """Sort codes as people do: D2 before D10, R23 before R23b."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", code))


@dataclass(frozen=True)
class FieldSpec:
    code: str
    label: str
    kind: str
    unit: str = ""
    min_value: float | None = None
    max_value: float | None = None
    choices: tuple[tuple[str, str], ...] = ()
    required: bool = False
    help_text: str = ""
    calculation: str = ""
    is_key_result: bool = False
    # Asked only when the step's field `shown_if_field` holds one of `shown_if_values`.
    shown_if_field: str = ""
    shown_if_values: tuple[Any, ...] = ()
    # The previous version's field this one replaces (a workup's value moves over × factor).
    replaces: str = ""
    replaces_factor: float | None = None
    # Fields with the same group title, one after another, are asked together (e.g. "REMA items").
    group: str = ""

    def shown_for(self, values: dict[str, Any]) -> bool:
        """Whether the form asks this field, given the step's other values."""
        return not self.shown_if_field or values.get(self.shown_if_field) in self.shown_if_values

    @property
    def is_calculated(self) -> bool:
        return bool(self.calculation)

    def choice_label(self, value: Any) -> str:
        return dict(self.choices).get(value, str(value))

    @cached_property
    def choice_codes(self) -> frozenset:
        """The stored values of the choices, for checking a value quickly."""
        return frozenset(code for code, _ in self.choices)


@dataclass(frozen=True)
class DecidingInput:
    """One input a step's rules need: named to the clinician while it is missing."""

    label: str
    recorded: JSONLogic


@dataclass(frozen=True)
class StepSpec:
    code: str
    title: str
    section: str
    order: int
    fields: tuple[FieldSpec, ...] = ()
    help_text: str = ""
    applies_to: str = ""
    repeatable: bool = False
    counts_latest_where: str = ""
    is_safety_item: bool = False
    source: str = ""
    # The code of the step group its suggestion is listed under (StepGroupSpec).
    group: str = ""
    # What must be recorded before the rules can decide the step ("not yet: record X").
    deciding_inputs: tuple[DecidingInput, ...] = ()
    deciding_applies: JSONLogic = None

    def field(self, code: str) -> FieldSpec | None:
        return self.fields_by_code.get(code)

    @cached_property
    def fields_by_code(self) -> dict[str, FieldSpec]:
        return {f.code: f for f in self.fields}

    @cached_property
    def entry_fields(self) -> tuple[FieldSpec, ...]:
        """The fields a clinician types in (calculated fields are never typed)."""
        return tuple(f for f in self.fields if not f.is_calculated)


@dataclass(frozen=True)
class CalculationSpec:
    code: str
    label: str
    expression: JSONLogic
    unit: str = ""
    formula: str = ""
    display: bool = False
    source: str = ""


@dataclass(frozen=True)
class RuleSpec:
    code: str
    title: str
    action: str  # suggest | not_indicated | not_yet | note | housekeeping
    target_step: str | None
    condition: JSONLogic
    rationale: str
    source: str
    label: JSONLogic = None
    priority: int = 0
    enabled: bool = True
    repeat_when_done: bool = False
    details: str = ""

    @cached_property
    def condition_text(self) -> str:
        """The condition in words, for the "rule details" disclosure; worded once per spec."""
        return logic_text(self.condition)


@dataclass(frozen=True)
class CriterionSpec:
    code: str
    group: str
    kind: str
    label: str
    who_text: str = ""
    icc_text: str = ""
    who_logic: JSONLogic = None
    icc_logic: JSONLogic = None
    source: str = ""


@dataclass(frozen=True)
class CriterionGroupSpec:
    """A table of criterion items on the checklist, e.g. "B-findings"."""

    code: str
    title: str
    # When set, the documented major and minor items of the group are counted under this name.
    counts_label: str = ""


@dataclass(frozen=True)
class StepGroupSpec:
    """A heading suggestions are listed under, in the protocol's order (e.g. safety first)."""

    code: str
    title: str
    # One line under the heading, e.g. "Start these at once, whatever the further workup shows."
    description: str = ""


@dataclass(frozen=True)
class TrendSeriesSpec:
    """One series of the print's trend chart: a numeric field of one step over time.

    A record belongs to the first series whose step (and `where` value, if any) it matches.
    """

    code: str
    label: str
    step_code: str
    field_code: str
    marker: str = "circle"  # circle | triangle
    filled: bool = True
    connect: bool = False
    where: tuple[str, Any] | None = None
    # Other values of the record worth a word in the table: (field code, short label).
    detail_fields: tuple[tuple[str, str], ...] = ()
    glyph: str = "●"  # the marker as a character, for the legend and the table


@dataclass(frozen=True)
class DisagreementSpec:
    code: str
    title: str
    positions: str
    app_behaviour: str
    step: str | None = None
    condition: JSONLogic = True


@dataclass(frozen=True)
class ProtocolSpec:
    code: str
    version: int
    title: str
    steps: tuple[StepSpec, ...]
    calculations: tuple[CalculationSpec, ...] = ()
    rules: tuple[RuleSpec, ...] = ()
    criteria: tuple[CriterionSpec, ...] = ()
    criterion_groups: tuple[CriterionGroupSpec, ...] = ()
    # In the order the checklist lists suggestions under them; the first comes first.
    step_groups: tuple[StepGroupSpec, ...] = ()
    disagreements: tuple[DisagreementSpec, ...] = ()
    sources: dict[str, str] = field(default_factory=dict)
    source_urls: dict[str, str] = field(default_factory=dict)
    status: str = "published"
    disclaimer: str = ""
    # The print's chart of values over time: its heading, its table's value column, its series.
    trend_title: str = ""
    trend_value_label: str = ""
    trend_series: tuple[TrendSeriesSpec, ...] = ()
    id: int | None = None

    def expressions(self) -> Iterator[JSONLogic]:
        """Every JSONLogic expression the engine runs (literals and None included)."""
        for calc in self.calculations:
            yield calc.expression
        for rule in self.rules:
            yield rule.condition
            yield rule.label
        for step in self.steps:
            yield step.deciding_applies
            for item in step.deciding_inputs:
                yield item.recorded
        for item in self.criteria:
            yield item.who_logic
            yield item.icc_logic
        for d in self.disagreements:
            yield d.condition

    @cached_property
    def compiled(self) -> CompiledExpressions:
        """The expressions compiled once, for as long as this version's spec is cached."""
        return CompiledExpressions(self.expressions())

    @cached_property
    def fields_filled_by(self) -> dict[str, tuple[tuple[str, str], ...]]:
        """calculation code -> the (step, field) codes it fills (e.g. history.rema_score)."""
        filled: dict[str, list[tuple[str, str]]] = {}
        for step in self.steps:
            for f in step.fields:
                if f.calculation:
                    filled.setdefault(f.calculation, []).append((step.code, f.code))
        return {code: tuple(pairs) for code, pairs in filled.items()}

    @cached_property
    def steps_by_code(self) -> dict[str, StepSpec]:
        return {step.code: step for step in self.steps}

    def step(self, code: str) -> StepSpec:
        return self.steps_by_code[code]

    @cached_property
    def suggestion_rank(self) -> dict[str, tuple[int, int]]:
        """step code -> its place among suggestions: its group's position, then the step's order.

        Steps of no known group come after every group, in protocol order.
        """
        group_position = {group.code: i for i, group in enumerate(self.step_groups)}
        last = len(self.step_groups)
        return {
            step.code: (group_position.get(step.group, last), i)
            for i, step in enumerate(self.steps)
        }

    @cached_property
    def fact_readers(self) -> dict[str, tuple[list[str], list[str]]]:
        """fact ("step.field") -> (labels of the calculations, codes of the enabled rules) that
        read it directly; worked out once per version, for the step forms' "Used by" notes."""
        from workup.core.validation import variables_in  # validation imports this module

        readers: dict[str, tuple[list[str], list[str]]] = {}
        for calc in self.calculations:
            for name in variables_in(calc.expression)[0]:
                readers.setdefault(name, ([], []))[0].append(calc.label)
        for rule in self.rules:
            if rule.enabled:
                names = variables_in(rule.condition)[0] | variables_in(rule.label)[0]
                for name in names:
                    readers.setdefault(name, ([], []))[1].append(rule.code)
        return readers

    def by_priority(self, step_codes) -> list[str]:
        """Step codes in the order the clinician should read them (`suggestion_rank`)."""
        rank = self.suggestion_rank
        unknown = (len(self.step_groups) + 1, 0)
        return sorted(step_codes, key=lambda code: rank.get(code, unknown))

    @cached_property
    def calculations_by_code(self) -> dict[str, CalculationSpec]:
        return {calc.code: calc for calc in self.calculations}

    @cached_property
    def rules_by_code(self) -> dict[str, RuleSpec]:
        return {rule.code: rule for rule in self.rules}

    @cached_property
    def step_rules(self) -> tuple[RuleSpec, ...]:
        """The rules the engine evaluates: enabled, about a step (not housekeeping)."""
        return tuple(
            r for r in self.rules if r.enabled and r.action != "housekeeping" and r.target_step
        )

    @cached_property
    def housekeeping_rules(self) -> tuple[RuleSpec, ...]:
        return tuple(r for r in self.rules if r.action == "housekeeping")
