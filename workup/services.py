"""The writes: open a workup, record a step, mark a step; and the snapshot.

Every function is keyword-only and atomic. Writes to a workup check its
version (optimistic locking) so that two clinicians cannot silently overwrite
each other, and refresh the workup's snapshot so lists never evaluate rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from . import checklist as checklist_builder
from .engine import Evaluation, PatientInput, RecordInput, build_facts, evaluate
from .marks_query import MarkRow, mark_rows, mark_rows_from_models, user_name
from .models import Patient, Protocol, StepMark, StepRecord, Workup, WorkupSuggestion
from .protocol_cache import get_spec
from .spec import ProtocolSpec

DEFAULT_PROTOCOL_CODE = "mastocytosis"


class WorkupConflict(Exception):
    """The workup changed since the user loaded it; nothing was saved."""


class NoPublishedProtocol(Exception):
    pass


@dataclass
class WorkupState:
    """Everything the checklist needs about one workup, loaded in a bounded number of queries."""

    workup: Workup
    spec: ProtocolSpec
    records: list[StepRecord]
    marks: list[MarkRow]
    # Evaluated on first use: a POST that only reads the records to save evaluates nothing.
    _evaluation: Evaluation | None = field(default=None, repr=False)

    @property
    def evaluation(self) -> Evaluation:
        if self._evaluation is None:
            self._evaluation = evaluate_records(self.spec, self.workup, self.records, self.marks)
        return self._evaluation

    def checklist(self) -> checklist_builder.Checklist:
        return checklist_builder.build_checklist(
            self.spec,
            self.evaluation,
            [record_view(r) for r in self.records],
            {m.step_code: mark_view(m) for m in self.marks},
        )


def record_view(record: StepRecord) -> checklist_builder.RecordView:
    return checklist_builder.RecordView(
        id=record.pk,
        step_code=record.step.code,
        values=record.values,
        performed_on=record.performed_on,
        note=record.note,
        recorded_by=user_name(record.recorded_by),
        recorded_at=record.recorded_at,
    )


def mark_view(mark: MarkRow) -> checklist_builder.MarkView:
    return checklist_builder.MarkView(
        status=mark.status, reason=mark.reason, set_by=mark.set_by, set_at=mark.set_at
    )


def patient_input(workup: Workup, on: date | None = None) -> PatientInput:
    patient = workup.patient
    return PatientInput(
        age_years=patient.age_years_on(on or timezone.localdate()),
        sex=patient.sex,
        adult_pathway=workup.adult_pathway,
    )


def evaluate_records(
    spec: ProtocolSpec, workup: Workup, records: list[StepRecord], marks: list[MarkRow]
) -> Evaluation:
    facts = build_facts(
        spec,
        patient=patient_input(workup),
        records=[
            RecordInput(r.step.code, r.values, r.performed_on, sequence=r.pk or 0) for r in records
        ],
    )
    return evaluate(spec, facts, marks={m.step_code: m.status for m in marks})


def load_state(workup: Workup, *, marks: list[MarkRow] | None = None) -> WorkupState:
    """One query for the results, one for the marks unless given (read with the workup:
    access.get_workup_for_user(..., with_marks=True)); the protocol is cached once published."""
    spec = get_spec(workup.protocol)
    records = list(
        workup.records.select_related("step", "recorded_by").order_by(
            "performed_on", "recorded_at", "id"
        )
    )
    if marks is None:
        marks = mark_rows_from_models(workup.marks.select_related("step", "set_by"))
    return WorkupState(workup, spec, records, marks)


def load_read_state(workup: Workup) -> WorkupState:
    """load_state using the marks read with the workup (get_workup_for_user(with_marks=True));
    a workup fetched without them costs the marks query."""
    if not hasattr(workup, "marks_json"):
        return load_state(workup)
    return load_state(workup, marks=mark_rows(workup.marks_json))


def current_protocol(code: str = DEFAULT_PROTOCOL_CODE) -> Protocol:
    protocol = (
        Protocol.objects.filter(code=code, status=Protocol.Status.PUBLISHED)
        .order_by("-version")
        .first()
    )
    if protocol is None:
        raise NoPublishedProtocol(f"No published version of protocol '{code}'.")
    return protocol


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
            _save_as(workup, user)
    except IntegrityError:
        # Someone opened one a moment ago (one open workup per patient): use theirs.
        return patient.workups.get(status=Workup.Status.OPEN)
    refresh_snapshot(workup)
    return workup


def _save_as(instance, user) -> None:
    """Save, naming the user in the history (and so in the audit trail) outside a request too."""
    instance._history_user = user
    instance.save()


def _delete_as(instance, user) -> None:
    instance._history_user = user
    instance.delete()


def _claim_version(workup: Workup, expected_version: int | None, user) -> None:
    """Bump the version if nobody else did since `expected_version`; else refuse."""
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
    # The snapshot too (same query): what the checklist showed before this write.
    workup.refresh_from_db(fields=["version", "last_change_at", "last_change_by", *SNAPSHOT])


SNAPSHOT = ("suggested_steps", "not_yet_steps", "suggestion_rules")


def shown_before(workup: Workup) -> checklist_builder.ShownBefore:
    """The checklist as the workup's snapshot has it (read by _claim_version)."""
    rules = workup.suggestion_rules or {}
    return checklist_builder.ShownBefore(
        suggested={code: rules.get(code) for code in workup.suggested_steps or ()},
        not_yet=frozenset(workup.not_yet_steps or ()),
    )


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
    _claim_version(workup, expected_version, user)  # first: a refused write costs one UPDATE
    before = shown_before(workup)
    step = workup.protocol.stepdefinition_set.get(code=step_code)
    if record is None:
        record = StepRecord(workup=workup, step=step, recorded_by=user)
    record.values = values
    record.performed_on = performed_on
    record.note = note
    _save_as(record, user)
    # A result supersedes an "ordered" (or any other) mark on the step.
    for mark in workup.marks.filter(step=step):
        _delete_as(mark, user)
    return _finish(workup, before)


