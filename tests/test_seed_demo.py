"""seed_demo: synthetic patients whose precomputed columns match what the services compute."""

from io import StringIO

import pytest
from django.core.management import call_command

from workup import services
from workup.models import Patient, Site, StepRecord, Workup

pytestmark = pytest.mark.django_db


def test_it_seeds_patients_over_sites_at_many_stages_with_correct_snapshots():
    call_command("seed_demo", "--patients", "120", "--sites", "3", stdout=StringIO())
    assert Patient.objects.filter(mrn__startswith="SYN").count() == 120
    assert Site.objects.filter(code__startswith="synthetic-").count() == 3
    assert Workup.objects.count() == 120
    assert StepRecord.objects.filter(step__code="serum_tryptase").count() > 0
    assert len({w.progress_done for w in Workup.objects.all()}) > 3  # many stages
    for workup in Workup.objects.select_related("patient", "protocol").order_by("?")[:15]:
        stored = (workup.progress_done, workup.progress_applicable, workup.suggested_steps)
        services.refresh_snapshot(workup)
        workup.refresh_from_db()
        assert stored == (workup.progress_done, workup.progress_applicable, workup.suggested_steps)
        assert sorted(workup.suggestions.values_list("step_code", flat=True)) == sorted(
            workup.suggested_steps
        )


def test_seeding_twice_adds_new_patients_without_clashes():
    call_command("seed_demo", "--patients", "10", stdout=StringIO())
    call_command("seed_demo", "--patients", "10", stdout=StringIO())
    assert Patient.objects.filter(mrn__startswith="SYN").count() == 20
    # Ordinary inserts still work after ids were chosen by the seeder.
    Site.objects.create(code="after", name="After seeding")
