"""The one mapping from a protocol row to its plain spec.

A row reaches us in three shapes: a fixture entry (a dict), a model instance,
and an admin form being checked before it is saved. Each caller passes a
getter, `get(name, default)`, and the code of the step the row points at;
everything else about the row's columns is decided here, once, so that a
column added to a model cannot be forgotten by one of the loaders.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .spec import (
    CalculationSpec,
    CriterionSpec,
    DecidingInput,
    DisagreementSpec,
    FieldSpec,
    RuleSpec,
    StepSpec,
)

Getter = Callable[[str, Any], Any]


def from_dict(row: dict) -> Getter:
    return row.get


def from_instance(instance: Any) -> Getter:
    return lambda name, default=None: getattr(instance, name, default)


def field_spec(get: Getter) -> FieldSpec:
    return FieldSpec(
        code=get("code", None),
        label=get("label", None) or get("code", ""),
        kind=get("kind", ""),
        unit=get("unit", "") or "",
        min_value=get("min_value", None),
        max_value=get("max_value", None),
        choices=tuple(tuple(c) for c in get("choices", None) or ()),
        required=bool(get("required", False)),
        help_text=get("help_text", "") or "",
        calculation=get("calculation", "") or "",
        is_key_result=bool(get("is_key_result", False)),
        shown_if_field=get("shown_if_field", "") or "",
        shown_if_values=tuple(get("shown_if_values", None) or ()),
        replaces=get("replaces", "") or "",
        replaces_factor=get("replaces_factor", None),
    )


def step_spec(get: Getter, fields: Iterable[FieldSpec] = ()) -> StepSpec:
    return StepSpec(
        code=get("code", None),
        title=get("title", None) or get("code", ""),
        section=get("section", "") or "",
        order=get("order", None),
        fields=tuple(fields),
        help_text=get("help_text", "") or "",
        applies_to=get("applies_to", "") or "",
        repeatable=bool(get("repeatable", False)),
        counts_latest_where=get("counts_latest_where", "") or "",
        is_safety_item=bool(get("is_safety_item", False)),
        source=get("source", "") or "",
        deciding_inputs=deciding_inputs(get("deciding_inputs", None)),
        deciding_applies=get("deciding_applies", None),
    )


def deciding_inputs(raw: Any) -> tuple[DecidingInput, ...]:
    """Malformed entries are kept visible (label None) so that validation can name them."""
    if not isinstance(raw, list):
        return ()
    return tuple(
        DecidingInput(label=item.get("label"), recorded=item.get("recorded"))
        if isinstance(item, dict)
        else DecidingInput(label=None, recorded=None)
        for item in raw
    )


def calculation_spec(get: Getter) -> CalculationSpec:
    return CalculationSpec(
        code=get("code", None),
        label=get("label", None) or get("code", ""),
        expression=get("expression", None),
        unit=get("unit", "") or "",
        formula=get("formula", "") or "",
        display=bool(get("display", False)),
        source=get("source", "") or "",
    )


def rule_spec(get: Getter, target_step: str | None) -> RuleSpec:
    return RuleSpec(
        code=get("code", None),
        title=get("title", "") or "",
        action=get("action", "") or "",
        target_step=target_step,
        condition=get("condition", {}),
        rationale=get("rationale", "") or "",
        source=get("source", "") or "",
        label=get("label", None),
        priority=get("priority", 0) or 0,
        enabled=bool(get("enabled", True)),
        repeat_when_done=bool(get("repeat_when_done", False)),
        details=get("details", "") or "",
    )


def criterion_spec(get: Getter) -> CriterionSpec:
    return CriterionSpec(
        code=get("code", None),
        group=get("group", "") or "",
        kind=get("kind", "") or "",
        label=get("label", "") or "",
        who_text=get("who_text", "") or "",
        icc_text=get("icc_text", "") or "",
        who_logic=get("who_logic", None),
        icc_logic=get("icc_logic", None),
        source=get("source", "") or "",
    )


def disagreement_spec(get: Getter, step: str | None) -> DisagreementSpec:
    return DisagreementSpec(
        code=get("code", None),
        title=get("title", "") or "",
        positions=get("positions", "") or "",
        app_behaviour=get("app_behaviour", "") or "",
        step=step,
        condition=get("condition", True),
    )