@transaction.atomic
def set_mark(
    *, workup: Workup, step_code: str, status: str, reason: str, user, expected_version: int | None
) -> SaveResult:
    _claim_version(workup, expected_version, user)  # first: a refused write costs one UPDATE
    before = shown_before(workup)
    step = workup.protocol.stepdefinition_set.get(code=step_code)
    mark = workup.marks.filter(step=step).first() or StepMark(workup=workup, step=step)
    mark.status = status
    mark.reason = reason
    mark.set_by = user
    _save_as(mark, user)
    return _finish(workup, before)


@transaction.atomic
def clear_mark(*, workup: Workup, step_code: str, user, expected_version: int | None) -> SaveResult:
    _claim_version(workup, expected_version, user)  # first: a refused write costs one UPDATE
    before = shown_before(workup)
    for mark in workup.marks.filter(step__code=step_code):
        _delete_as(mark, user)
    return _finish(workup, before)


@transaction.atomic
def set_adult_pathway(
    *, workup: Workup, enabled: bool, reason: str, user, expected_version: int | None
) -> SaveResult:
    """D14: the clinician moves a post-pubertal adolescent to the adult pathway, or back."""
    _claim_version(workup, expected_version, user)  # first: a refused write costs one UPDATE
    before = shown_before(workup)
    workup.adult_pathway = enabled
    workup.adult_pathway_reason = reason if enabled else ""
    workup._history_user = user
    workup.save(update_fields=["adult_pathway", "adult_pathway_reason"])
    return _finish(workup, before)


def _finish(workup: Workup, before: checklist_builder.ShownBefore) -> SaveResult:
    """The one evaluation of a save: the snapshot's, compared with what was shown before."""
    after = refresh_snapshot(workup)
    changes = checklist_builder.describe_changes(after.spec, before, after.evaluation)
    return SaveResult(changes=changes, state=after)


def set_snapshot_columns(workup: Workup, checklist: checklist_builder.Checklist) -> None:
    """The precomputed columns lists read (on the instance; the caller saves them)."""
    workup.progress_done = checklist.progress_done
    workup.progress_applicable = checklist.progress_applicable
    workup.suggested_steps = [item.code for item in checklist.suggested]
    workup.not_yet_steps = [item.code for item in checklist.not_yet]
    workup.suggestion_rules = {
        item.code: [r.code for r in item.reasons] for item in checklist.suggested
    }


def snapshot_rows(workup: Workup) -> list[WorkupSuggestion]:
    """The indexed rows behind the worklist's step filters, from the snapshot columns."""
    return [
        WorkupSuggestion(workup=workup, step_code=code, state=state)
        for state, codes in (
            (WorkupSuggestion.State.SUGGESTED, workup.suggested_steps),
            (WorkupSuggestion.State.NOT_YET, workup.not_yet_steps),
        )
        for code in codes
    ]


def refresh_snapshot(workup: Workup) -> WorkupState:
    """Store progress, suggested and not-yet steps on the workup, so lists never evaluate rules."""
    state = load_state(workup)
    set_snapshot_columns(workup, state.checklist())
    Workup.objects.filter(pk=workup.pk).update(
        progress_done=workup.progress_done,
        progress_applicable=workup.progress_applicable,
        suggested_steps=workup.suggested_steps,
        not_yet_steps=workup.not_yet_steps,
        suggestion_rules=workup.suggestion_rules,
    )
    wanted = {(row.step_code, row.state): row for row in snapshot_rows(workup)}
    existing = set(WorkupSuggestion.objects.filter(workup=workup).values_list("step_code", "state"))
    # One row per step (unique): a row whose state changed is replaced.
    stale = [code for code, row_state in existing if (code, row_state) not in wanted]
    if stale:
        WorkupSuggestion.objects.filter(workup=workup, step_code__in=stale).delete()
    WorkupSuggestion.objects.bulk_create(
        [row for key, row in wanted.items() if key not in existing]
    )
    return state
