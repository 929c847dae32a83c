"""Rebuilding the worklist's precomputed columns for many workups at once.

The service layer refreshes a workup's snapshot (progress, suggested steps) on
every write. What it cannot see coming: a protocol change, or the calendar (age
and "repeat after a year" rules move with the date). `refresh_workups` rebuilds
the snapshots in batches: three reads per batch (the records as plain rows), the
rules evaluated in memory, one statement run for every row. A snapshot changes
only with the workup's version (a save builds on the snapshot it read at its
version: records/writes.py), so each refreshed workup's version moves too; a
form opened before it is refused as a conflict, as it would be after any change.
A clinician saving a workup while its batch is being written wins: such workups
are found by their version and refreshed once more.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from django.db import connection, transaction

from workup import reads
from workup.core.checklist import RecordView
from workup.core.engine import RecordInput
from workup.models import StepMark, StepRecord, Workup, WorkupSuggestion
from workup.protocols.cache import get_spec
from workup.queries.marks import mark_rows_from_models
from workup.records import snapshot


def refresh_in_batches(workups, batch_size: int = 500) -> Iterator[int]:
    """Refresh every workup of the queryset; yields the running count after each batch."""
    done, last_id = 0, 0
    while True:  # keyset chunks: never every id in memory at once
        ids = list(
            workups.filter(pk__gt=last_id).order_by("pk").values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return
        last_id = ids[-1]
        done += refresh_batch(ids)
        yield done


def refresh_batch(ids: list[int]) -> int:
    workups = list(Workup.objects.filter(pk__in=ids).select_related("patient", "protocol"))
    inputs, views, marks = defaultdict(list), defaultdict(list), defaultdict(list)
    # Plain rows, not model instances (a third of the reading time), in the model's order
    # (performed_on, recorded_at, id) as reads.load_state reads them.
    rows = (
        StepRecord.objects.filter(workup_id__in=ids)
        .order_by("performed_on", "recorded_at", "id")
        .values_list("id", "workup_id", "step__code", "values", "performed_on")
    )
    for record_id, workup_id, step_code, values, performed_on in rows:
        inputs[workup_id].append(RecordInput(step_code, values, performed_on, sequence=record_id))
        views[workup_id].append(RecordView(record_id, step_code, values, performed_on))
    for mark in StepMark.objects.filter(workup_id__in=ids).select_related("step", "set_by"):
        marks[mark.workup_id].append(mark)

    loaded_versions = {}
    for workup in workups:
        spec = get_spec(workup.protocol)
        mark_rows = mark_rows_from_models(marks[workup.pk])
        evaluation = reads.evaluate_inputs(spec, workup, inputs[workup.pk], mark_rows)
        checklist = reads.checklist_of(spec, evaluation, views[workup.pk], mark_rows)
        snapshot.set_snapshot_columns(workup, checklist)
        loaded_versions[workup.pk] = workup.version

    with transaction.atomic():
        _store_snapshots(workups)
        WorkupSuggestion.objects.filter(workup_id__in=ids).delete()
        WorkupSuggestion.objects.bulk_create(
            row for workup in workups for row in snapshot.snapshot_rows(workup)
        )
    # Saved by someone meanwhile: our snapshot may be older than theirs; take it again.
    # Only their versions are read for the batch; only those workups in full.
    saved_meanwhile = [
        pk
        for pk, version in Workup.objects.filter(pk__in=ids).values_list("pk", "version")
        if version != loaded_versions[pk] + 1
    ]
    if saved_meanwhile:
        for workup in Workup.objects.filter(pk__in=saved_meanwhile).select_related(
            "patient", "protocol"
        ):
            with transaction.atomic():
                snapshot.refresh_snapshot(workup, new_version=True)
    return len(workups)


def _store_snapshots(workups: list[Workup]) -> None:
    """Each workup's snapshot columns and a new version, in one UPDATE run for every row
    (executemany). Django's bulk_update writes a CASE per column over the whole batch,
    which took a third of a refresh; the values are prepared by the fields themselves."""
    fields = [Workup._meta.get_field(name) for name in snapshot.SNAPSHOT_COLUMNS]
    quote = connection.ops.quote_name
    version = quote(Workup._meta.get_field("version").column)
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    sql = (
        f"UPDATE {quote(Workup._meta.db_table)} SET {assignments}, {version} = {version} + 1 "
        f"WHERE {quote(Workup._meta.pk.column)} = %s"
    )
    rows = [
        [f.get_db_prep_save(getattr(w, f.attname), connection) for f in fields] + [w.pk]
        for w in workups
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def update_planner_statistics() -> None:
    """Refresh the query planner's statistics (ANALYZE).

    PostgreSQL's autovacuum does this by itself; SQLite never does, and without
    statistics it pages the worklist by the site index and sorts every patient
    (0.5 s at 100,000) instead of walking the name index (8 ms).
    """
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
