"""A save builds on the state its form was read with, and never on a stale one.

A step save, a mark and the adult-pathway choice reuse the results, marks and
snapshot read with the workup, and claim the version in the UPDATE that stores
the new snapshot (records/writes.py `_Save`). That is only right while the
snapshot changes with the version alone; these tests hold the app to it:
a save that lost the race rolls back whole, and the changes that move a
snapshot without a clinician's save (refresh_workups, an edit of the patient's
birth date or sex) move the version too, so a form opened before them is refused.
"""

from __future__ import annotations

from datetime import date
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from workup import reads
from workup.models import AuditEvent, StepRecord, Workup, WorkupSuggestion
from workup.queries.marks import marks_json
from workup.records import writes

from .conftest import worked_up
from .factories import PatientFactory

pytestmark = pytest.mark.django_db


def rows_match_columns(workup: Workup) -> bool:
    """The worklist's indexed rows say what the workup's snapshot columns say."""
    workup.refresh_from_db()
    rows = set(WorkupSuggestion.objects.filter(workup=workup).values_list("step_code", "state"))
    columns = {(code, "suggested") for code in workup.suggested_steps} | {
        (code, "not_yet") for code in workup.not_yet_steps
    }
    return rows == columns


def fresh_snapshot(workup: Workup) -> tuple:
    checklist = reads.load_state(workup).checklist()
    return (
        checklist.progress_applicable,
        [item.code for item in checklist.suggested],
        [item.code for item in checklist.not_yet],
    )


def stored_snapshot(workup: Workup) -> tuple:
    workup.refresh_from_db()
    return (workup.progress_applicable, workup.suggested_steps, workup.not_yet_steps)


@pytest.fixture
def workup(site_a, clinician_a):
    patient = PatientFactory(site=site_a, birth_date=date(1970, 3, 1))
    return worked_up(writes.open_workup(patient=patient, user=clinician_a), clinician_a)


def tryptase_post(version: int, value: str = "41.5") -> dict:
    return {
        "workup_version": version,
        "loaded_at": "0",
        "value_ng_ml": value,
        "is_baseline": "no",
        "performed_on": "2026-02-01",
    }


def test_a_save_that_lost_the_race_after_its_read_rolls_back_whole(workup, clinician_a):
    # Read as the step form reads: the workup with its marks, then its results.
    mine = Workup.objects.filter(pk=workup.pk).annotate(marks_json=marks_json()).get()
    read = reads.load_read_state(mine)
    version = mine.version
    # Someone else saves between this read and the save (their own read of the workup).
    writes.record_step(
        workup=Workup.objects.get(pk=workup.pk),
        step_code="cbc_diff",
        values={"hemoglobin_g_dl": 13.1},
        performed_on=date(2026, 2, 1),
        note="",
        user=clinician_a,
        expected_version=version,
    )
    records, events = StepRecord.objects.count(), AuditEvent.objects.count()
    theirs = stored_snapshot(workup)

    with pytest.raises(writes.WorkupConflict):
        writes.record_step(
            workup=mine,
            step_code="serum_tryptase",
            values={"value_ng_ml": 41.5, "is_baseline": False},
            performed_on=date(2026, 2, 2),
            note="",
            user=clinician_a,
            expected_version=version,
            read=read,
        )

    assert StepRecord.objects.count() == records  # the record, its history, its audit row:
    assert AuditEvent.objects.count() == events  # all rolled back with the refused claim
    assert stored_snapshot(workup) == theirs
    assert Workup.objects.get(pk=workup.pk).version == version + 1
    assert rows_match_columns(workup)


