"""The chain's head is anchored in a file outside the database: deleting the newest
audit rows (by someone who can lift the database's guard) no longer goes unnoticed."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from workup.audit import append_only, checkpoints
from workup.models import AuditEvent

from .conftest import record


@pytest.fixture
def anchored(settings, tmp_path):
    settings.AUDIT_CHECKPOINT_DIR = str(tmp_path)
    settings.AUDIT_CHECKPOINT_KEY = "a-key-kept-outside-the-database"
    return tmp_path / checkpoints.FILE_NAME


def verify() -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("verify_audit", stdout=out, stderr=err)
    except SystemExit as exit_info:
        return exit_info.code, out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def test_seal_audit_appends_the_head_once_per_move(anchored, workup_a, clinician_a):
    call_command("seal_audit", stdout=StringIO())
    call_command("seal_audit", stdout=StringIO())  # the head did not move: no new line
    lines = anchored.read_text().splitlines()
    head = AuditEvent.objects.order_by("-position").first()
    assert len(lines) == 1
    assert json.loads(lines[0])["position"] == head.position
    assert json.loads(lines[0])["hash"] == head.hash
    record(workup_a, clinician_a, "history", {"anaphylaxis": False})
    call_command("seal_audit", stdout=StringIO())
    assert len(anchored.read_text().splitlines()) == 2
    code, out, _ = verify()
    assert code == 0 and "matches" in out


def test_deleting_the_newest_rows_is_detected(anchored, workup_a, clinician_a):
    record(workup_a, clinician_a, "history", {"anaphylaxis": False})
    call_command("seal_audit", stdout=StringIO())
    newest = AuditEvent.objects.order_by("-position")[:2]
    with append_only.lifted(connection):  # a superuser, past the database's guard
        AuditEvent.objects.filter(pk__in=[e.pk for e in newest]).delete()
    code, out, err = verify()
    assert "Audit trail intact" in out  # the shorter chain alone still verifies
    assert code == 1 and "newest events were deleted" in err


def test_a_rewritten_or_unsigned_checkpoint_is_refused(anchored, workup_a, settings):
    call_command("seal_audit", stdout=StringIO())
    line = json.loads(anchored.read_text())
    line["position"] -= 1
    anchored.write_text(json.dumps(line) + "\n")
    code, _, err = verify()
    assert code == 1 and "is not signed with AUDIT_CHECKPOINT_KEY" in err


def test_without_a_directory_nothing_is_written_and_verify_says_so(settings, workup_a):
    settings.AUDIT_CHECKPOINT_DIR = ""
    call_command("seal_audit", stdout=StringIO())
    code, out, _ = verify()
    assert code == 0 and "No checkpoint file configured" in out


def test_verify_since_a_day_checks_only_the_events_from_then_on(db, monkeypatch):
    from datetime import UTC, datetime

    from django.utils import timezone

    from workup.audit import trail

    for day in (1, 1, 2, 3, 3):
        monkeypatch.setattr(timezone, "now", lambda day=day: datetime(2027, 3, day, 9, tzinfo=UTC))
        trail.record_event(action="login", username=f"on-day-{day}")
    monkeypatch.undo()
    first = AuditEvent.objects.filter(username="on-day-1").earliest("position")
    start = AuditEvent.objects.get(username="on-day-2").position
    with append_only.lifted(connection):  # an early row rewritten by a superuser
        AuditEvent.objects.filter(pk=first.pk).update(username="someone-else")

    out = StringIO()
    call_command("verify_audit", "--since", "2027-03-02", stdout=out)
    assert "Audit trail intact: 3 events" in out.getvalue()
    assert f"Checked from position {start} on; earlier events not checked" in out.getvalue()
    code, _, err = verify()  # the full walk finds it
    assert code == 1 and f"event {first.pk}" in err

    third = AuditEvent.objects.filter(username="on-day-3").latest("position")
    with append_only.lifted(connection):
        AuditEvent.objects.filter(pk=third.pk).update(username="someone-else")
    err = StringIO()
    with pytest.raises(SystemExit):
        call_command("verify_audit", "--since", "2027-03-03", stdout=StringIO(), stderr=err)
    assert f"event {third.pk}" in err.getvalue()
    with pytest.raises(CommandError, match="not a day as YYYY-MM-DD"):
        call_command("verify_audit", "--since", "March", stdout=StringIO(), stderr=StringIO())
