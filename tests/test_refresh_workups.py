"""refresh_workups: the worklist's precomputed columns rebuilt in batches."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from workup import reads
from workup.models import Workup, WorkupSuggestion
from workup.records import writes

from .conftest import record
from .factories import PatientFactory

pytestmark = pytest.mark.django_db


def expected_snapshot(workup: Workup) -> tuple:
    checklist = reads.load_state(workup).checklist()
    return (
        checklist.progress_done,
        checklist.progress_applicable,
        [item.code for item in checklist.suggested],
        [item.code for item in checklist.not_yet],
        {item.code: [r.code for r in item.reasons] for item in checklist.suggested},
    )


def stored_snapshot(workup: Workup) -> tuple:
    workup.refresh_from_db()
    return (
        workup.progress_done,
        workup.progress_applicable,
        workup.suggested_steps,
        workup.not_yet_steps,
        workup.suggestion_rules,
    )


def test_stale_snapshots_are_rebuilt_for_every_open_workup(client, clinician_a, site_a):
    workups = []
    for n in range(7):
        patient = PatientFactory(site=site_a, family_name=f"Stale{n}")
        workup = writes.open_workup(patient=patient, user=clinician_a)
        if n % 2:
            record(
                workup,
                clinician_a,
                "serum_tryptase",
                {"value_ng_ml": 30.0 + n, "is_baseline": True},
            )
        workups.append(workup)
    expected = {w.pk: expected_snapshot(w) for w in workups}
    # What a protocol change or the calendar leaves behind: snapshots that no longer hold.
    Workup.objects.update(
        progress_done=0,
        progress_applicable=0,
        suggested_steps=[],
        not_yet_steps=[],
        suggestion_rules={},
    )
    WorkupSuggestion.objects.all().delete()
    versions = dict(Workup.objects.values_list("pk", "version"))

    out = StringIO()
    call_command("refresh_workups", "--batch-size", "3", stdout=out)

    assert "Refreshed 7 workups and the planner's statistics" in out.getvalue()
    assert {w.pk: stored_snapshot(w) for w in workups} == expected
    # Every snapshot that changed did so under a new version (a form opened before conflicts).
    assert dict(Workup.objects.values_list("pk", "version")) == {
        pk: version + 1 for pk, version in versions.items()
    }
    assert any(expected[w.pk][4] for w in workups)  # the JSON object column, written back
    suggested_somewhere = next(code for w in workups for code in expected[w.pk][2])
    client.force_login(clinician_a)
    listed = client.get(reverse("worklist"), {"step": suggested_somewhere}).context["rows"]
    assert {p.pk for p, *_ in listed} == {
        w.patient_id for w in workups if suggested_somewhere in expected[w.pk][2]
    }


def test_closed_workups_only_with_all(clinician_a, site_a):
    workup = writes.open_workup(patient=PatientFactory(site=site_a), user=clinician_a)
    Workup.objects.filter(pk=workup.pk).update(status="closed", progress_applicable=0)

    call_command("refresh_workups", stdout=StringIO())
    assert stored_snapshot(workup)[1] == 0
    call_command("refresh_workups", "--all", stdout=StringIO())
    assert stored_snapshot(workup)[1] > 0
