"""seed_demo: synthetic patients whose precomputed columns match what the app computes.

Runs on SQLite (executemany) and, with DATABASE_URL, on PostgreSQL (COPY).
"""

from datetime import date
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from workup.core.search_keys import search_key
from workup.models import Patient, Site, StepMark, StepRecord, Workup
from workup.records import snapshot, writes

pytestmark = pytest.mark.django_db


def seed(patients: int, sites: int = 1) -> str:
    out, err = StringIO(), StringIO()
    call_command(
        "seed_demo", "--patients", str(patients), "--sites", str(sites), stdout=out, stderr=err
    )
    assert err.getvalue() == "", "seed_demo left a column at its default: " + err.getvalue()
    return out.getvalue()


def columns(instance, exclude=()) -> dict:
    """Every concrete column of a row, re-read from the database."""
    fresh = type(instance).objects.get(pk=instance.pk)
    return {
        f.attname: getattr(fresh, f.attname)
        for f in type(instance)._meta.concrete_fields
        if f.attname not in exclude
    }


def test_it_seeds_patients_over_sites_at_every_stage():
    seed(400, sites=3)
    assert Patient.objects.filter(mrn__startswith="SYN").count() == 400
    assert set(
        Site.objects.filter(code__startswith="synthetic-").values_list("code", flat=True)
    ) == {
        "synthetic-1",
        "synthetic-2",
        "synthetic-3",
    }
    per_site = [Patient.objects.filter(site__code=f"synthetic-{i}").count() for i in (1, 2, 3)]
    assert max(per_site) - min(per_site) <= 1
    # Just referred (no workup), just opened (nothing recorded), part-way, complete.
    assert Patient.objects.filter(workups__isnull=True).exists()
    assert Workup.objects.filter(records__isnull=True).exists()
    assert len(set(Workup.objects.values_list("progress_done", flat=True))) > 5
    assert Workup.objects.filter(suggested_steps=[]).exists()  # nothing left to suggest
    # Ordered steps and repeated tryptase values.
    assert StepMark.objects.filter(status=StepMark.Status.ORDERED).exists()
    assert any(
        StepRecord.objects.filter(workup=w, step__code="serum_tryptase").count() > 1
        for w in Workup.objects.filter(records__step__code="serum_tryptase").distinct()[:50]
    )


def test_names_are_clearly_synthetic_and_dates_are_not_in_the_future():
    seed(100)
    assert all(
        "Synthetic" in name for name in Patient.objects.values_list("family_name", flat=True)
    )
    today = timezone.localdate()
    assert not StepRecord.objects.filter(performed_on__gt=today).exists()
    assert not Patient.objects.filter(birth_date__gt=today).exists()
    for workup in Workup.objects.prefetch_related("records")[:30]:
        for record in workup.records.all():
            assert workup.opened_at <= record.recorded_at <= workup.last_change_at


def test_workup_snapshots_equal_a_fresh_refresh_by_the_service_layer():
    seed(300, sites=2)
    sample = list(Workup.objects.order_by("?")[:60])
    # Make sure the sample covers the harder cases too.
    sample += list(Workup.objects.filter(marks__isnull=False)[:5])
    sample += list(Workup.objects.filter(records__step__code="serum_tryptase").distinct()[:10])
    for workup in sample:
        stored = columns(workup)
        suggestions = sorted(workup.suggestions.values_list("step_code", flat=True))
        snapshot.refresh_snapshot(
            Workup.objects.select_related("patient", "protocol").get(pk=workup.pk)
        )
        assert columns(workup) == stored, f"workup {workup.pk}"
        assert sorted(workup.suggestions.values_list("step_code", flat=True)) == suggestions
        assert suggestions == sorted(stored["suggested_steps"])


def test_patient_columns_equal_what_saving_the_patient_computes():
    seed(200)
    for patient in Patient.objects.order_by("?")[:40]:
        stored = columns(patient, exclude={"updated_at"})
        assert stored["family_key"] == search_key(patient.family_name)
        patient.save()
        assert columns(patient, exclude={"updated_at"}) == stored, f"patient {patient.pk}"


def test_seeded_times_are_stored_as_the_orm_stores_them():
    """Exact lookups compare stored text on SQLite: a different format would never match."""
    seed(50)
    for workup in Workup.objects.filter(records__isnull=False).distinct()[:10]:
        assert Workup.objects.filter(pk=workup.pk, last_change_at=workup.last_change_at).exists()
        assert Workup.objects.filter(pk=workup.pk, opened_at__lte=workup.last_change_at).exists()
        record = workup.records.first()
        assert StepRecord.objects.filter(
            pk=record.pk, recorded_at=record.recorded_at, performed_on=record.performed_on
        ).exists()
    patient = Patient.objects.first()
    assert Patient.objects.filter(pk=patient.pk, created_at=patient.created_at).exists()


def test_accents_in_names_are_folded_in_the_search_keys():
    seed(60)
    patient = Patient.objects.filter(family_name__startswith="Müller").first()
    assert patient is not None
    assert patient.family_key.startswith("muller-synthetic")


def test_seeding_twice_adds_new_patients_without_clashes():
    seed(10)
    seed(10)
    assert Patient.objects.filter(mrn__startswith="SYN").count() == 20
    assert len(set(Patient.objects.values_list("mrn", flat=True))) == 20
    # Ordinary inserts still work after ids were chosen by the seeder.
    site = Site.objects.create(code="after", name="After seeding")
    patient = Patient.objects.create(
        site=site, mrn="A1", family_name="After", given_name="Seeding",
        birth_date=date(1980, 1, 1), sex="female",
    )  # fmt: skip
    writes.open_workup(patient=patient, user=None)


def test_members_become_clinicians_at_every_synthetic_site(django_user_model):
    django_user_model.objects.create_user("bench", password="x")
    call_command(
        "seed_demo", "--patients", "5", "--sites", "2", "--member", "bench", stdout=StringIO()
    )
    user = django_user_model.objects.get(username="bench")
    assert set(user.memberships.values_list("site__code", "role")) == {
        ("synthetic-1", "clinician"),
        ("synthetic-2", "clinician"),
    }


def test_it_refuses_zero_patients():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("seed_demo", "--patients", "0", stdout=StringIO())
