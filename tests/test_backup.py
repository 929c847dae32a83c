"""Backup and restore: a restored backup gives every workup the same checklist.

The tests commit their rows (pg_dump reads only committed data; a SQLite backup
is refused inside a transaction), so they are transactional; `keep_database_state`
puts the database back as it was for the tests that follow.
"""

from __future__ import annotations

import sqlite3
from datetime import date

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from workup.models import Membership, Workup
from workup.ops import backup
from workup.records import writes

from .conftest import record
from .factories import PatientFactory, SiteFactory, UserFactory
from .transactional import clean_database, keep_database_state  # noqa: F401 - fixtures

only_sqlite = pytest.mark.skipif(
    "connection.vendor != 'sqlite'", reason="SQLite only: the test database is PostgreSQL"
)
only_postgresql = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="PostgreSQL only: the test database is SQLite"
)


def vendor_is(name: str) -> bool:
    return connection.vendor == name


def populate() -> list[Workup]:
    """Workups at different stages: results, marks, an adult pathway, nothing at all."""
    site = SiteFactory(code="backup-site", name="Backup Clinic")
    user = UserFactory()
    Membership.objects.create(user=user, site=site, role=Membership.Role.CLINICIAN)
    adult = PatientFactory(site=site, birth_date=date(1970, 5, 1), sex="male")
    teen = PatientFactory(site=site, birth_date=date(date.today().year - 16, 1, 1))
    child = PatientFactory(site=site, birth_date=date(date.today().year - 4, 3, 1))
    PatientFactory(site=site)  # no workup

    first = writes.open_workup(patient=adult, user=user)
    record(first, user, "history", {"mediator_symptoms": True, "anaphylaxis": True})
    record(first, user, "serum_tryptase", {"value_ng_ml": 25.0, "is_baseline": True})
    record(first, user, "serum_tryptase", {"value_ng_ml": 31.5, "is_baseline": True})
    first.refresh_from_db()
    writes.set_mark(
        workup=first,
        step_code="chemistry_liver",
        status="declined",
        reason="Patient prefers to wait <b>&</b> see.",
        user=user,
        expected_version=first.version,
    )

    second = writes.open_workup(patient=teen, user=user)
    writes.set_adult_pathway(
        workup=second, enabled=True, reason="Post-pubertal.", user=user, expected_version=1
    )
    record(second, user, "skin_exam", {"typical_lesions": True, "darier_sign": "positive"})

    third = writes.open_workup(patient=child, user=user)
    third.refresh_from_db()
    writes.set_mark(
        workup=third,
        step_code="serum_tryptase",
        status="ordered",
        reason="",
        user=user,
        expected_version=third.version,
    )
    return [first, second, third]


def restore_into_scratch(path, then_run: str = "") -> dict:
    """Restore `path` into an empty scratch database (then run the SQL `then_run` there)
    and take its snapshot there."""
    with backup.scratch_database(connection.settings_dict, prefix="test_restore") as scratch:
        assert backup.is_empty(scratch)
        backup.restore(path, scratch)
        if then_run:
            with scratch.cursor() as cursor:
                cursor.execute(then_run)
        with backup.as_default_database(scratch):
            return backup.snapshot()


