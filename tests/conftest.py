"""Shared test set-up: the protocol is loaded once per test database; personas per test."""

from datetime import date
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.commands import flush
from django.db import connection, connections

from workup.audit import append_only
from workup.exports import coding
from workup.models import Membership
from workup.protocols.cache import clear_cache
from workup.protocols.file import read_protocol_file
from workup.records import writes
from workup.web import page_cache

from . import live_gunicorn
from .factories import PatientFactory, SiteFactory, UserFactory

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL_FIXTURE = ROOT / "fixtures" / "mastocytosis.json"
VIGNETTES = ROOT / "fixtures" / "cases" / "mastocytosis-vignettes.json"
PROTOCOL_V2_FIXTURE = ROOT / "fixtures" / "mastocytosis-v2.json"
VIGNETTES_V2 = ROOT / "fixtures" / "cases" / "mastocytosis-v2-vignettes.json"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        call_command("load_protocol", str(PROTOCOL_FIXTURE), verbosity=0)
        call_command(
            "import_protocol_cases", "mastocytosis", str(VIGNETTES), version=1, verbosity=0
        )


@pytest.fixture(scope="session", autouse=True)
def _flush_lifts_the_append_only_guard():
    """Emptying the tables after a transactional test deletes audit rows: the one place
    the database's append-only guard is lifted (workup.audit.append_only)."""
    original = flush.Command.handle

    def handle(self, **options):
        with append_only.lifted(connections[options["database"]]):
            return original(self, **options)

    flush.Command.handle = handle
    yield
    flush.Command.handle = original


@pytest.fixture(autouse=True)
def _fresh_protocol_cache():
    clear_cache()
    coding.clear_cache()
    page_cache.clear()
    cache.clear()
    yield
    clear_cache()
    coding.clear_cache()
    page_cache.clear()
    cache.clear()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def protocol_v2(db):
    """Version 2 (clinical reference v0.3) published, as `make setup` does: v1 is retired.

    Loaded per test (inside its transaction), so that the tests written for v1 keep it
    as the current version.
    """
    call_command("load_protocol", str(PROTOCOL_V2_FIXTURE), verbosity=0)
    call_command("import_protocol_cases", "mastocytosis", str(VIGNETTES_V2), version=2, verbosity=0)
    clear_cache()
    from workup.models import Protocol

    return Protocol.objects.get(code="mastocytosis", version=2)


@pytest.fixture(scope="session")
def spec_v2():
    return read_protocol_file(PROTOCOL_V2_FIXTURE)


@pytest.fixture(scope="session")
def spec():
    """The shipped protocol, read from the fixture file (no database)."""
    return read_protocol_file(PROTOCOL_FIXTURE)


@pytest.fixture
def site_a(db):
    return SiteFactory(code="north", name="North Clinic")


@pytest.fixture
def site_b(db):
    return SiteFactory(code="south", name="South Clinic")


def _member(site, role):
    user = UserFactory()
    Membership.objects.create(user=user, site=site, role=role)
    return user


@pytest.fixture
def clinician_a(site_a):
    return _member(site_a, Membership.Role.CLINICIAN)


@pytest.fixture
def viewer_a(site_a):
    return _member(site_a, Membership.Role.VIEWER)


@pytest.fixture
def clinician_b(site_b):
    return _member(site_b, Membership.Role.CLINICIAN)


@pytest.fixture
def protocol_admin(db):
    from django.contrib.auth.models import Group

    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name="Protocol admins"))
    return user


@pytest.fixture
def patient_a(site_a, clinician_a):
    return PatientFactory(
        site=site_a, birth_date=date(1970, 5, 1), sex="male", created_by=clinician_a
    )


@pytest.fixture
def workup_a(patient_a, clinician_a):
    return writes.open_workup(patient=patient_a, user=clinician_a)


def record(workup, user, step_code, values, performed_on=None):
    """Record a step through the service layer, as a view would."""
    workup.refresh_from_db()
    return writes.record_step(
        workup=workup,
        step_code=step_code,
        values=values,
        performed_on=performed_on or date(2026, 1, 15),
        note="",
        user=user,
        expected_version=workup.version,
    )


def worked_up(workup, user):
    """Part-way: history, skin, a baseline tryptase and a positive blood KIT."""
    record(workup, user, "history", {"mediator_symptoms": True, "anaphylaxis": True})
    record(workup, user, "skin_exam", {"typical_lesions": True, "darier_sign": "positive"})
    record(workup, user, "serum_tryptase", {"value_ng_ml": 32.5, "is_baseline": True})
    record(
        workup,
        user,
        "kit_d816v_peripheral_blood",
        {"result": "positive", "method": "ddpcr", "high_sensitivity": True},
    )
    return workup


@pytest.fixture(scope="session")
def static_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("static")
    live_gunicorn.collect_static(root)
    return root


@pytest.fixture
def gunicorn(request, tmp_path):
    """The app under gunicorn, 4 sync workers, production settings, on the test database.

    PostgreSQL only: the SQLite test database lives in the test process's memory.
    """
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: the test database is SQLite")
    static = request.getfixturevalue("static_root")  # collected only when a test needs it
    server = live_gunicorn.Gunicorn(static_root=static, log_path=tmp_path / "gunicorn.log").start()
    try:
        yield server
    finally:
        server.stop()
