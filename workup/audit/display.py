"""Audit events in words: which field changed, from what to what. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from workup.core.formatting import format_date, format_value
from workup.core.spec import FieldSpec, ProtocolSpec

# Bookkeeping columns that change with every save and say nothing to a reader.
HIDDEN_FIELDS = {
    "id",
    "workup_id",
    "recorded_at",
    "updated_at",
    "set_at",
    "created_at",
    "version",
    "last_change_at",
    "last_change_by_id",
    "progress_done",
    "progress_applicable",
    "suggested_steps",
    "not_yet_steps",
    "suggestion_rules",
    "step_id",
    "recorded_by_id",
    "set_by_id",
    "opened_by_id",
    "created_by_id",
}
DATE_FIELDS = {"performed_on", "birth_date"}
FIELD_LABELS = {
    "values": "Values",
    "performed_on": "Date done",
    "note": "Note",
    "status": "Status",
    "reason": "Reason",
    "step_id": "Step",
    "mrn": "MRN",
    "family_name": "Family name",
    "given_name": "Given name",
    "birth_date": "Birth date",
    "sex": "Sex",
    "site_id": "Site",
    "adult_pathway": "Adult pathway (D14)",
    "adult_pathway_reason": "Adult pathway reason",
    "protocol_id": "Protocol version",
}


@dataclass(frozen=True)
class ChangeLine:
    field: str
    old: str
    new: str


def change_lines(
    changes: dict[str, Any], spec: ProtocolSpec | None, step_code: str | None = None
) -> list[ChangeLine]:
    """The changed fields in words; `step_code` names the step whose values changed."""
    fields = _fields_of(spec, step_code)
    lines: list[ChangeLine] = []
    for name, pair in changes.items():
        if name in HIDDEN_FIELDS or not isinstance(pair, list) or len(pair) != 2:
            continue
        old, new = pair
        if name == "values":
            lines += _value_lines(old or {}, new or {}, fields)
        elif name in DATE_FIELDS:
            lines.append(ChangeLine(FIELD_LABELS[name], _date_text(old), _date_text(new)))
        else:
            lines.append(ChangeLine(FIELD_LABELS.get(name, name), _text(old), _text(new)))
    return [line for line in lines if not (line.old == "–" and line.new == "–")]


def _value_lines(old: dict, new: dict, fields: dict[str, FieldSpec]) -> list[ChangeLine]:
    lines = []
    for code in list(dict.fromkeys([*old, *new])):
        if old.get(code) == new.get(code):
            continue
        field = fields.get(code)
        if field is None:
            lines.append(ChangeLine(code, _text(old.get(code)), _text(new.get(code))))
            continue
        lines.append(
            ChangeLine(
                field.label,
                format_value(field, old.get(code)) if code in old else "–",
                format_value(field, new.get(code)) if code in new else "–",
            )
        )
    return lines


def _fields_of(spec: ProtocolSpec | None, step_code: str | None) -> dict[str, FieldSpec]:
    if spec is None or step_code not in spec.steps_by_code:
        return {}
    return {f.code: f for f in spec.step(step_code).fields}


def _date_text(value: Any) -> str:
    try:
        return format_date(date.fromisoformat(value))
    except (TypeError, ValueError):
        return _text(value)


def _text(value: Any) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
