"""A workup's marks as one JSON column of the workup's own query.

The checklist, step form and summary need the workup, its results and its marks.
Marks are few (at most one per step), so instead of a third query they ride along
with the workup as a JSON array built by the database (SQLite json_group_array,
PostgreSQL jsonb_agg), and are read back into MarkRow values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db.models import Aggregate, JSONField, OuterRef, Subquery
from django.db.models.functions import JSONObject
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from workup.models import StepMark


@dataclass(frozen=True)
class MarkRow:
    """One clinician mark (ordered / not indicated / declined) as the checklist needs it."""

    step_code: str
    status: str
    reason: str
    set_by: str
    set_at: datetime | None


class JSONArrayAgg(Aggregate):
    """The rows' values as one JSON array (no ordering: marks are keyed by step)."""

    function = "JSON_GROUP_ARRAY"
    output_field = JSONField()

    def as_postgresql(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, function="JSONB_AGG", **extra_context)


def marks_json() -> Subquery:
    """Annotate a Workup queryset with this as `marks_json`."""
    return Subquery(
        StepMark.objects.filter(workup=OuterRef("pk"))
        .order_by()
        .values("workup")
        .annotate(
            items=JSONArrayAgg(
                JSONObject(
                    step_code="step__code",
                    status="status",
                    reason="reason",
                    first_name="set_by__first_name",
                    last_name="set_by__last_name",
                    username="set_by__username",
                    set_at="set_at",
                )
            )
        )
        .values("items"),
        output_field=JSONField(),
    )


def mark_rows(items: list[dict[str, Any]] | None) -> list[MarkRow]:
    return [_row(item) for item in items or ()]


def mark_rows_from_models(marks) -> list[MarkRow]:
    return [
        MarkRow(
            step_code=mark.step.code,
            status=mark.status,
            reason=mark.reason,
            set_by=user_name(mark.set_by),
            set_at=mark.set_at,
        )
        for mark in marks
    ]


def user_name(user) -> str:
    if user is None:
        return ""
    return user.get_full_name() or user.get_username()


def _row(item: dict[str, Any]) -> MarkRow:
    full_name = f"{item.get('first_name') or ''} {item.get('last_name') or ''}".strip()
    return MarkRow(
        step_code=item["step_code"],
        status=item["status"],
        reason=item["reason"],
        set_by=full_name or item.get("username") or "",
        set_at=_datetime(item.get("set_at")),
    )


def _datetime(value: str | None) -> datetime | None:
    """SQLite gives '2026-11-25 16:40:00.123456' (UTC), PostgreSQL an ISO string with offset."""
    if not value:
        return None
    parsed = parse_datetime(value)
    if parsed is not None and timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    return parsed
