"""Protocol versions: a new draft from a version, publishing it, retiring the one it replaces.

- A published (or retired) version is immutable (models/protocol.py refuses
  changes); editing means `new_draft()`, which copies the whole version,
  case library included, as the next version.
- `publish()` refuses while the draft is invalid or any case of its library
  fails, then retires the previously published version: new workups get the
  new one (`reads.current_protocol()`), workups in progress stay pinned.

Moving a workup to a newer version is a clinical write: records/move.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from simple_history.utils import bulk_create_with_history

from workup.audit.attribution import save_as
from workup.audit.trail import record_event
from workup.core.cases import CaseResult, run_cases
from workup.core.validation import validate_protocol
from workup.models import (
    AuditEvent,
    Calculation,
    CriterionGroup,
    CriterionItem,
    Disagreement,
    FieldDefinition,
    Protocol,
    ProtocolCase,
    ProtocolSource,
    Rule,
    StepDefinition,
    StepGroup,
    TrendSeries,
)
from workup.protocols.cache import clear_cache, get_spec

PUBLISHED, RETIRED, DRAFT = (
    Protocol.Status.PUBLISHED,
    Protocol.Status.RETIRED,
    Protocol.Status.DRAFT,
)


class PublishRefused(Exception):
    def __init__(self, message: str, report: VersionReport | None = None):
        super().__init__(message)
        self.report = report


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


def retire_superseded(*, code: str, user, reason: str) -> list[Protocol]:
    """Keep one published version per code, the newest: retire the others."""
    published = list(
        Protocol.objects.select_for_update()
        .filter(code=code, status=PUBLISHED)
        .order_by("-version")
    )
    for protocol in published[1:]:
        protocol.status = RETIRED
        save_as(protocol, user, reason=reason)
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
        trend_title=protocol.trend_title,
        trend_value_label=protocol.trend_value_label,
        status=DRAFT,
    )
    save_as(draft, user, reason=reason)

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
    parts = (ProtocolSource, StepGroup, Calculation, CriterionGroup, CriterionItem, ProtocolCase)
    for model in parts:
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
    copy(
        TrendSeries.objects.filter(protocol=protocol),
        protocol=lambda _: draft,
        step=lambda t: steps[t.step_id],
    )
    # The copied rows' history says who and why; the audit trail gets one event for them.
    record_event(
        user=user,
        action=AuditEvent.Action.CREATE,
        object_type="workup.protocol",
        object_id=draft.pk,
        summary=f"{draft.code} {reason}: every part of the version and its cases copied",
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
    save_as(protocol, user, reason="published")
    retire_superseded(code=protocol.code, user=user, reason=f"replaced by v{protocol.version}")
    transaction.on_commit(clear_cache)
    return protocol
