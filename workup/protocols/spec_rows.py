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

from workup.core.spec import (
    CalculationSpec,
    CriterionGroupSpec,
    CriterionSpec,
    DecidingInput,
    DisagreementSpec,
    FieldSpec,
    RuleSpec,
    StepGroupSpec,
    StepSpec,
    TrendSeriesSpec,
)

Getter = Callable[[str, Any], Any]


def _text(get: Getter, name: str) -> str:
    """A text column: missing and null both read as empty."""
    return get(name, "") or ""


def from_dict(row: dict) -> Getter:
    return row.get


def from_instance(instance: Any) -> Getter:
    return lambda name, default=None: getattr(instance, name, default)


def field_spec(get: Getter) -> FieldSpec:
    return FieldSpec(
        code=get("code", None),
        label=get("label", None) or get("code", ""),
        kind=get("kind", ""),
        unit=_text(get, "unit"),
        min_value=get("min_value", None),
        max_value=get("max_value", None),
        choices=tuple(tuple(c) for c in get("choices", None) or ()),
        required=bool(get("required", False)),
        help_text=_text(get, "help_text"),
        calculation=_text(get, "calculation"),
        is_key_result=bool(get("is_key_result", False)),
        shown_if_field=_text(get, "shown_if_field"),
        shown_if_values=tuple(get("shown_if_values", None) or ()),
        replaces=_text(get, "replaces"),
        replaces_factor=get("replaces_factor", None),
        group=_text(get, "group"),
    )


def step_spec(get: Getter, fields: Iterable[FieldSpec] = ()) -> StepSpec:
    return StepSpec(
        code=get("code", None),
        title=get("title", None) or get("code", ""),
        section=_text(get, "section"),
        order=get("order", None),
        fields=tuple(fields),
        help_text=_text(get, "help_text"),
        applies_to=_text(get, "applies_to"),
        repeatable=bool(get("repeatable", False)),
        counts_latest_where=_text(get, "counts_latest_where"),
        is_safety_item=bool(get("is_safety_item", False)),
        source=_text(get, "source"),
        group=_text(get, "group"),
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
        unit=_text(get, "unit"),
        formula=_text(get, "formula"),
        display=bool(get("display", False)),
        source=_text(get, "source"),
    )


def rule_spec(get: Getter, target_step: str | None) -> RuleSpec:
    return RuleSpec(
        code=get("code", None),
        title=_text(get, "title"),
        action=_text(get, "action"),
        target_step=target_step,
        condition=get("condition", {}),
        rationale=_text(get, "rationale"),
        source=_text(get, "source"),
        label=get("label", None),
        priority=get("priority", 0) or 0,
        enabled=bool(get("enabled", True)),
        repeat_when_done=bool(get("repeat_when_done", False)),
        details=_text(get, "details"),
    )


def criterion_spec(get: Getter) -> CriterionSpec:
    return CriterionSpec(
        code=get("code", None),
        group=_text(get, "group"),
        kind=_text(get, "kind"),
        label=_text(get, "label"),
        who_text=_text(get, "who_text"),
        icc_text=_text(get, "icc_text"),
        who_logic=get("who_logic", None),
        icc_logic=get("icc_logic", None),
        source=_text(get, "source"),
    )


def step_group_spec(get: Getter) -> StepGroupSpec:
    return StepGroupSpec(
        code=get("code", None),
        title=get("title", None) or get("code", ""),
        description=_text(get, "description"),
    )


def criterion_group_spec(get: Getter) -> CriterionGroupSpec:
    return CriterionGroupSpec(
        code=get("code", None),
        title=get("title", None) or get("code", ""),
        counts_label=_text(get, "counts_label"),
    )


def trend_series_spec(get: Getter, step_code: str | None) -> TrendSeriesSpec:
    where_field = _text(get, "where_field")
    details = get("detail_fields", None)
    return TrendSeriesSpec(
        code=get("code", None),
        label=get("label", None) or get("code", ""),
        step_code=step_code,
        field_code=_text(get, "field_code"),
        marker=get("marker", None) or "circle",
        filled=bool(get("filled", True)),
        connect=bool(get("connect", False)),
        where=(where_field, get("where_value", None)) if where_field else None,
        # Malformed pairs are kept as they are, so that validation can name them.
        detail_fields=tuple(
            tuple(pair) if isinstance(pair, list | tuple) else pair
            for pair in (details if isinstance(details, list) else ())
        ),
        glyph=get("glyph", None) or "●",
    )


def disagreement_spec(get: Getter, step: str | None) -> DisagreementSpec:
    return DisagreementSpec(
        code=get("code", None),
        title=_text(get, "title"),
        positions=_text(get, "positions"),
        app_behaviour=_text(get, "app_behaviour"),
        step=step,
        condition=get("condition", True),
    )
