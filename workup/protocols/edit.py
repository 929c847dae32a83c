"""A protocol as it would be after one edit, and what the edit would break. Pure; no ORM.

The admin validates a rule, calculation, step or field against the whole draft:
it swaps the edited item into the draft's spec and runs `validate_protocol`,
so an edit is refused with the problems it would *add*, each naming its place.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from workup.core.spec import FieldSpec, ProtocolSpec, StepSpec
from workup.core.validation import validate_protocol


def with_item(
    spec: ProtocolSpec,
    attribute: str,
    original_code: str | None,
    item: Any | None,
    position: int | None = None,
) -> ProtocolSpec:
    """`spec` with the item called `original_code` replaced by `item` (None removes it).

    `attribute` is "rules", "calculations", "criteria" or "disagreements". For
    calculations the position matters: each one sees only those before it.
    """
    items = [i for i in getattr(spec, attribute) if i.code != original_code]
    if item is not None:
        items.insert(len(items) if position is None else position, item)
    return _replace(spec, **{attribute: tuple(items)})


def with_step(spec: ProtocolSpec, original_code: str | None, step: StepSpec | None) -> ProtocolSpec:
    """Replace (or add, or remove) a step; an edited step keeps its fields."""
    original = spec.steps_by_code.get(original_code) if original_code else None
    steps = [s for s in spec.steps if s.code != original_code]
    if step is not None:
        if original is not None:
            step = dataclasses.replace(step, fields=original.fields)
        steps.append(step)
    return _replace(spec, steps=tuple(sorted(steps, key=lambda s: (s.order, s.code))))


def with_field(
    spec: ProtocolSpec, step_code: str, original_code: str | None, field: FieldSpec | None
) -> ProtocolSpec:
    step = spec.steps_by_code.get(step_code)
    if step is None:
        return spec
    fields = [f for f in step.fields if f.code != original_code]
    if field is not None:
        fields.append(field)
    changed = dataclasses.replace(step, fields=tuple(fields))
    return _replace(spec, steps=tuple(changed if s.code == step_code else s for s in spec.steps))


def new_problems(before: ProtocolSpec, after: ProtocolSpec) -> list[str]:
    """Problems of `after` that `before` did not have."""
    known = set(validate_protocol(before))
    return [p for p in validate_protocol(after) if p not in known]


def _replace(spec: ProtocolSpec, **changes) -> ProtocolSpec:
    # replace() builds a new instance, so cached lookups (steps_by_code, ...) start afresh.
    return dataclasses.replace(spec, **changes)
