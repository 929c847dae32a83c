"""The one read path: a workup -> its records and marks -> facts -> one evaluation -> checklist.

Every page, the print summary, the exports and the commands read a workup's state
through `load_state` (or `load_read_state` when the marks came with the workup's
own query), so what they show can never disagree. Reads only; the writes are in
`workup/records/`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from django.conf import settings
from django.utils import timezone

from workup.core import checklist as checklist_builder
from workup.core.engine import Evaluation, PatientInput, RecordInput, build_facts, evaluate
from workup.core.spec import ProtocolSpec
from workup.models import Protocol, StepRecord, Workup
from workup.protocols.cache import get_spec
from workup.queries.marks import MarkRow, mark_rows, mark_rows_from_models, user_name


def default_protocol_code() -> str:
    """The protocol a new workup, the worklist's step filter and the exports use when
    none is named: configuration (WORKUP_DEFAULT_PROTOCOL), not code, so the code
    names no disease and a site running another protocol changes one setting."""
    return settings.WORKUP_DEFAULT_PROTOCOL


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
        return checklist_of(
            self.spec, self.evaluation, [record_view(r) for r in self.records], self.marks
        )


def checklist_of(
    spec: ProtocolSpec,
    evaluation: Evaluation,
    records: list[checklist_builder.RecordView],
    marks: list[MarkRow],
) -> checklist_builder.Checklist:
    """The checklist of an evaluated workup, from its records' views and its mark rows."""
    return checklist_builder.build_checklist(
        spec, evaluation, records, {m.step_code: mark_view(m) for m in marks}
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


# What the rules read of a patient (patient_input): a change to one changes checklists.
PATIENT_RULE_FIELDS = frozenset({"birth_date", "sex"})


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
    return evaluate_inputs(
        spec,
        workup,
        [RecordInput(r.step.code, r.values, r.performed_on, sequence=r.pk or 0) for r in records],
        marks,
    )


def evaluate_inputs(
    spec: ProtocolSpec, workup: Workup, records: list[RecordInput], marks: list[MarkRow]
) -> Evaluation:
    """evaluate_records from plain rows (batch work reads values, not model instances)."""
    facts = build_facts(spec, patient=patient_input(workup), records=records)
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


def current_protocol(code: str | None = None) -> Protocol:
    code = code or default_protocol_code()
    protocol = (
        Protocol.objects.filter(code=code, status=Protocol.Status.PUBLISHED)
        .order_by("-version")
        .first()
    )
    if protocol is None:
        raise NoPublishedProtocol(f"No published version of protocol '{code}'.")
    return protocol
