"""A workup's snapshot: the precomputed columns and rows that lists read instead of rules.

Progress, suggested and not-yet steps (and the rules behind each suggestion) are
stored on the workup and as indexed WorkupSuggestion rows on every write, so the
worklist, its filters and the exports never evaluate rules per row. The snapshot
is also "what the checklist showed before this write" (`shown_before`).

Invariant: the snapshot changes only with the workup's version. A save that
read the workup at version v builds on the snapshot it read, and claims v in
the UPDATE that stores the new one (`store_snapshot(claim=...)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import F

from workup.core import checklist as checklist_builder
from workup.models import Workup, WorkupSuggestion
from workup.reads import WorkupState, load_state

SNAPSHOT = ("suggested_steps", "not_yet_steps", "suggestion_rules")
# Every column the snapshot writes (SNAPSHOT is what "shown before" needs of them).
SNAPSHOT_COLUMNS = ("progress_done", "progress_applicable", *SNAPSHOT)


def shown_before(workup: Workup) -> checklist_builder.ShownBefore:
    """The checklist as the workup's snapshot has it (as read by writes.claim_version)."""
    rules = workup.suggestion_rules or {}
    return checklist_builder.ShownBefore(
        suggested={code: rules.get(code) for code in workup.suggested_steps or ()},
        not_yet=frozenset(workup.not_yet_steps or ()),
    )


def set_snapshot_columns(workup: Workup, checklist: checklist_builder.Checklist) -> None:
    """The precomputed columns lists read (on the instance; the caller saves them)."""
    workup.progress_done = checklist.progress_done
    workup.progress_applicable = checklist.progress_applicable
    workup.suggested_steps = [item.code for item in checklist.suggested]
    workup.not_yet_steps = [item.code for item in checklist.not_yet]
    workup.suggestion_rules = {
        item.code: [r.code for r in item.reasons] for item in checklist.suggested
    }


def snapshot_rows(workup: Workup) -> list[WorkupSuggestion]:
    """The indexed rows behind the worklist's step filters, from the snapshot columns."""
    return [
        WorkupSuggestion(workup=workup, step_code=code, state=state)
        for state, codes in (
            (WorkupSuggestion.State.SUGGESTED, workup.suggested_steps),
            (WorkupSuggestion.State.NOT_YET, workup.not_yet_steps),
        )
        for code in codes
    ]


def refresh_snapshot(workup: Workup, *, new_version: bool = False) -> WorkupState:
    """Store progress, suggested and not-yet steps on the workup, so lists never evaluate rules.

    A caller that has not claimed the version for this change asks for `new_version`:
    the snapshot never changes under a version a form was read at.
    """
    if new_version:
        Workup.objects.filter(pk=workup.pk).update(version=F("version") + 1)
        workup.refresh_from_db(fields=["version"])
    state = load_state(workup)
    store_snapshot(workup, state)
    return state


def store_snapshot(workup: Workup, state: WorkupState, *, claim: Claim | None = None) -> bool:
    """Store `state`'s checklist as the workup's snapshot: its columns and its rows.

    With `claim`, the same UPDATE claims the workup's version (see records/writes.py):
    False, and nothing stored, if someone else changed the workup since that version.
    The instance then held the snapshot stored at that version, so the rows to change
    follow from its columns; otherwise they are read.
    """
    stored = _rows(workup) if claim is not None else None
    set_snapshot_columns(workup, state.checklist())
    columns = {name: getattr(workup, name) for name in SNAPSHOT_COLUMNS}
    queryset = Workup.objects.filter(pk=workup.pk)
    if claim is not None:
        queryset = queryset.filter(version=claim.version)
        columns |= {
            "version": F("version") + 1,
            "last_change_at": claim.at,
            "last_change_by": claim.user,
        }
    if not queryset.update(**columns):
        return False
    if claim is not None:
        workup.version = claim.version + 1
        workup.last_change_at = claim.at
        workup.last_change_by = claim.user
    if stored is None:
        stored = set(
            WorkupSuggestion.objects.filter(workup=workup).values_list("step_code", "state")
        )
    wanted = {(row.step_code, row.state): row for row in snapshot_rows(workup)}
    # One row per step (unique): a row whose state changed is replaced.
    stale = [code for code, row_state in stored if (code, row_state) not in wanted]
    if stale:
        WorkupSuggestion.objects.filter(workup=workup, step_code__in=stale).delete()
    new = [row for key, row in wanted.items() if key not in stored]
    if new:
        WorkupSuggestion.objects.bulk_create(new)
    return True


@dataclass(frozen=True)
class Claim:
    """Claim the workup's version `version` (it becomes version + 1), by `user` at `at`."""

    version: int
    user: object
    at: datetime


def _rows(workup: Workup) -> set[tuple[str, str]]:
    return {(row.step_code, row.state) for row in snapshot_rows(workup)}
