"""A keyset pager: First, Previous, Next and Last in constant time at any depth.

Pages are cut by the sort key of a boundary row instead of by an offset, so the
last page of a million rows costs what the first does. The URL carries only the
boundary row's id (`?after=<id>` / `?before=<id>`, `?page=last`), never a name:
the database looks the key up itself, inside the same query, and only among the
rows the user may see (`boundary`), so an id from elsewhere reveals nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import BooleanField, QuerySet
from django.db.models.expressions import RawSQL


@dataclass(frozen=True)
class Cursor:
    after: int | None = None
    before: int | None = None
    last: bool = False

    @classmethod
    def from_query(cls, params) -> Cursor:
        if params.get("page") == "last":
            return cls(last=True)
        for name in ("after", "before"):
            value = params.get(name, "")
            # ASCII digits only ('²'.isdigit() is true), and short enough for a 64-bit id.
            if value.isascii() and value.isdigit() and len(value) < 19:
                return cls(**{name: int(value)})
        return cls()


@dataclass
class KeysetPage:
    rows: list[Any]
    has_previous: bool
    has_next: bool

    @property
    def first_id(self):
        return self.rows[0].pk if self.rows else None

    @property
    def last_id(self):
        return self.rows[-1].pk if self.rows else None


def page(
    queryset: QuerySet,
    cursor: Cursor,
    *,
    key: tuple[str, ...],
    size: int,
    boundary: QuerySet,
) -> KeysetPage:
    """One page of `queryset` in `key` order (the last key field must be unique, e.g. id).

    `boundary` is the set a cursor's row must belong to (the user's rows).
    """
    descending = tuple(f"-{field}" for field in key)
    if cursor.after is not None:
        rows = list(_beyond(queryset, ">", cursor.after, key, boundary).order_by(*key)[: size + 1])
        return KeysetPage(rows[:size], has_previous=True, has_next=len(rows) > size)
    if cursor.before is not None:
        rows = list(
            _beyond(queryset, "<", cursor.before, key, boundary).order_by(*descending)[: size + 1]
        )
        return KeysetPage(rows[:size][::-1], has_previous=len(rows) > size, has_next=True)
    if cursor.last:
        rows = list(queryset.order_by(*descending)[: size + 1])
        return KeysetPage(rows[:size][::-1], has_previous=len(rows) > size, has_next=False)
    rows = list(queryset.order_by(*key)[: size + 1])
    return KeysetPage(rows[:size], has_previous=False, has_next=len(rows) > size)


def _beyond(queryset: QuerySet, op: str, row_id: int, key: tuple[str, ...], boundary: QuerySet):
    """Rows whose key is after (`>`) or before (`<`) the key of row `row_id`, as one row-value
    comparison that an index on `key` serves directly (SQLite and PostgreSQL)."""
    model = queryset.model
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = [quote(model._meta.get_field(name).column) for name in key]
    inner_sql, inner_params = (
        boundary.filter(pk=row_id).order_by().values(*key).query.sql_with_params()
    )
    condition = RawSQL(
        f"({', '.join(f'{table}.{c}' for c in columns)}) {op} ({inner_sql})",
        inner_params,
        output_field=BooleanField(),
    )
    return queryset.filter(condition)
