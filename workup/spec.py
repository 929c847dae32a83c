"""Plain, immutable descriptions of a protocol: what the pure engine works on.

Built from the database (`protocol_cache.py`) or straight from a fixture file
(`protocol_file.py`); the engine and the checklist builder never see the ORM.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

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

    @property
    def is_calculated(self) -> bool:
        return bool(self.calculation)

    def choice_label(self, value: Any) -> str:
        return dict(self.choices).get(value, str(value))


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

    def field(self, code: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.code == code), None)

    @property
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
    action: str  # suggest | not_indicated | note | housekeeping
    target_step: str | None
    condition: JSONLogic
    rationale: str
    source: str
    label: JSONLogic = None
    priority: int = 0
    enabled: bool = True
    repeat_when_done: bool = False


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
    disagreements: tuple[DisagreementSpec, ...] = ()
    sources: dict[str, str] = field(default_factory=dict)
    status: str = "published"
    disclaimer: str = ""
    id: int | None = None

    @cached_property
    def steps_by_code(self) -> dict[str, StepSpec]:
        return {step.code: step for step in self.steps}

    def step(self, code: str) -> StepSpec:
        return self.steps_by_code[code]

    @cached_property
    def calculations_by_code(self) -> dict[str, CalculationSpec]:
        return {calc.code: calc for calc in self.calculations}

    @cached_property
    def rules_by_code(self) -> dict[str, RuleSpec]:
        return {rule.code: rule for rule in self.rules}

    @cached_property
    def housekeeping_rules(self) -> tuple[RuleSpec, ...]:
        return tuple(r for r in self.rules if r.action == "housekeeping")
