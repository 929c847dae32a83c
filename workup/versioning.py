"""Protocol versions: a new draft from a version, publishing it, and moving a workup on.

- A published (or retired) version is immutable (models/protocol.py refuses
  changes); editing means `new_draft()`, which copies the whole version,
  case library included, as the next version.
- `publish()` refuses while the draft is invalid or any case of its library
  fails, then retires the previously published version: new workups get the
  new one (`services.current_protocol()`), workups in progress stay pinned.
- `preview_move()` / `move_workup()` move one workup to the newest published
  version, showing first which suggestions would change.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from simple_history.utils import bulk_create_with_history

from . import engine, services
from .audit import record_event
from .cases import CaseResult, run_cases
from .checklist import STATE_DISPLAY
from .formatting import format_value
from .models import (
    AuditEvent,
    Calculation,
    CriterionItem,
    Disagreement,
    FieldDefinition,
    Protocol,
    ProtocolCase,
    ProtocolSource,
    Rule,
    StepDefinition,
    Workup,
)
from .protocol_cache import clear_cache, get_spec
from .spec import ProtocolSpec, StepSpec
from .validation import validate_protocol
from .values import validate_step_values

PUBLISHED, RETIRED, DRAFT = (
    Protocol.Status.PUBLISHED,
    Protocol.Status.RETIRED,
    Protocol.Status.DRAFT,
)


class PublishRefused(Exception):
    def __init__(self, message: str, report: VersionReport | None = None):
        super().__init__(message)
        self.report = report


class MoveRefused(Exception):
    """The workup stays on its version; the message says why."""


@dataclass
class VersionReport:
    """A version checked as publishing checks it: its problems and its case library run."""

    problems: list[str]
    results: list[CaseResult]

    @property
    def failures(self) -> list[CaseResult]:
        return [r for r in self.results if not r.passed]

    @property
    def ok(self) -> bool:
        return not self.problems and not self.failures


def check_version(protocol: Protocol) -> VersionReport:
    spec = get_spec(protocol)
    problems = list(validate_protocol(spec))
    cases = sorted(protocol.protocolcase_set.all(), key=lambda c: c.code)
    if not cases:
        problems.append(
            f"{protocol.code} v{protocol.version} has no cases: add or import its case library."
        )
    return VersionReport(problems, run_cases(spec, [c.as_case() for c in cases]))


def newer_published_version(protocol: Protocol) -> Protocol | None:
    """The published version a workup pinned to `protocol` could move to, if any."""
    if protocol.status == PUBLISHED:
        return None  # publishing keeps one published version per code: the newest
    return (
        Protocol.objects.filter(code=protocol.code, status=PUBLISHED, version__gt=protocol.version)
        .order_by("-version")
        .first()
    )


def _save_as(instance, user, reason: str) -> None:
    """Save, naming the user and the reason in the history."""
    instance._history_user = user
    instance._change_reason = reason[:100]
    instance.save()


def retire_superseded(*, code: str, user, reason: str) -> list[Protocol]:
    """Keep one published version per code, the newest: retire the others."""
    published = list(
        Protocol.objects.select_for_update()
        .filter(code=code, status=PUBLISHED)
        .order_by("-version")
    )
    for protocol in published[1:]:
        protocol.status = RETIRED
        _save_as(protocol, user, reason)
    return published[1:]


@transaction.atomic
def new_draft(*, protocol: Protocol, user) -> Protocol:
    """Copy a version, with its case library, as the next version (a draft)."""
    # Lock the code's versions so two admins cannot take the same number.
    list(Protocol.objects.select_for_update().filter(code=protocol.code).values_list("pk"))
    version = Protocol.objects.filter(code=protocol.code).aggregate(v=Max("version"))["v"] + 1
    reason = f"new draft v{version} from v{protocol.version}"
    draft = Protocol(
        code=protocol.code,
        version=version,
        title=protocol.title,
        description=protocol.description,
        disclaimer=protocol.disclaimer,
        status=DRAFT,
    )
    _save_as(draft, user, reason)

    def copy(queryset, **links) -> list:
        """Copies of the rows, inserted at once; each history row names the user and reason."""
        rows = list(queryset.order_by("pk"))
        for row in rows:
            row.pk = row.id = None
            row._state.adding = True
            for name, new_values in links.items():
                setattr(row, name, new_values(row))
        return bulk_create_with_history(
            rows, queryset.model, default_user=user, default_change_reason=reason
        )

    old_steps = list(StepDefinition.objects.filter(protocol=protocol).order_by("pk"))
    new_steps = copy(StepDefinition.objects.filter(protocol=protocol), protocol=lambda _: draft)
    steps = {old.pk: new for old, new in zip(old_steps, new_steps, strict=True)}
    copy(FieldDefinition.objects.filter(step__protocol=protocol), step=lambda f: steps[f.step_id])
    for model in (ProtocolSource, Calculation, CriterionItem, ProtocolCase):
        copy(model.objects.filter(protocol=protocol), protocol=lambda _: draft)
    copy(
        Rule.objects.filter(protocol=protocol),
        protocol=lambda _: draft,
        target_step=lambda r: steps.get(r.target_step_id),
    )
    copy(
        Disagreement.objects.filter(protocol=protocol),
        protocol=lambda _: draft,
        step=lambda d: steps.get(d.step_id),
    )
    # The copied rows' history says who and why; the audit trail gets one event for them.
    record_event(
        user=user,
        action=AuditEvent.Action.CREATE,
        object_type="workup.protocol",
        object_id=draft.pk,
        summary=f"{draft.code} {reason}: steps, fields, calculations, rules, cases copied",
    )
    return draft


@transaction.atomic
def publish(*, protocol: Protocol, user) -> Protocol:
    """Publish a draft whose case library passes; retire the version it replaces."""
    protocol = Protocol.objects.select_for_update().get(pk=protocol.pk)
    name = f"{protocol.code} v{protocol.version}"
    if protocol.status != DRAFT:
        raise PublishRefused(f"{name} is {protocol.status}: only a draft can be published.")
    newer = (
        Protocol.objects.filter(code=protocol.code, version__gt=protocol.version)
        .exclude(status=DRAFT)
        .order_by("-version")
        .first()
    )
    if newer is not None:
        raise PublishRefused(
            f"{name} cannot be published: v{newer.version} is already {newer.status}. "
            f"Make a new draft from v{newer.version} instead."
        )
    report = check_version(protocol)
    if not report.ok:
        failing = ", ".join(r.case_id for r in report.failures)
        reasons = [*report.problems, *([f"failing cases: {failing}"] if failing else [])]
        raise PublishRefused(f"{name} was not published: {'; '.join(reasons)}", report)
    protocol.status = PUBLISHED
    protocol.published_at = timezone.now()
    _save_as(protocol, user, "published")
    retire_superseded(code=protocol.code, user=user, reason=f"replaced by v{protocol.version}")
    transaction.on_commit(clear_cache)
    return protocol


# Moving a workup ---------------------------------------------------------------------


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
    state = services.load_state(workup)
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
    after = services.evaluate_records(new_spec, workup, records, marks)
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
    services._claim_version(workup, expected_version, user)
    reason = f"moved from v{workup.protocol.version} to v{target.version}"
    steps = {s.code: s for s in target.stepdefinition_set.all()}
    old_spec, new_spec = get_spec(workup.protocol), get_spec(target)
    for record in workup.records.select_related("step"):
        code = record.step.code
        record.values, _ = carried_over(old_spec.step(code), new_spec.step(code), record.values)
        record.step = steps[code]
        _save_as(record, user, reason)
    for mark in workup.marks.select_related("step"):
        mark.step = steps[mark.step.code]
        _save_as(mark, user, reason)
    workup.protocol = target
    workup._history_user = user
    workup._change_reason = reason
    workup.save(update_fields=["protocol"])
    services.refresh_snapshot(workup)
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