def test_saves_keep_the_worklist_rows_equal_to_the_snapshot(client, workup, clinician_a):
    client.force_login(clinician_a)

    def version():
        workup.refresh_from_db()
        return workup.version

    steps = [
        ("step_mark", "urine_mediators", {"status": "ordered", "reason": ""}),
        ("step_form", "urine_mediators", None),
        ("step_mark", "dexa", {"status": "declined", "reason": "Declined in clinic."}),
        ("step_unmark", "dexa", {}),
        ("step_form", "serum_tryptase", None),
    ]
    for route, step_code, data in steps:
        if data is None:
            response = client.get(reverse(route, args=[workup.pk, step_code]))
            assert response.status_code == 200
            data = (
                tryptase_post(version())
                if step_code == "serum_tryptase"
                else {
                    "workup_version": version(),
                    "loaded_at": "0",
                    "performed_on": "2026-02-01",
                    "any_elevated": "yes",
                }
            )
        else:
            data = {"workup_version": version(), **data}
        response = client.post(reverse(route, args=[workup.pk, step_code]), data)
        assert response.status_code == 302, (route, step_code, response.status_code)
        assert rows_match_columns(workup), (route, step_code)
        assert stored_snapshot(workup) == fresh_snapshot(workup), (route, step_code)


def test_a_form_opened_before_refresh_workups_is_refused_and_keeps_what_was_typed(
    client, workup, clinician_a
):
    client.force_login(clinician_a)
    form = client.get(reverse("step_form", args=[workup.pk, "serum_tryptase"]))
    version = form.context["form"].initial["workup_version"]

    call_command("refresh_workups", stdout=StringIO())
    response = client.post(
        reverse("step_form", args=[workup.pk, "serum_tryptase"]), tryptase_post(version, "77.5")
    )

    assert response.status_code == 409
    assert response.context["form"]["value_ng_ml"].value() == "77.5"
    assert not StepRecord.objects.filter(workup=workup, values__value_ng_ml=77.5).exists()
    assert rows_match_columns(workup)
    # Sent again from the conflict page (its fresh token), it saves.
    again = response.context["form"].data.copy()
    response = client.post(reverse("step_form", args=[workup.pk, "serum_tryptase"]), again)
    assert response.status_code == 302
    assert StepRecord.objects.filter(workup=workup, values__value_ng_ml=77.5).exists()
    assert rows_match_columns(workup)


def test_a_new_birth_date_moves_the_open_workups_snapshot_at_once(client, workup, clinician_a):
    """The worklist and its filters follow a corrected birth date without waiting for a save."""
    client.force_login(clinician_a)
    patient = workup.patient
    before = stored_snapshot(workup)
    version = workup.version
    form = client.get(reverse("step_form", args=[workup.pk, "serum_tryptase"]))
    assert form.status_code == 200

    response = client.post(
        reverse("patient_detail", args=[patient.pk]),
        {
            "site": patient.site_id,
            "mrn": patient.mrn,
            "family_name": patient.family_name,
            "given_name": patient.given_name,
            "birth_date": "2019-05-01",  # a child: the pediatric pathway
            "sex": patient.sex,
        },
    )

    assert response.status_code == 302
    after = stored_snapshot(workup)
    assert after != before
    assert after == fresh_snapshot(workup)
    assert rows_match_columns(workup)
    assert workup.version == version + 1
    # The step form opened before the change is refused: its checklist no longer holds.
    refused = client.post(
        reverse("step_form", args=[workup.pk, "serum_tryptase"]), tryptase_post(version)
    )
    assert refused.status_code == 409


def test_an_edit_of_the_name_alone_leaves_the_workup_as_it_was(client, workup, clinician_a):
    client.force_login(clinician_a)
    patient = workup.patient
    version = workup.version
    response = client.post(
        reverse("patient_detail", args=[patient.pk]),
        {
            "site": patient.site_id,
            "mrn": patient.mrn,
            "family_name": "Renamed",
            "given_name": patient.given_name,
            "birth_date": patient.birth_date.isoformat(),
            "sex": patient.sex,
        },
    )
    assert response.status_code == 302
    workup.refresh_from_db()
    assert workup.version == version
