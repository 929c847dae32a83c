"""One way to show a recorded value, on screen and on paper alike."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from workup.core.spec import FieldSpec

NOT_RECORDED = "not recorded"


def format_number(value: float | int) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def format_value(field: FieldSpec, value: Any, *, with_unit: bool = True) -> str:
    if value is None or value == "" or value == []:
        return NOT_RECORDED
    if field.kind == "boolean":
        return "yes" if value else "no"
    if field.kind == "choice":
        return field.choice_label(value)
    if field.kind == "multi_choice":
        return ", ".join(field.choice_label(v) for v in value)
    if field.kind == "date":
        return format_date(date.fromisoformat(value)) if isinstance(value, str) else str(value)
    if field.kind in ("decimal", "integer"):
        text = format_number(value)
        return f"{text} {field.unit}" if with_unit and field.unit else text
    return str(value)


def format_date(day: date | None) -> str:
    return day.strftime("%d %b %Y") if day else ""


def format_datetime(moment: datetime | None) -> str:
    """A moment as given, with its zone named: "15 Jan 2026 14:05 CET".

    Pure: the caller converts to the clinic's time zone first (timezone.localtime)."""
    if moment is None:
        return ""
    return moment.strftime("%d %b %Y %H:%M %Z").rstrip()


def format_derived(value: Any, unit: str = "") -> str:
    if value is None:
        return "not computable (missing data)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        text = format_number(value)
        return f"{text} {unit}" if unit else text
    return str(value)
