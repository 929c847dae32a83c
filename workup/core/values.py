"""Validate typed values (from JSON) against a step's field definitions. Pure."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from workup.core.formatting import format_number
from workup.core.spec import StepSpec


def validate_step_values(step: StepSpec, values: Any) -> list[str]:
    """Problems with one step's values, each naming the field; empty when valid."""
    if not isinstance(values, dict):
        return [f"{step.code}: expected an object of field values"]
    problems = []
    for code, value in values.items():
        field = step.field(code)
        if field is None:
            known = ", ".join(f.code for f in step.fields)
            problems.append(f"{step.code}.{code}: unknown field (fields of {step.code}: {known})")
            continue
        if value is None:
            continue
        problems += [f"{step.code}.{code}: {p}" for p in _check(field, value)]
    for field in step.entry_fields:
        # A field asked only for some answers (shown_if) is required only when asked.
        if field.required and field.shown_for(values) and values.get(field.code) is None:
            problems.append(f"{step.code}.{field.code}: required")
    return problems


def _check(field, value: Any) -> list[str]:
    if field.kind in ("decimal", "integer"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return [f"expected a number, got {value!r}"]
        try:
            finite = math.isfinite(float(value))
        except OverflowError:
            finite = False
        if not finite:
            return [f"expected a finite number, got {value!r}"[:120]]
        if field.kind == "integer" and not float(value).is_integer():
            return [f"expected a whole number, got {value!r}"]
        unit = f" {field.unit}" if field.unit else ""
        if field.min_value is not None and value < field.min_value:
            return [
                f"{value} is below the plausible minimum {format_number(field.min_value)}{unit}"
            ]
        if field.max_value is not None and value > field.max_value:
            return [
                f"{value} is above the plausible maximum {format_number(field.max_value)}{unit}"
            ]
        return []
    if field.kind == "boolean":
        return [] if isinstance(value, bool) else [f"expected true or false, got {value!r}"]
    if field.kind in ("choice", "multi_choice"):
        codes = field.choice_codes
        if field.kind == "choice":
            valid = _hashable(value) and value in codes
        else:
            valid = isinstance(value, list) and all(_hashable(v) and v in codes for v in value)
        if valid:
            return []
        allowed = ", ".join(c[0] for c in field.choices)
        if field.kind == "choice":
            return [f"{value!r} is not one of {allowed}"]
        return [f"expected a list of {allowed}"]
    if field.kind == "date":
        try:
            day = date.fromisoformat(value)
        except (TypeError, ValueError):
            return [f"expected a date as YYYY-MM-DD, got {value!r}"]
        return ["is in the future"] if day > date.today() else []
    if not isinstance(value, str):
        return [f"expected text, got {value!r}"]
    return []


def _hashable(value: Any) -> bool:
    # A list or an object where a choice belongs is simply not one of the choices.
    return not isinstance(value, list | dict)
