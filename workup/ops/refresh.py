"""Rebuilding the worklist's precomputed columns for many workups at once.

The service layer refreshes a workup's snapshot (progress, suggested steps) on
every write. What it cannot see coming: a protocol change, or the calendar (age
and "repeat after a year" rules move with the date). `refresh_workups` rebuilds
the snapshots in batches: three reads per batch, the rules evaluated in memory,
one bulk write. A snapshot changes only with the workup's version (a save
builds on the snapshot it read at its version: records/writes.py), so each
refreshed workup's version moves too; a form opened before it is refused as a
conflict, as it would be after any change. A clinician saving a workup while
its batch is being written wins: such workups are found by their version and
refreshed once more.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from django.db import connection, transaction
from django.db.models import F

from workup import reads
from workup.models import StepMark, StepRecord, Workup, WorkupSuggestion
from workup.protocols.cache import get_spec
from workup.queries.marks import mark_rows_from_models
from workup.records import snapshot


def refresh_in_batches(workups, batch_size: int = 500) -> Iterator[int]:
    """Refresh every workup of the queryset; yields the running count after each batch."""
    done = 0
    ids = list(workups.order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(ids), batch_size):
        done += refresh_batch(ids[start : start + batch_size])
        yield done


def refresh_batch(ids: list[int]) -> int:
    workups = list(Workup.objects.filter(pk__in=ids).select_related("patient", "protocol"))
    records, marks = defaultdict(list), defaultdict(list)
    # In the model's order (performed_on, recorded_at, id), as reads.load_state reads them.
    for record in StepRecord.objects.filter(workup_id__in=ids).select_related(
        "step", "recorded_by"
    ):
        records[record.workup_id].append(record)
    for mark in StepMark.objects.filter(workup_id__in=ids).select_related("step", "set_by"):
        marks[mark.workup_id].append(mark)

    loaded_versions = {}
    for workup in workups:
        spec = get_spec(workup.protocol)
        mark_rows = mark_rows_from_models(marks[workup.pk])
        evaluation = reads.evaluate_records(spec, workup, records[workup.pk], mark_rows)
        state = reads.WorkupState(workup, spec, records[workup.pk], mark_rows, evaluation)
        snapshot.set_snapshot_columns(workup, state.checklist())
        loaded_versions[workup.pk] = workup.version

    with transaction.atomic():
        Workup.objects.bulk_update(workups, snapshot.SNAPSHOT_COLUMNS)
        Workup.objects.filter(pk__in=ids).update(version=F("version") + 1)
        WorkupSuggestion.objects.filter(workup_id__in=ids).delete()
        WorkupSuggestion.objects.bulk_create(
            row for workup in workups for row in snapshot.snapshot_rows(workup)
        )
    # Saved by someone meanwhile: our snapshot may be older than theirs; take it again.
    for workup in Workup.objects.filter(pk__in=ids).select_related("patient", "protocol"):
        if workup.version != loaded_versions[workup.pk] + 1:
            with transaction.atomic():
                snapshot.refresh_snapshot(workup, new_version=True)
    return len(workups)


def update_planner_statistics() -> None:
    """Refresh the query planner's statistics (ANALYZE).

    PostgreSQL's autovacuum does this by itself; SQLite never does, and without
    statistics it pages the worklist by the site index and sorts every patient
    (0.5 s at 100,000) instead of walking the name index (8 ms).
    """
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
