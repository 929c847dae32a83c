"""What changed between two versions of a protocol, in words. Pure; no ORM.

Compares two ProtocolSpecs item by item (matched by code): steps and their
fields, calculations, rules, criterion groups and criteria, disagreements,
trend series, sources. A JSONLogic change is shown readably, and when only
numbers moved it is named as a threshold change ("threshold 20 -> 25").
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from workup.core.logic_text import logic_text
from workup.core.spec import ProtocolSpec, natural_code_key

ADDED, REMOVED, CHANGED = "added", "removed", "changed"
LOGIC_FIELDS = {"condition", "label", "expression", "who_logic", "icc_logic"}
# Not content: every version differs in these.
_IGNORED = {"id", "version", "status", "code", "fields"}


@dataclass(frozen=True)
class Change:
    kind: str  # protocol, source, step, field, calculation, rule, criterion, ... (`diff_protocols`)
    code: str
    change: str  # added | removed | changed
    details: tuple[str, ...] = ()

    def __str__(self) -> str:
        head = f"{self.kind} {self.code} {self.change}"
        return f"{head}: {'; '.join(self.details)}" if self.details else head


def diff_protocols(old: ProtocolSpec, new: ProtocolSpec) -> list[Change]:
    changes: list[Change] = []
    details = _compare(old, new, ("title", "disclaimer", "trend_title", "trend_value_label"))
    if details:
        changes.append(Change("protocol", new.code, CHANGED, details))
    changes += _diff_sources(old.sources, new.sources)
    old_steps, new_steps = old.steps_by_code, new.steps_by_code
    for code in _codes(old_steps, new_steps):
        before, after = old_steps.get(code), new_steps.get(code)
        changes += _diff_item("step", code, before, after)
        old_fields = {f.code: f for f in before.fields} if before else {}
        new_fields = {f.code: f for f in after.fields} if after else {}
        if before and after:
            for field_code in _codes(old_fields, new_fields):
                changes += _diff_item(
                    "field",
                    f"{code}.{field_code}",
                    old_fields.get(field_code),
                    new_fields.get(field_code),
                )
            if list(old_fields) != list(new_fields) and set(old_fields) == set(new_fields):
                changes.append(
                    Change("step", code, CHANGED, ("order of fields: " + ", ".join(new_fields),))
                )
    for kind, attribute in (
        ("calculation", "calculations"),
        ("rule", "rules"),
        ("step group", "step_groups"),
        ("criterion group", "criterion_groups"),
        ("criterion", "criteria"),
        ("disagreement", "disagreements"),
        ("trend series", "trend_series"),
    ):
        before = {item.code: item for item in getattr(old, attribute)}
        after = {item.code: item for item in getattr(new, attribute)}
        for code in _codes(before, after):
            changes += _diff_item(kind, code, before.get(code), after.get(code))
    # Calculations run in order, each seeing the ones before it: a reorder is a change.
    common = {c.code for c in old.calculations} & {c.code for c in new.calculations}
    old_order = [c.code for c in old.calculations if c.code in common]
    new_order = [c.code for c in new.calculations if c.code in common]
    if old_order != new_order:
        changes.append(
            Change(
                "protocol", new.code, CHANGED, ("order of calculations: " + ", ".join(new_order),)
            )
        )
    return changes


def _codes(before: dict, after: dict) -> list[str]:
    """Codes of both versions in a reader's order: the old order, then what was added."""
    return list(before) + [code for code in after if code not in before]


def _diff_item(kind: str, code: str, before: Any, after: Any) -> list[Change]:
    if before is None:
        return [Change(kind, code, ADDED, _summary(after))]
    if after is None:
        return [Change(kind, code, REMOVED)]
    names = [f.name for f in dataclasses.fields(after) if f.name not in _IGNORED]
    details = _compare(before, after, names)
    return [Change(kind, code, CHANGED, details)] if details else []


def _summary(item: Any) -> tuple[str, ...]:
    for name in ("title", "label"):
        value = getattr(item, name, None)
        if isinstance(value, str) and value:
            return (value,)
    return ()


def _compare(before: Any, after: Any, names: tuple | list) -> tuple[str, ...]:
    details = []
    for name in names:
        old, new = getattr(before, name), getattr(after, name)
        if old == new and type(old) is type(new):
            continue
        if name in LOGIC_FIELDS:
            thresholds = _number_changes(old, new)
            if thresholds:
                moved = ", ".join(f"{_show(a)} → {_show(b)}" for a, b in thresholds)
                details.append(f"threshold {moved} in {name} ({logic_text(new)})")
                continue
            details.append(f"{name}: {logic_text(old)} → {logic_text(new)}")
        elif old != new:
            details.append(f"{name}: {_show(old)} → {_show(new)}")
    return tuple(details)


def _number_changes(old: Any, new: Any) -> list[tuple[Any, Any]] | None:
    """The numbers that differ, when two expressions have the same shape otherwise; else None."""
    if _is_number(old) and _is_number(new):
        return [] if old == new else [(old, new)]
    if isinstance(old, dict) and isinstance(new, dict):
        if list(old) != list(new):
            return None
        pairs = [_number_changes(old[key], new[key]) for key in old]
    elif isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return None
        pairs = [_number_changes(a, b) for a, b in zip(old, new, strict=True)]
    else:
        return [] if old == new and type(old) is type(new) else None
    if any(p is None for p in pairs):
        return None
    return [change for p in pairs for change in p]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, tuple):
        value = [list(v) if isinstance(v, tuple) else v for v in value]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value, ensure_ascii=False)


def _diff_sources(before: dict[str, str], after: dict[str, str]) -> list[Change]:
    changes = []
    for code in sorted(set(before) | set(after), key=natural_code_key):
        if code not in before:
            changes.append(Change("source", code, ADDED, (after[code],)))
        elif code not in after:
            changes.append(Change("source", code, REMOVED))
        elif before[code] != after[code]:
            detail = f"citation: {_show(before[code])} → {_show(after[code])}"
            changes.append(Change("source", code, CHANGED, (detail,)))
    return changes
