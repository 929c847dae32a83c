"""The plain data every export is built from: no ORM, no request.

`loading.py` fills these from the database; the CSV and FHIR builders only read
them, so they are tested without a database and can never disagree with each
other about what a workup contains.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

from workup.core.checklist import MarkView, RecordView
from workup.core.engine import Evaluation, PatientInput, RecordInput, build_facts, evaluate
from workup.core.spec import ProtocolSpec


@dataclass(frozen=True)
class PatientData:
    id: int
    site_code: str
    site_name: str
    mrn: str
    family_name: str
    given_name: str
    birth_date: date
    sex: str
    # Age on the day of the export, as the checklist's rules see it.
    age_years: float | None
    # Stable per site and patient, not reversible without the secret (policy.py).
    pseudonym: str


@dataclass(frozen=True)
class WorkupData:
    id: int
    pseudonym: str
    status: str
    opened_at: datetime | None
    adult_pathway: bool
    patient: PatientData


@dataclass
class WorkupExport:
    """One workup with everything an export shows: records, marks and the rules' outcome."""

    workup: WorkupData
    records: list[RecordView]
    marks: dict[str, MarkView]
    evaluation: Evaluation

    @property
    def patient(self) -> PatientData:
        return self.workup.patient


def evaluate_workup(
    spec: ProtocolSpec,
    *,
    patient: PatientData,
    adult_pathway: bool,
    records: list[RecordView],
    marks: Mapping[str, MarkView],
) -> Evaluation:
    """The same evaluation as the checklist page (services.evaluate_records), from plain data."""
    facts = build_facts(
        spec,
        patient=PatientInput(
            age_years=patient.age_years, sex=patient.sex, adult_pathway=adult_pathway
        ),
        records=[
            RecordInput(r.step_code, r.values, r.performed_on, sequence=r.id or 0) for r in records
        ],
    )
    return evaluate(spec, facts, marks={code: mark.status for code, mark in marks.items()})
