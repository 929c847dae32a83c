"""The clinical writes: open a workup, record a step, mark or unmark it, the adult pathway.

Every function is keyword-only and atomic. A write claims the workup's version
(optimistic locking), so that two clinicians cannot silently overwrite each
other; it saves as the user (audit/attribution.py) and stores the snapshot
(snapshot.py) with the one evaluation of the save, which also gives the "now
suggested" message. A view passes the state its form was read with (`read`):
then the save reads nothing again and claims the version in the snapshot's
UPDATE (see `_Save`), so a step save is 12 statements or fewer.
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
from workup.protocols.cache import get_step
from workup.queries.marks import MarkRow, mark_rows_from_models
from workup.reads import PATIENT_RULE_FIELDS, WorkupState, current_protocol
from workup.records.snapshot import (
    SNAPSHOT,
    Claim,
    refresh_snapshot,
    shown_before,
    store_snapshot,
)


class WorkupConflict(Exception):
    """The workup changed since the user loaded it; nothing was saved."""


CONFLICT_MESSAGE = (
    "Someone else changed this workup after you opened the form. "
    "Nothing was saved; review the checklist and enter your change again."
)


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


@transaction.atomic
def patient_changed(*, patient: Patient, fields: set[str], user) -> None:
    """After an edit of the patient: if it changed what the rules read (age, sex), each
    open workup's checklist and snapshot follow at once, under a new version."""
    if not fields & PATIENT_RULE_FIELDS:
        return
    for workup in patient.workups.filter(status=Workup.Status.OPEN).select_related(
        "patient", "protocol"
    ):
        try:
            claim_version(workup, workup.version, user)  # just read: its snapshot is current
        except WorkupConflict:  # saved a moment ago: take it as it is now
            claim_version(workup, None, user)
        refresh_snapshot(workup)


def claim_version(workup: Workup, expected_version: int | None, user) -> None:
    """Bump the version if nobody else did since `expected_version`; else refuse.

    Afterwards the instance holds the snapshot the checklist showed before this write
    (read again unless the instance was read at `expected_version`).
    """
    queryset = Workup.objects.filter(pk=workup.pk)
    if expected_version is not None:
        queryset = queryset.filter(version=expected_version)
    now = timezone.now()
    updated = queryset.update(version=F("version") + 1, last_change_at=now, last_change_by=user)
    if not updated:
        raise WorkupConflict(CONFLICT_MESSAGE)
    if expected_version is not None and workup.version == expected_version:
        # The row is still the one this instance read (every change bumps the version),
        # so its snapshot columns are what the checklist showed: no need to read them.
        workup.version = expected_version + 1
        workup.last_change_at = now
        workup.last_change_by = user
        return
    # The snapshot too (same query): what the checklist showed before this write.
    workup.refresh_from_db(fields=["version", "last_change_at", "last_change_by", *SNAPSHOT])


@dataclass
class SaveResult:
    changes: list[str]
    state: WorkupState


class _Save:
    """One write of a workup: when its version is claimed, what was shown before, the state after.

    When the caller passes `read`, the state its form was built from, and that was read
    at the version the user sends back, the save builds on it instead of reading again:
    it changes its rows first and claims the version last, in the UPDATE that stores
    the new snapshot; if someone else changed the workup meanwhile that UPDATE matches
    nothing and WorkupConflict rolls the whole write back. Otherwise the version is
    claimed first and the state read again after the change.
    """

    def __init__(self, workup: Workup, expected_version: int | None, user, read):
        self.workup = workup
        if read is not None and expected_version is not None and workup.version == expected_version:
            self.read: WorkupState | None = read
            self.claim: Claim | None = Claim(expected_version, user, timezone.now())
        else:
            self.read = self.claim = None
            claim_version(workup, expected_version, user)  # first: a refused write costs one UPDATE
        self.before = shown_before(workup)

    def may_have_mark(self, step_code: str) -> bool:
        """Whether the step may hold a mark: unknown without a current read."""
        return self.read is None or any(m.step_code == step_code for m in self.read.marks)

    def finish(
        self, *, records: list[StepRecord] | None = None, marks: list[MarkRow] | None = None
    ) -> SaveResult:
        """The one evaluation of a save, stored as the snapshot and compared with before."""
        if self.read is None:
            after = refresh_snapshot(self.workup)
        else:
            after = WorkupState(
                self.workup,
                self.read.spec,
                self.read.records if records is None else records,
                self.read.marks if marks is None else marks,
            )
            if not store_snapshot(self.workup, after, claim=self.claim):
                raise WorkupConflict(CONFLICT_MESSAGE)
        changes = checklist_builder.describe_changes(after.spec, self.before, after.evaluation)
        return SaveResult(changes=changes, state=after)


