"""A workup's snapshot: the precomputed columns and rows that lists read instead of rules.

Progress, suggested and not-yet steps (and the rules behind each suggestion) are
stored on the workup and as indexed WorkupSuggestion rows on every write, so the
worklist, its filters and the exports never evaluate rules per row. The snapshot
is also "what the checklist showed before this write" (`shown_before`).
"""

from __future__ import annotations

from workup.core import checklist as checklist_builder
from workup.models import Workup, WorkupSuggestion
from workup.reads import WorkupState, load_state

SNAPSHOT = ("suggested_steps", "not_yet_steps", "suggestion_rules")


def shown_before(workup: Workup) -> checklist_builder.ShownBefore:
    """The checklist as the workup's snapshot has it (read by _claim_version)."""
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


def refresh_snapshot(workup: Workup) -> WorkupState:
    """Store progress, suggested and not-yet steps on the workup, so lists never evaluate rules."""
    state = load_state(workup)
    set_snapshot_columns(workup, state.checklist())
    Workup.objects.filter(pk=workup.pk).update(
        progress_done=workup.progress_done,
        progress_applicable=workup.progress_applicable,
        suggested_steps=workup.suggested_steps,
        not_yet_steps=workup.not_yet_steps,
        suggestion_rules=workup.suggestion_rules,
    )
    wanted = {(row.step_code, row.state): row for row in snapshot_rows(workup)}
    existing = set(WorkupSuggestion.objects.filter(workup=workup).values_list("step_code", "state"))
    # One row per step (unique): a row whose state changed is replaced.
    stale = [code for code, row_state in existing if (code, row_state) not in wanted]
    if stale:
        WorkupSuggestion.objects.filter(workup=workup, step_code__in=stale).delete()
    WorkupSuggestion.objects.bulk_create(
        [row for key, row in wanted.items() if key not in existing]
    )
    return state
