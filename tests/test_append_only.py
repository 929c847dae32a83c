"""The audit tables refuse UPDATE and DELETE in the database, whoever sends the SQL.

Raw SQL through the app's own connection (the database login an attacker or a
careless script would have), on SQLite and PostgreSQL alike.
"""

from io import StringIO

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError
from django.test import Client
from django.urls import reverse

from workup.audit import append_only
from workup.audit.trail import seal_pending, verify_chain
from workup.models import AuditEvent, StepRecord

from .conftest import record


def raw(sql: str, params=()) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def refused(sql: str, params=()) -> str:
    with pytest.raises(IntegrityError) as error:
        raw(sql, params)
    return str(error.value)


@pytest.fixture
def documented(workup_a, clinician_a):
    record(workup_a, clinician_a, "history", {"anaphylaxis": False})
    return workup_a


def test_every_history_table_and_the_audit_table_are_guarded(db):
    tables = append_only.guarded_tables(apps.get_models())
    assert "workup_auditevent" in tables and "workup_historicalsteprecord" in tables
    assert len(tables) == 20
    assert append_only.missing_guards(connection, tables) == []


def test_a_sealed_audit_event_cannot_be_changed_or_deleted_with_sql(documented):
    event = AuditEvent.objects.filter(position__isnull=False).order_by("position").last()
    message = refused("UPDATE workup_auditevent SET summary = %s WHERE id = %s", ["x", event.pk])
    assert "append-only" in message
    refused("UPDATE workup_auditevent SET hash = %s WHERE id = %s", ["0" * 64, event.pk])
    refused("DELETE FROM workup_auditevent WHERE id = %s", [event.pk])
    refused("DELETE FROM workup_auditevent")
    event.refresh_from_db()
    assert event.summary != "x" and verify_chain().ok


def test_history_rows_cannot_be_changed_or_deleted_with_sql(documented):
    history = StepRecord.history.model
    row = history.objects.get()
    table = history._meta.db_table
    refused(f"UPDATE {table} SET note = %s WHERE history_id = %s", ["rewritten", row.pk])
    refused(f"DELETE FROM {table} WHERE history_id = %s", [row.pk])
    refused("DELETE FROM workup_historicalpatient")
    assert history.objects.get().note == row.note


def test_a_pending_access_event_can_be_sealed_but_not_rewritten(as_clinician_a, documented):
    as_clinician_a.get(reverse("workup_history", args=[documented.pk]))
    pending = AuditEvent.objects.get(position__isnull=True)
    refused("UPDATE workup_auditevent SET summary = %s WHERE id = %s", ["x", pending.pk])
    refused(
        "UPDATE workup_auditevent SET position = 999, username = %s WHERE id = %s",
        ["someone-else", pending.pk],
    )
    assert seal_pending() == 1  # sealing fills in only the chain columns: allowed
    pending.refresh_from_db()
    assert pending.sealed and verify_chain().ok
    refused("UPDATE workup_auditevent SET position = NULL WHERE id = %s", [pending.pk])


def test_truncate_is_refused_on_postgresql(documented):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no TRUNCATE; DELETE without WHERE is refused above")
    raw("SET CONSTRAINTS ALL IMMEDIATE")  # else the test's own open foreign-key checks block it
    assert "append-only" in refused("TRUNCATE workup_auditevent CASCADE")
    assert "append-only" in refused("TRUNCATE workup_historicalsteprecord")


def test_a_user_who_has_done_anything_cannot_be_deleted(documented, clinician_a):
    with pytest.raises(ProtectedError):
        clinician_a.delete()
    assert get_user_model().objects.filter(pk=clinician_a.pk).exists()
    assert verify_chain().ok


def test_the_admin_offers_to_disable_users_not_to_delete_them(admin_user, clinician_a):
    client = Client()
    client.force_login(admin_user)
    page = client.get(reverse("admin:auth_user_change", args=[clinician_a.pk]))
    assert page.status_code == 200
    assert reverse("admin:auth_user_delete", args=[clinician_a.pk]) not in page.content.decode()
    assert client.get(reverse("admin:auth_user_delete", args=[clinician_a.pk])).status_code == 403
    listing = client.get(reverse("admin:auth_user_changelist")).content.decode()
    assert "delete_selected" not in listing


def test_verify_audit_reports_the_guard_and_fails_without_it(documented):
    out = StringIO()
    call_command("verify_audit", stdout=out)
    assert "append-only guard in place on 20 tables" in out.getvalue()
    table = ["workup_historicalsteprecord"]
    append_only.uninstall(connection, table)
    try:
        err = StringIO()
        with pytest.raises(SystemExit) as exit_info:
            call_command("verify_audit", stdout=StringIO(), stderr=err)
        assert exit_info.value.code == 1
        assert "workup_historicalsteprecord" in err.getvalue()
        assert "not append-only" in err.getvalue()
    finally:
        append_only.install(connection, table)
    assert append_only.missing_guards(connection, table) == []


@pytest.fixture
def as_clinician_a(clinician_a):
    client = Client()
    client.force_login(clinician_a)
    return client
