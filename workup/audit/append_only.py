"""The audit tables refuse UPDATE and DELETE in the database itself.

The model layer already refuses to change an audit event, but anyone with the
database login could still rewrite or delete rows with plain SQL. Triggers close
that door: on the audit event table and on every history table (the values before
and after each change), UPDATE and DELETE raise an error whoever runs them.

One UPDATE is allowed, because sealing needs it: a pending access event (no
position yet) may be given its position and hashes once, with nothing else
changed. A sealed row never changes again.

Lifting the guard is a privileged act, never something the app does:
- PostgreSQL: the triggers also refuse TRUNCATE. Only a superuser can bypass them
  (`SET session_replication_role = replica`); the app's role needs no such right.
- SQLite has no roles: whoever can write the file can drop a trigger. The triggers
  still refuse every UPDATE and DELETE that does not come through `lifted()`, which
  only the test suite's table flush uses; from the sqlite3 shell the guard's
  function does not exist, so the statement fails too.

`install()` is called by the migrations; `missing_guards()` tells verify_audit and
the tests whether every guard is in place.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator

AUDIT_TABLE = "workup_auditevent"
# A seal may fill in position, previous_hash and hash on a pending row; these stay as written.
_RECORDED_COLUMNS = (
    "id",
    "at",
    "user_id",
    "username",
    "action",
    "object_type",
    "object_id",
    "patient_id",
    "workup_id",
    "summary",
    "changes",
)
_SQLITE_LIFTED = "workup_audit_guard_lifted"
_MESSAGE = "append-only: the audit trail is never changed or deleted"

_state = threading.local()


def guarded_tables(models: Iterable) -> list[str]:
    """The tables that must be append-only: the audit events and every history table."""
    from simple_history.models import HistoricalChanges

    tables = {AUDIT_TABLE}
    tables.update(m._meta.db_table for m in models if issubclass(m, HistoricalChanges))
    return sorted(tables)


def install(connection, tables: Iterable[str]) -> None:
    """Create (or re-create) the guards on `tables`; idempotent."""
    statements = _postgresql_sql if connection.vendor == "postgresql" else _sqlite_sql
    with connection.cursor() as cursor:
        for table in tables:
            for statement in statements(table):
                cursor.execute(statement)


def uninstall(connection, tables: Iterable[str]) -> None:
    with connection.cursor() as cursor:
        for table in tables:
            for name in _trigger_names(table, connection.vendor):
                on = f' ON "{table}"' if connection.vendor == "postgresql" else ""
                cursor.execute(f'DROP TRIGGER IF EXISTS "{name}"{on}')


def missing_guards(connection, tables: Iterable[str]) -> list[str]:
    """The guard triggers that ought to exist on `tables` and do not (empty: all in place)."""
    if connection.vendor == "postgresql":
        sql = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'D'"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
    with connection.cursor() as cursor:
        cursor.execute(sql)
        present = {row[0] for row in cursor.fetchall()}
    return [
        name
        for table in tables
        for name in _trigger_names(table, connection.vendor)
        if name not in present
    ]


@contextlib.contextmanager
def lifted(connection) -> Iterator[None]:
    """Let this connection delete guarded rows for the duration (emptying test tables).

    PostgreSQL: needs a superuser (session_replication_role). SQLite: a flag this
    process's connections read through the guard's SQL function.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SET session_replication_role = DEFAULT")
        return
    _state.lifted = True
    try:
        yield
    finally:
        _state.lifted = False


def register_sqlite_function(sender, connection, **kwargs) -> None:
    """connection_created receiver: the SQL function the SQLite guards consult."""
    if connection.vendor == "sqlite":
        connection.connection.create_function(
            _SQLITE_LIFTED, 0, lambda: int(getattr(_state, "lifted", False))
        )


def _trigger_names(table: str, vendor: str) -> list[str]:
    if vendor == "postgresql":
        return [f"{table}_append_only", f"{table}_no_truncate"]
    return [f"{table}_append_only_update", f"{table}_append_only_delete"]


def _unchanged(new: str, old: str) -> str:
    return " AND ".join(f"{new}.{c} IS {old}.{c}" for c in _RECORDED_COLUMNS)


def _sqlite_sql(table: str) -> list[str]:
    update_name, delete_name = _trigger_names(table, "sqlite")
    allowed_update = "0"
    if table == AUDIT_TABLE:
        # Sealing: a pending row gets its place in the chain, nothing else changes.
        allowed_update = f"(OLD.position IS NULL AND {_unchanged('NEW', 'OLD')})"
    refuse = f"SELECT RAISE(ABORT, '{_MESSAGE} ({table})');"
    return [
        f'DROP TRIGGER IF EXISTS "{update_name}"',
        f'CREATE TRIGGER "{update_name}" BEFORE UPDATE ON "{table}" '
        f"WHEN NOT {_SQLITE_LIFTED}() AND NOT {allowed_update} BEGIN {refuse} END",
        f'DROP TRIGGER IF EXISTS "{delete_name}"',
        f'CREATE TRIGGER "{delete_name}" BEFORE DELETE ON "{table}" '
        f"WHEN NOT {_SQLITE_LIFTED}() BEGIN {refuse} END",
    ]


def _postgresql_sql(table: str) -> list[str]:
    row_name, truncate_name = _trigger_names(table, "postgresql")
    row_function = _REFUSE
    statements = [_plpgsql(_REFUSE, "")]
    if table == AUDIT_TABLE:
        # Sealing: a pending row gets its place in the chain, nothing else changes.
        new = ", ".join(f"NEW.{c}" for c in _RECORDED_COLUMNS)
        old = ", ".join(f"OLD.{c}" for c in _RECORDED_COLUMNS)
        row_function = _SEAL_ONLY
        statements.append(
            _plpgsql(
                _SEAL_ONLY,
                f"IF TG_OP = 'UPDATE' AND OLD.position IS NULL "
                f"AND ({new}) IS NOT DISTINCT FROM ({old}) THEN RETURN NEW; END IF;",
            )
        )
    return [
        *statements,
        f'DROP TRIGGER IF EXISTS "{row_name}" ON "{table}"',
        f'CREATE TRIGGER "{row_name}" BEFORE UPDATE OR DELETE ON "{table}" '
        f'FOR EACH ROW EXECUTE FUNCTION "{row_function}"()',
        f'DROP TRIGGER IF EXISTS "{truncate_name}" ON "{table}"',
        f'CREATE TRIGGER "{truncate_name}" BEFORE TRUNCATE ON "{table}" '
        f'FOR EACH STATEMENT EXECUTE FUNCTION "{_REFUSE}"()',
    ]


_REFUSE = "workup_refuse_rewrite"
_SEAL_ONLY = "workup_auditevent_seal_only"


def _plpgsql(name: str, allowed: str) -> str:
    return f"""CREATE OR REPLACE FUNCTION "{name}"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  {allowed}
  RAISE EXCEPTION '{_MESSAGE} (% on %)', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'restrict_violation';
END
$$"""
