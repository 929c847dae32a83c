"""The ORM side of the exports: workups in keyset chunks, as plain data.

Memory stays bounded whatever the number of workups: one chunk (500 by
default) is in memory at a time, and each chunk costs three queries (workups
with patient and site, their records, their marks), never one per row. The
callers choose *which* workups: always a queryset from `access.workups_for_user`
(views) or of one site (the command).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import date

from django.utils import timezone

from workup.core.checklist import MarkView, RecordView
from workup.core.spec import ProtocolSpec
from workup.exports import policy
from workup.exports.data import PatientData, WorkupData, WorkupExport, evaluate_workup
from workup.exports.pseudonym import patient_pseudonym, workup_pseudonym
from workup.models import StepMark, StepRecord, Workup

CHUNK_SIZE = 500


def iter_exports(
    workups,
    spec: ProtocolSpec,
    *,
    chunk_size: int = CHUNK_SIZE,
    today: date | None = None,
    with_notes: bool = False,
) -> Iterator[WorkupExport]:
    """Every workup of the queryset (all of one protocol version), in id order, evaluated."""
    today = today or timezone.localdate()
    secret = policy.pseudonym_secret()
    last_id = 0
    while True:
        batch = list(
            workups.filter(pk__gt=last_id)
            .select_related("patient__site")
            .order_by("pk")[:chunk_size]
        )
        if not batch:
            return
        last_id = batch[-1].pk
        ids = [w.pk for w in batch]
        records: dict[int, list[RecordView]] = defaultdict(list)
        fields = ["id", "workup_id", "step__code", "values", "performed_on"]
        if with_notes:
            fields.append("note")
        rows = (
            StepRecord.objects.filter(workup_id__in=ids)
            .order_by("performed_on", "recorded_at", "id")
            .values_list(*fields)
        )
        for record_id, workup_id, step_code, values, performed_on, *note in rows:
            records[workup_id].append(
                RecordView(
                    id=record_id,
                    step_code=step_code,
                    values=values,
                    performed_on=performed_on,
                    note=note[0] if note else "",
                )
            )
        marks: dict[int, dict[str, MarkView]] = defaultdict(dict)
        for workup_id, step_code, status, reason, set_at in StepMark.objects.filter(
            workup_id__in=ids
        ).values_list("workup_id", "step__code", "status", "reason", "set_at"):
            marks[workup_id][step_code] = MarkView(
                status=status, reason=reason if with_notes else "", set_at=set_at
            )
        for workup in batch:
            yield _export(spec, workup, records[workup.pk], marks[workup.pk], today, secret)
        del batch, records, marks


def load_export(workup: Workup, spec: ProtocolSpec, *, with_notes: bool) -> WorkupExport:
    """One workup, through the same code path as the bulk export."""
    return next(iter_exports(Workup.objects.filter(pk=workup.pk), spec, with_notes=with_notes))


def _export(spec, workup, records, marks, today, secret) -> WorkupExport:
    patient = workup.patient
    site = patient.site
    patient_data = PatientData(
        id=patient.pk,
        site_code=site.code,
        site_name=site.name,
        mrn=patient.mrn,
        family_name=patient.family_name,
        given_name=patient.given_name,
        birth_date=patient.birth_date,
        sex=patient.sex,
        age_years=patient.age_years_on(today),
        pseudonym=patient_pseudonym(secret, site.code, patient.pk),
    )
    data = WorkupData(
        id=workup.pk,
        pseudonym=workup_pseudonym(secret, site.code, workup.pk),
        status=workup.status,
        opened_at=workup.opened_at,
        adult_pathway=workup.adult_pathway,
        patient=patient_data,
    )
    evaluation = evaluate_workup(
        spec,
        patient=patient_data,
        adult_pathway=workup.adult_pathway,
        records=records,
        marks=marks,
    )
    return WorkupExport(workup=data, records=records, marks=marks, evaluation=evaluation)
