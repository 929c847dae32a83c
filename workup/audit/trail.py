"""Writing and checking the audit trail (see models/audit.py).

- Changes: every historical record that django-simple-history writes (create,
  update, delete of a tracked model) becomes an AuditEvent with the values
  before and after, in the same transaction as the change.
- Access: views call `record_access` for reads, prints, PDFs and exports;
  authentication signals record logins, failed logins and logouts.
Rows are chained: each carries its position and the hash of the one before, so
altering or deleting a row breaks the chain and `manage.py verify_audit` names it.

Appending to a chain means lock, read the head, insert: three statements. That is
right for changes (they are in a transaction anyway) but would double the cost of
every page a clinician reads. So an access event is one INSERT, *pending*, and is
sealed into the chain, in id order, by the next chained append (any change, login
or logout), by `manage.py seal_audit` (run it every minute), and by verify_audit.
Until then it is stored and shown like any other row, but not yet tamper-evident.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import F, Q, Subquery
from django.utils import timezone

from workup.models import AuditEvent

GENESIS_HASH = "0" * 64
# Any fixed number: PostgreSQL advisory lock that serialises appends to the chain.
_CHAIN_LOCK_ID = 7_316_201


def _json_safe(value: Any) -> Any:
    """What the value will be after a round trip through the database's JSON column.

    Numbers are made canonical first: PostgreSQL's jsonb gives back 2.0 as 2.0 but
    1e16 as 10000000000000000 and -0.0 as 0, which would no longer match the hash
    taken over them. A float with no fraction is stored as the integer it equals.
    """
    plain = json.loads(json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False))
    return _canonical_numbers(plain)


def _canonical_numbers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_canonical_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _canonical_numbers(v) for k, v in value.items()}
    return value


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
    """Append one event to the chain, atomically (sealing any pending access events first)."""
    event = _new_event(
        user=user,
        action=action,
        object_type=object_type,
        object_id=object_id,
        patient_id=patient_id,
        workup_id=workup_id,
        summary=summary,
        changes=changes,
        username=username,
    )
    # Inside the caller's transaction no savepoint: if the event cannot be written,
    # the write it records must not commit either, so a savepoint would only cost
    # two statements per audited write.
    with transaction.atomic(savepoint=False):
        _lock_chain()
        position, previous_hash = _seal_pending()
        _link(event, position + 1, previous_hash)
        event.save()
    return event


def record_access(request, action: str, workup=None, *, patient=None, summary: str = ""):
    """A read, print, PDF download or export of a patient's data: one INSERT, sealed later."""
    if workup is not None:
        patient = workup.patient
    event = _new_event(
        user=request.user,
        action=action,
        object_type="workup" if workup is not None else ("patient" if patient else ""),
        object_id=workup.pk if workup is not None else (patient.pk if patient else ""),
        patient_id=patient.pk if patient is not None else None,
        workup_id=workup.pk if workup is not None else None,
        summary=summary or f"{AuditEvent.Action(action).label} {request.path}",
    )
    event.save()
    return event


def record_denied(request, summary: str) -> None:
    record_event(user=request.user, action=AuditEvent.Action.DENIED, summary=summary)


def seal_pending() -> int:
    """Seal every pending access event into the chain; returns how many were sealed."""
    return seal_and_read_head()[0]


def seal_and_read_head() -> tuple[int, int, str]:
    """Seal every pending event; (how many were sealed, head position, head hash)."""
    with transaction.atomic():
        _lock_chain()
        before = AuditEvent.objects.filter(position__isnull=True).count()
        position, head_hash = _seal_pending()
    return before, position, head_hash


def _new_event(
    *,
    user,
    action,
    object_type,
    object_id,
    patient_id,
    workup_id,
    summary,
    changes=None,
    username=None,
) -> AuditEvent:
    if user is not None and not user.is_authenticated:
        user = None
    return AuditEvent(
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
    )


def _lock_chain() -> None:
    """Serialise appends to the chain (inside the caller's transaction)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_ID])
    # On SQLite the IMMEDIATE transaction already holds the database's write lock.


def _link(event: AuditEvent, position: int, previous_hash: str) -> None:
    event.position = position
    event.previous_hash = previous_hash
    event.hash = event.compute_hash()


def _seal_pending(batch_size: int = 500) -> tuple[int, str]:
    """Chain the pending rows after the head, in id order; returns the new head.

    Caller holds the chain lock. One query reads the head and the first pending rows
    (usually none: each chained append costs a single read). A pending row that
    commits after later ids were sealed (possible on PostgreSQL) simply joins the
    chain at the next seal.
    """
    head_position = (
        AuditEvent.objects.filter(position__isnull=False).order_by("-position").values("position")
    )
    rows = list(
        AuditEvent.objects.filter(
            Q(position__isnull=True) | Q(position=Subquery(head_position[:1]))
        ).order_by(F("position").asc(nulls_last=True), "id")[: batch_size + 1]
    )
    head = rows.pop(0) if rows and rows[0].position is not None else None
    position, previous_hash = (head.position, head.hash) if head else (0, GENESIS_HASH)
    pending = rows
    while pending:
        for event in pending:
            position += 1
            _link(event, position, previous_hash)
            previous_hash = event.hash
        AuditEvent.objects.bulk_update(pending, ["position", "previous_hash", "hash"])
        pending = list(AuditEvent.objects.filter(position__isnull=True).order_by("id")[:batch_size])
    return position, previous_hash


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    checked: int
    first_bad_id: int | None = None
    problem: str = ""
    pending: int = 0  # access events not yet sealed (not covered by this check)


def verify_chain(batch_size: int = 2000, *, from_position: int = 1) -> ChainCheck:
    """Walk the chain in position order; report the first row whose hash or link is wrong.

    From a later position (`verify_audit --since`), the row before it is taken as it is
    stored: only the rows from there on are checked, linked to it.
    """
    previous = GENESIS_HASH
    sealed = AuditEvent.objects.filter(position__isnull=False)
    if from_position > 1:
        before = sealed.filter(position=from_position - 1).values_list("hash", flat=True).first()
        if before is None:
            return ChainCheck(False, 0, None, f"there is no event at position {from_position - 1}")
        previous = before
    checked = 0
    rows = sealed.filter(position__gte=from_position).order_by("position")
    for event in rows.iterator(chunk_size=batch_size):
        if event.position != from_position + checked or event.previous_hash != previous:
            return ChainCheck(False, checked, event.pk, "its link to the previous row is broken")
        if event.compute_hash() != event.hash:
            return ChainCheck(False, checked, event.pk, "its content does not match its hash")
        previous = event.hash
        checked += 1
    return ChainCheck(
        True, checked, pending=AuditEvent.objects.filter(position__isnull=True).count()
    )


def first_position_since(moment) -> int | None:
    """The position of the first sealed event at or after `moment` (None: there is none)."""
    return (
        AuditEvent.objects.filter(position__isnull=False, at__gte=moment)
        .order_by("position")
        .values_list("position", flat=True)
        .first()
    )
