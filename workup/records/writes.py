"""The clinical writes: open a workup, record a step, mark or unmark it, the adult pathway.

Every function is keyword-only and atomic. A write first claims the workup's
version (optimistic locking: `claim_version`), so that two clinicians cannot
silently overwrite each other; then it saves as the user (audit/attribution.py)
and refreshes the snapshot (snapshot.py) with the one evaluation of the save,
which also gives the "now suggested" message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from workup.audit.attribution import delete_as, save_as
from workup.core import checklist as checklist_builder
from workup.models import Patient, Protocol, StepMark, StepRecord, Workup
from workup.reads import WorkupState, current_protocol
from workup.records.snapshot import SNAPSHOT, refresh_snapshot, shown_before


class WorkupConflict(Exception):
    """The workup changed since the user loaded it; nothing was saved."""


@transaction.atomic
def open_workup(*, patient: Patient, user, protocol: Protocol | None = None) -> Workup:
    """The patient's open workup, or a new one pinned to the current published protocol."""
    existing = patient.workups.filter(status=Workup.Status.OPEN).order_by("-opened_at").first()
    if existing:
        return existing
    workup = Workup(
        patient=patient,
        protocol=protocol or current_protocol(),
        opened_by=user,
        last_change_at=timezone.now(),
        last_change_by=user,
    )
    try:
        with transaction.atomic():
            save_as(workup, user)
    except IntegrityError:
        # Someone opened one a moment ago (one open workup per patient): use theirs.
        return patient.workups.get(status=Workup.Status.OPEN)
    refresh_snapshot(workup)
    return workup


def claim_version(workup: Workup, expected_version: int | None, user) -> bool:
    """Bump the version if nobody else did since `expected_version`; else refuse.

    True when the instance was read at that version: what was read with it (its
    snapshot columns, the marks of `marks_json`) is still current.
    """
    queryset = Workup.objects.filter(pk=workup.pk)
    if expected_version is not None:
        queryset = queryset.filter(version=expected_version)
    now = timezone.now()
    updated = queryset.update(version=F("version") + 1, last_change_at=now, last_change_by=user)
    if not updated:
        raise WorkupConflict(
            "Someone else changed this workup after you opened the form. "
            "Nothing was saved; review the checklist and enter your change again."
        )
    if expected_version is not None and workup.version == expected_version:
        # The row is still the one this instance read (every change bumps the version),
        # so its snapshot columns are what the checklist showed: no need to read them.
        workup.version = expected_version + 1
        workup.last_change_at = now
        workup.last_change_by = user
        return True
    # The snapshot too (same query): what the checklist showed before this write.
    workup.refresh_from_db(fields=["version", "last_change_at", "last_change_by", *SNAPSHOT])
    return False


@dataclass
class SaveResult:
    changes: list[str]
    state: WorkupState


@transaction.atomic
def record_step(
    *,
    workup: Workup,
    step_code: str,
    values: dict[str, Any],
    performed_on: date,
    note: str,
    user,
    expected_version: int | None,
    record: StepRecord | None = None,
) -> SaveResult:
    """Save a step's result (new, or an edit of `record`) and re-evaluate the checklist."""
    # First: a refused write costs one UPDATE.
    current = claim_version(workup, expected_version, user)
    before = shown_before(workup)
    step = workup.protocol.stepdefinition_set.get(code=step_code)
    if record is None:
        record = StepRecord(workup=workup, step=step, recorded_by=user)
    record.values = values
    record.performed_on = performed_on
    record.note = note
    save_as(record, user)
    # A result supersedes an "ordered" (or any other) mark on the step.
    if not (current and _read_without_mark(workup, step_code)):
        for mark in workup.marks.filter(step=step):
            delete_as(mark, user)
    return _finish(workup, before)


def _read_without_mark(workup: Workup, step_code: str) -> bool:
    """The marks read with the workup (`marks_json`, if it was) hold none on this step."""
    if not hasattr(workup, "marks_json"):
        return False
    return all(item["step_code"] != step_code for item in workup.marks_json or ())


@transaction.atomic
def set_mark(
    *, workup: Workup, step_code: str, status: str, reason: str, user, expected_version: int | None
) -> SaveResult:
    claim_version(workup, expected_version, user)  # first: a refused write costs one UPDATE
    before = shown_before(workup)
    step = workup.protocol.stepdefinition_set.get(code=step_code)
    mark = workup.marks.filter(step=step).first() or StepMark(workup=workup, step=step)
    mark.status = status
    mark.reason = reason
    mark.set_by = user
    save_as(mark, user)
    return _finish(workup, before)


@transaction.atomic
def clear_mark(*, workup: Workup, step_code: str, user, expected_version: int | None) -> SaveResult:
    claim_version(workup, expected_version, user)  # first: a refused write costs one UPDATE
    before = shown_before(workup)
    for mark in workup.marks.filter(step__code=step_code):
        delete_as(mark, user)
    return _finish(workup, before)


@transaction.atomic
def set_adult_pathway(
    *, workup: Workup, enabled: bool, reason: str, user, expected_version: int | None
) -> SaveResult:
    """D14: the clinician moves a post-pubertal adolescent to the adult pathway, or back."""
    claim_version(workup, expected_version, user)  # first: a refused write costs one UPDATE
    before = shown_before(workup)
    workup.adult_pathway = enabled
    workup.adult_pathway_reason = reason if enabled else ""
    save_as(workup, user, update_fields=["adult_pathway", "adult_pathway_reason"])
    return _finish(workup, before)


def _finish(workup: Workup, before: checklist_builder.ShownBefore) -> SaveResult:
    """The one evaluation of a save: the snapshot's, compared with what was shown before."""
    after = refresh_snapshot(workup)
    changes = checklist_builder.describe_changes(after.spec, before, after.evaluation)
    return SaveResult(changes=changes, state=after)
