"""Writing and checking the audit trail (see models/audit.py).

- Changes: every historical record that django-simple-history writes (create,
  update, delete of a tracked model) becomes an AuditEvent with the values
  before and after, in the same transaction as the change.
- Access: views call `record_access` for reads, prints, PDFs and exports;
  authentication signals record logins, failed logins and logouts.
Rows are chained: each carries the hash of the one before, so altering or
deleting a row breaks the chain and `manage.py verify_audit` names it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from .models import AuditEvent

GENESIS_HASH = "0" * 64
# Any fixed number: PostgreSQL advisory lock that serialises appends to the chain.
_CHAIN_LOCK_ID = 7_316_201


def _json_safe(value: Any) -> Any:
    """What the value will be after a round trip through the database's JSON column."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False))


def record_event(
    *,
    user=None,
    action: str,
    object_type: str = "",
    object_id: Any = "",
    patient_id: int | None = None,
    workup_id: int | None = None,
    summary: str = "",
    changes: dict | None = None,
    username: str | None = None,
) -> AuditEvent:
    """Append one event to the chain, atomically."""
    if user is not None and not user.is_authenticated:
        user = None
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_ID])
        # On SQLite the IMMEDIATE transaction already holds the database's write lock.
        last = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
        event = AuditEvent(
            at=timezone.now(),
            user=user,
            username=username if username is not None else (user.get_username() if user else ""),
            action=action,
            object_type=object_type,
            object_id=str(object_id or ""),
            patient_id=patient_id,
            workup_id=workup_id,
            summary=summary[:300],
            changes=_json_safe(changes or {}),
            previous_hash=last or GENESIS_HASH,
        )
        event.hash = event.compute_hash()
        event.save()
    return event


def record_access(request, action: str, workup=None, *, patient=None, summary: str = ""):
    """A read, print, PDF download or export of a patient's data."""
    if workup is not None:
        patient = workup.patient
    return record_event(
        user=request.user,
        action=action,
        object_type="workup" if workup is not None else ("patient" if patient else ""),
        object_id=workup.pk if workup is not None else (patient.pk if patient else ""),
        patient_id=patient.pk if patient is not None else None,
        workup_id=workup.pk if workup is not None else None,
        summary=summary or f"{AuditEvent.Action(action).label} {request.path}",
    )


def record_denied(request, summary: str) -> None:
    record_event(user=request.user, action=AuditEvent.Action.DENIED, summary=summary)


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    checked: int
    first_bad_id: int | None = None
    problem: str = ""


def verify_chain(batch_size: int = 2000) -> ChainCheck:
    """Walk the chain in id order; report the first row whose hash or link is wrong."""
    previous = GENESIS_HASH
    checked = 0
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=batch_size):
        if event.previous_hash != previous:
            return ChainCheck(False, checked, event.pk, "its link to the previous row is broken")
        if event.compute_hash() != event.hash:
            return ChainCheck(False, checked, event.pk, "its content does not match its hash")
        previous = event.hash
        checked += 1
    return ChainCheck(True, checked)
