"""Built checklists kept in process memory, keyed by everything they are built from.

Building a checklist evaluates every rule of the protocol (the engine) and is the
largest cost of the page after rendering. A workup's results and marks change only
through services, which bump `workup.version` in the same transaction, so a key
of (workup, version, its opening and last-change times, patient, protocol, the patient
facts, today) can never serve a stale
checklist: a new write makes a new key, and old keys age out of the LRU.
Drafts are never cached (their content may change). Names of people shown on the
checklist (who recorded a result) are as they were when it was built. The same
key names the rendered body of the checklist page in Django's cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import date
from typing import Any

from workup.models import Protocol, Workup

# A built checklist is ~100 KB of objects: 256 per worker process.
MAX_ENTRIES = 256
# Its rendered body is kept in Django's cache this long: per process, or shared by every
# worker when settings.CACHE_URL names a Redis.
HTML_SECONDS = 24 * 3600

_entries: OrderedDict[tuple, Any] = OrderedDict()
_lock = threading.Lock()


def clear() -> None:
    with _lock:
        _entries.clear()


def key_for(workup: Workup, today: date) -> tuple | None:
    """None when the checklist must not be cached (a draft protocol)."""
    if workup.protocol.status == Protocol.Status.DRAFT:
        return None
    patient = workup.patient
    return (
        workup.pk,
        workup.version,
        # With the version, the times make the key unique for good: after a database is
        # restored from a backup, ids and versions are handed out again, and a cache that
        # outlived the restore (Redis) must not answer for the new rows.
        workup.opened_at.timestamp(),
        workup.last_change_at.timestamp() if workup.last_change_at else 0,
        patient.pk,
        workup.protocol_id,
        workup.adult_pathway,
        patient.birth_date,
        patient.sex,
        today,
    )


def text_key(key: tuple | None) -> str:
    return "" if key is None else ":".join(str(part) for part in key)


def get_or_build(key: tuple | None, build: Callable[[], Any]) -> Any:
    if key is None:
        return build()
    with _lock:
        if key in _entries:
            _entries.move_to_end(key)
            return _entries[key]
    value = build()
    with _lock:
        _entries[key] = value
        _entries.move_to_end(key)
        while len(_entries) > MAX_ENTRIES:
            _entries.popitem(last=False)
    return value