def _without_step(marks: list[MarkRow], step_code: str) -> list[MarkRow]:
    return [m for m in marks if m.step_code != step_code]


def _in_read_order(records: list[StepRecord]) -> list[StepRecord]:
    """The order load_state reads them in (a new record has the newest time and id)."""
    return sorted(records, key=lambda r: (r.performed_on, r.recorded_at, r.pk))


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
    read: WorkupState | None = None,
) -> SaveResult:
    """Save a step's result (new, or an edit of `record`) and re-evaluate the checklist."""
    save = _Save(workup, expected_version, user, read)
    step = get_step(workup.protocol, step_code)
    if record is None:
        record = StepRecord(workup=workup, step=step, recorded_by=user)
    record.values = values
    record.performed_on = performed_on
    record.note = note
    save_as(record, user)
    # A result supersedes an "ordered" (or any other) mark on the step.
    if save.may_have_mark(step_code):
        for mark in workup.marks.filter(step=step).select_related("step"):
            delete_as(mark, user)
    if save.read is None:
        return save.finish()
    records = [r for r in save.read.records if r.pk != record.pk] + [record]
    return save.finish(
        records=_in_read_order(records), marks=_without_step(save.read.marks, step_code)
    )


@transaction.atomic
def set_mark(
    *,
    workup: Workup,
    step_code: str,
    status: str,
    reason: str,
    user,
    expected_version: int | None,
    read: WorkupState | None = None,
) -> SaveResult:
    save = _Save(workup, expected_version, user, read)
    step = get_step(workup.protocol, step_code)
    mark = workup.marks.filter(step=step).first() if save.may_have_mark(step_code) else None
    mark = mark or StepMark(workup=workup, step=step)
    mark.status = status
    mark.reason = reason
    mark.set_by = user
    save_as(mark, user)
    if save.read is None:
        return save.finish()
    marks = _without_step(save.read.marks, step_code) + mark_rows_from_models([mark])
    return save.finish(marks=marks)


@transaction.atomic
def clear_mark(
    *,
    workup: Workup,
    step_code: str,
    user,
    expected_version: int | None,
    read: WorkupState | None = None,
) -> SaveResult:
    save = _Save(workup, expected_version, user, read)
    if save.may_have_mark(step_code):
        # With its step: the audit row names it.
        for mark in workup.marks.filter(step__code=step_code).select_related("step"):
            delete_as(mark, user)
    if save.read is None:
        return save.finish()
    return save.finish(marks=_without_step(save.read.marks, step_code))


@transaction.atomic
def set_adult_pathway(
    *,
    workup: Workup,
    enabled: bool,
    reason: str,
    user,
    expected_version: int | None,
    read: WorkupState | None = None,
) -> SaveResult:
    """D14: the clinician moves a post-pubertal adolescent to the adult pathway, or back."""
    save = _Save(workup, expected_version, user, read)
    workup.adult_pathway = enabled
    workup.adult_pathway_reason = reason if enabled else ""
    save_as(workup, user, update_fields=["adult_pathway", "adult_pathway_reason"])
    return save.finish()