def assert_backup_restores_every_checklist(tmp_path, name: str) -> None:
    populate()
    live = backup.snapshot()
    assert len(live["workups"]) == 3
    assert live["audit chain"]["ok"]
    path = tmp_path / name

    call_command("backup_db", str(path))

    assert backup.backup_format(path) == connection.vendor
    assert path.stat().st_mode & 0o777 == 0o600, "a backup holds patient data"
    restored = restore_into_scratch(path)
    assert backup.compare(live, restored) == []
    assert restored == live
    assert restored["tables"]["workup_steprecord"]["rows"] == 4
    assert len(restored["tables"]) >= 30, "every table, history and users included"
    # One value changed in one row: the counts and every checklist are the same, the
    # digest of the table is not.
    note_changed = (
        "UPDATE workup_steprecord SET note = 'changed'"
        " WHERE id = (SELECT MIN(id) FROM workup_steprecord)"
    )
    changed = restore_into_scratch(path, then_run=note_changed)
    assert changed["counts"] == live["counts"] and changed["workups"] == live["workups"]
    assert backup.compare(live, changed) == [
        "table workup_steprecord: the same 4 rows, but their values differ"
    ]
    # A damaged copy of it is refused before the (live, not empty) database is looked at.
    damaged = tmp_path / f"damaged-{name}"
    damaged.write_bytes(path.read_bytes()[: path.stat().st_size * 3 // 4])
    with pytest.raises(backup.BackupError, match="is damaged"):
        backup.restore(damaged, connection)


@only_sqlite
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("clean_database")
def test_a_sqlite_backup_restores_to_the_same_checklist_for_every_workup(tmp_path):
    assert_backup_restores_every_checklist(tmp_path, "workup.sqlite3")


@only_postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("clean_database")
def test_a_postgresql_backup_restores_to_the_same_checklist_for_every_workup(tmp_path):
    assert_backup_restores_every_checklist(tmp_path, "workup.dump")


@only_postgresql
@pytest.mark.django_db
def test_the_scratch_postgresql_database_is_dropped_even_after_a_failure():
    def databases():
        with connection.cursor() as cursor:
            cursor.execute("SELECT datname FROM pg_database WHERE datname LIKE 'test_restore_%%'")
            return {row[0] for row in cursor.fetchall()}

    before = databases()
    with (
        pytest.raises(RuntimeError),
        backup.scratch_database(connection.settings_dict, prefix="test_restore") as scratch,
    ):
        assert scratch.settings_dict["NAME"] in databases()
        raise RuntimeError("boom")

    assert databases() == before


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("clean_database")
def test_verify_restore_passes_then_names_a_change_made_after_the_backup(tmp_path, capsys):
    workups = populate()
    path = tmp_path / "backup.bin"
    call_command("backup_db", str(path))

    call_command("verify_restore", str(path))

    assert "restores to the same checklists" in capsys.readouterr().out
    exam = {"hepatomegaly": False, "splenomegaly": False, "lymphadenopathy": False}
    record(workups[0], workups[0].opened_by, "physical_exam", exam)
    with pytest.raises(CommandError) as refused:
        call_command("verify_restore", str(path))
    assert refused.value.returncode == 1
    errors = capsys.readouterr().err
    assert f"workup {workups[0].pk}: step physical_exam is done live" in errors
    assert "step records: 5 live, 4 restored" in errors


def a_backup_file(tmp_path):
    """A file that passes the checks of a backup, without committing test rows."""
    path = tmp_path / "backup.bin"
    if vendor_is("sqlite"):
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE django_migrations (id integer)")
    else:
        backup.backup(path)  # pg_dump sees what is committed: a real archive, if a small one
    return path


@pytest.mark.django_db
def test_restore_refuses_a_database_that_is_not_empty(tmp_path, workup_a):
    tables = backup.table_names(connection)

    with pytest.raises(CommandError, match="is not empty .* pass --force"):
        call_command("restore_db", str(a_backup_file(tmp_path)))

    assert backup.table_names(connection) == tables
    assert Workup.objects.filter(pk=workup_a.pk).exists()


@pytest.mark.django_db
def test_restore_refuses_a_file_that_is_not_a_backup(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a backup at all")

    with pytest.raises(CommandError, match="not a backup made by backup_db"):
        call_command("restore_db", str(junk))


def test_a_backup_of_the_other_kind_of_database_is_refused(tmp_path):
    other = tmp_path / "other.bin"
    if vendor_is("sqlite"):
        other.write_bytes(backup.PG_CUSTOM_MAGIC + b"\x01\x0e\x00")
        expected = "is a postgresql backup; the database is sqlite"
    else:
        with sqlite3.connect(other) as db:
            db.execute("CREATE TABLE django_migrations (id integer)")
        expected = "is a sqlite backup; the database is postgresql"

    with pytest.raises(CommandError, match=expected):
        call_command("restore_db", str(other), "--force")


@only_sqlite
@pytest.mark.django_db
def test_a_sqlite_backup_is_refused_inside_a_transaction(tmp_path):
    # An uncommitted write would be in the copy (and an in-memory database would wait
    # for its own lock forever): refuse at once instead.
    SiteFactory(code="uncommitted")  # in the test's transaction

    with pytest.raises(backup.BackupError, match="inside a transaction"):
        backup.backup(tmp_path / "b.sqlite3")

    assert list(tmp_path.iterdir()) == []


def test_the_postgresql_password_never_reaches_the_command_line(tmp_path, monkeypatch):
    calls = []

    def fake_run(command, env, **kwargs):
        calls.append((command, env))
        return type("Done", (), {"returncode": 0, "stderr": ""})()

    class FakeConnection:
        vendor = "postgresql"
        settings_dict = {
            "NAME": "workup",
            "USER": "clinic",
            "PASSWORD": "s3cret-pass",
            "HOST": "db.example.org",
            "PORT": 5433,
            "OPTIONS": {"sslmode": "require"},
        }

    monkeypatch.setattr(backup.subprocess, "run", fake_run)
    monkeypatch.setattr(backup.shutil, "which", lambda name: f"/usr/bin/{name}")

    backup.backup(tmp_path / "x.dump", FakeConnection())

    [(command, env)] = calls
    assert command[:2] == ["pg_dump", "--format=custom"]
    assert "--dbname=workup" in command and "--host=db.example.org" in command
    assert not any("s3cret" in part for part in command)
    assert env["PGPASSWORD"] == "s3cret-pass"
    assert env["PGSSLMODE"] == "require"
