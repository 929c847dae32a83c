"""Moving one workup to the newest published protocol version: a preview, then the move.

The preview evaluates both versions on the workup's records (carried over as
they would be stored, e.g. a value converted to a new field's unit) and says
which suggestions would change; the move re-pins the workup, its records and
marks in one transaction, claiming the workup's version like every other write.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from django.db import transaction

from workup import reads
from workup.audit.attribution import save_as
from workup.core import engine
from workup.core.checklist import STATE_DISPLAY
from workup.core.formatting import format_value
from workup.core.spec import ProtocolSpec, StepSpec
from workup.core.values import validate_step_values
from workup.models import Protocol, Workup
from workup.protocols.cache import get_spec
from workup.protocols.versions import newer_published_version
from workup.records import snapshot, writes


class MoveRefused(Exception):
    """The workup stays on its version; the message says why."""


@dataclass
class StepChange:
    code: str
    title: str
    before: str  # a state, or "" when the step is not in the old version
    after: str  # a state, or "" when the step is not in the new version
    before_rules: tuple[str, ...] = ()
    after_rules: tuple[str, ...] = ()

    @property
    def before_text(self) -> str:
        return _state_text(self.before, self.before_rules)

    @property
    def after_text(self) -> str:
        return _state_text(self.after, self.after_rules)

    @property
    def sentence(self) -> str:
        """As the preview says it."""
        return self.describe(moved=False)

    def describe(self, *, moved: bool) -> str:
        if self.after == engine.SUGGESTED and self.before != engine.SUGGESTED:
            verb = "is now" if moved else "would be"
            return f"{self.title} {verb} suggested ({', '.join(self.after_rules)})."
        if self.before == engine.SUGGESTED and self.after != engine.SUGGESTED:
            verb = "is no longer" if moved else "would no longer be"
            return f"{self.title} {verb} suggested (now: {self.after_text})."
        return f"{self.title}: {self.before_text} → {self.after_text}."


@dataclass
class MovePreview:
    source: Protocol
    target: Protocol | None
    step_changes: list[StepChange] = field(default_factory=list)
    derived_changes: list[str] = field(default_factory=list)
    # Steps of the current version that the new one no longer has.
    removed_steps_with_data: list[str] = field(default_factory=list)
    removed_steps: list[str] = field(default_factory=list)
    unused_values: list[str] = field(default_factory=list)
    # Values carried over to a field that replaces theirs (e.g. a new unit), in words.
    conversions: list[str] = field(default_factory=list)
    value_problems: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def suggestion_changes(self) -> list[StepChange]:
        return [
            c
            for c in self.step_changes
            if engine.SUGGESTED in (c.before, c.after) and c.before != c.after
        ]

    @property
    def blocked_because(self) -> list[str]:
        reasons = []
        if self.target is None:
            reasons.append("There is no newer published version.")
        if self.removed_steps_with_data:
            reasons.append(
                "Results or marks are recorded for steps that the new version no longer has ("
                + ", ".join(self.removed_steps_with_data)
                + "). The workup stays on its version, so that nothing is hidden."
            )
        return reasons


def preview_move(workup: Workup) -> MovePreview:
    """What moving the workup to the newest published version would change. Writes nothing."""
    source = workup.protocol
    source.refresh_from_db(fields=["status"])  # it may have been retired since it was loaded
    preview = MovePreview(source=source, target=newer_published_version(source))
    if preview.target is None:
        return preview
    state = reads.load_state(workup)
    old_spec, new_spec = state.spec, get_spec(preview.target)
    records = []
    for record in state.records:
        if record.step.code not in new_spec.steps_by_code:
            continue
        old_step, new_step = old_spec.step(record.step.code), new_spec.step(record.step.code)
        values, conversions = carried_over(old_step, new_step, record.values)
        preview.conversions += [
            f"{new_step.title} ({record.performed_on:%d %b %Y}): {line}" for line in conversions
        ]
        moved = copy.copy(record)  # evaluated as it would be stored; the record is untouched
        moved.values = values
        records.append(moved)
    marks = [m for m in state.marks if m.step_code in new_spec.steps_by_code]
    after = reads.evaluate_records(new_spec, workup, records, marks)
    preview.step_changes = _step_changes(old_spec, state.evaluation, new_spec, after)
    preview.derived_changes = _derived_changes(old_spec, state.evaluation, new_spec, after)
    preview.errors = after.errors
    used = {r.step.code for r in state.records} | {m.step_code for m in state.marks}
    for step in old_spec.steps:
        if step.code not in new_spec.steps_by_code:
            target = preview.removed_steps_with_data if step.code in used else preview.removed_steps
            target.append(step.title)
    for record in records:
        new_step = new_spec.step(record.step.code)
        unused = [code for code in record.values if new_step.field(code) is None]
        if unused:
            preview.unused_values.append(
                f"{new_step.title} ({record.performed_on:%d %b %Y}): {', '.join(unused)} "
                "(kept in the record, not used by the new version)"
            )
        kept = {k: v for k, v in record.values.items() if new_step.field(k) is not None}
        preview.value_problems += [
            f"{new_step.title} ({record.performed_on:%d %b %Y}): {problem}"
            for problem in validate_step_values(new_step, kept)
        ]
    return preview


@transaction.atomic
def move_workup(
    *, workup: Workup, target: Protocol, user, expected_version: int | None
) -> MovePreview:
    """Re-pin the workup, its records and marks to `target` (the newest published version)."""
    if workup.status != Workup.Status.OPEN:
        raise MoveRefused("A closed workup stays on its version.")
    preview = preview_move(workup)
    if preview.target is None or preview.target.pk != target.pk:
        raise MoveRefused(
            "The newest published version changed since you opened the preview. "
            "Nothing was moved: review the changes again."
        )
    if preview.blocked_because:
        raise MoveRefused(" ".join(preview.blocked_because))
    writes.claim_version(workup, expected_version, user)
    reason = f"moved from v{workup.protocol.version} to v{target.version}"
    steps = {s.code: s for s in target.stepdefinition_set.all()}
    old_spec, new_spec = get_spec(workup.protocol), get_spec(target)
    for record in workup.records.select_related("step"):
        code = record.step.code
        record.values, _ = carried_over(old_spec.step(code), new_spec.step(code), record.values)
        record.step = steps[code]
        save_as(record, user, reason=reason)
    for mark in workup.marks.select_related("step"):
        mark.step = steps[mark.step.code]
        save_as(mark, user, reason=reason)
    workup.protocol = target
    save_as(workup, user, reason=reason, update_fields=["protocol"])
    snapshot.refresh_snapshot(workup)
    return preview


def carried_over(old_step: StepSpec, new_step: StepSpec, values: dict) -> tuple[dict, list[str]]:
    """A record's values as the new version keeps them, and each conversion in words.

    A field that `replaces` an old field takes its value (× `replaces_factor` for a
    number: a new unit); the old key goes, so the value is neither lost nor counted
    twice. A converted value outside the new field's plausible range is kept as it is
    and named among the preview's value problems: the clinician checks it, nothing is
    dropped silently.
    """
    values = dict(values)
    lines = []
    for new_field in new_step.fields:
        old_code = new_field.replaces
        if not old_code or old_code not in values or new_field.code in values:
            continue
        old_value = values.pop(old_code)
        new_value = old_value
        factor = new_field.replaces_factor
        if (
            factor is not None
            and isinstance(old_value, int | float)
            and not isinstance(old_value, bool)
        ):
            new_value = round(old_value * factor, 6)
        values[new_field.code] = new_value
        old_field = old_step.field(old_code)
        before = format_value(old_field, old_value) if old_field else str(old_value)
        after = format_value(new_field, new_value)
        lines.append(f"{new_field.label}: {before} becomes {after}")
    return values, lines


def _step_changes(
    old_spec: ProtocolSpec,
    before: engine.Evaluation,
    new_spec: ProtocolSpec,
    after: engine.Evaluation,
) -> list[StepChange]:
    changes = []
    codes = [s.code for s in new_spec.steps] + [
        s.code for s in old_spec.steps if s.code not in new_spec.steps_by_code
    ]
    for code in codes:
        old, new = before.steps.get(code), after.steps.get(code)
        step = new_spec.steps_by_code.get(code) or old_spec.step(code)
        change = StepChange(
            code=code,
            title=step.title,
            before=old.state if old else "",
            after=new.state if new else "",
            before_rules=_deciding_rules(old),
            after_rules=_deciding_rules(new),
        )
        if (change.before, change.before_rules) != (change.after, change.after_rules):
            changes.append(change)
    return changes


def _derived_changes(
    old_spec: ProtocolSpec,
    before: engine.Evaluation,
    new_spec: ProtocolSpec,
    after: engine.Evaluation,
) -> list[str]:
    shown = [c for c in new_spec.calculations if c.display]
    return [
        f"{calc.label}: {_value(before.derived.get(calc.code))} → "
        f"{_value(after.derived.get(calc.code))}"
        for calc in shown
        if before.derived.get(calc.code) != after.derived.get(calc.code)
    ]


def _deciding_rules(outcome: engine.StepOutcome | None) -> tuple[str, ...]:
    if outcome is None:
        return ()
    if outcome.state == engine.SUGGESTED:
        return tuple(o.code for o in outcome.suggest_reasons)
    if outcome.state == engine.NOT_INDICATED:
        return tuple(o.code for o in outcome.not_indicated_reasons)
    return ()


def _state_text(state: str, rules: tuple[str, ...]) -> str:
    if not state:
        return "not in this version"
    text = STATE_DISPLAY[state][0].lower()
    return f"{text} ({', '.join(rules)})" if rules else text


def _value(value) -> str:
    return "unknown" if value is None else str(value)
