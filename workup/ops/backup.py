"""Back up and restore the whole database, and check that a backup restores.

- SQLite: the online backup API (`sqlite3.Connection.backup`) copies a
  consistent snapshot while the app keeps running; the backup is itself a
  SQLite database file.
- PostgreSQL: `pg_dump --format=custom`, restored with `pg_restore --clean
  --if-exists --no-owner` in a single transaction. Connection parameters come
  from the Django settings; a password goes in PGPASSWORD, never on the command
  line (where `ps` would show it).

A backup holds patient data: it is written with mode 0600, and only complete
backups get the requested name (a partial file never looks like a backup).

`verify_restore` restores a backup into a scratch database and compares it with
the live database (see `snapshot`): every workup's checklist, and a SHA-256 digest
of every row's values in every table.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.utils import ConnectionHandler

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_CUSTOM_MAGIC = b"PGDMP"
# How long a SQLite backup waits for a read lock before giving up (never hang a cron job).
SQLITE_LOCK_TIMEOUT_SECONDS = 60
PG_MAINTENANCE_DB = "postgres"


class BackupError(Exception):
    """The backup or restore could not be done; the message says why."""


class DatabaseNotEmpty(BackupError):
    pass


# --- backup ---------------------------------------------------------------------------------


def backup(output: str | Path, connection=None) -> Path:
    """Write a backup of the database behind `connection` (default: the default database)."""
    connection = connection or connections[DEFAULT_DB_ALIAS]
    output = Path(output)
    if output.is_dir():
        raise BackupError(f"{output} is a directory: give a file name.")
    with _partial_file(output) as partial:
        if connection.vendor == "sqlite":
            _sqlite_backup(connection, partial)
        elif connection.vendor == "postgresql":
            _run(
                ["pg_dump", "--format=custom", "--no-password", f"--file={partial}"]
                + _pg_connection_args(connection.settings_dict),
                connection.settings_dict,
            )
        else:
            raise BackupError(f"Backups of {connection.vendor} databases are not supported.")
    return output


@contextmanager
def _partial_file(output: Path) -> Iterator[Path]:
    """A private (0600) file beside `output` that becomes `output` only on success."""
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".part")
    os.close(handle)
    partial = Path(name)
    try:
        yield partial
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)


def _sqlite_backup(connection, target: Path) -> None:
    connection.ensure_connection()
    source = connection.connection
    if source.in_transaction:
        # A copy taken here would miss or include uncommitted rows (and an
        # in-memory source would wait for its own lock forever).
        raise BackupError("Cannot back up from inside a transaction: commit first.")
    with closing(sqlite3.connect(target)) as destination:
        source.backup(destination, progress=_give_up_after(SQLITE_LOCK_TIMEOUT_SECONDS))
        # One self-contained file, whatever the journal mode of the live database.
        destination.execute("PRAGMA journal_mode=DELETE")


def _give_up_after(seconds: float):
    deadline = time.monotonic() + seconds

    def progress(status: int, remaining: int, total: int) -> None:
        if status in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) and time.monotonic() > deadline:
            raise BackupError(f"The database stayed locked for {seconds} s; nothing was backed up.")

    return progress


# --- restore --------------------------------------------------------------------------------


def backup_format(path: str | Path) -> str:
    """'sqlite' or 'postgresql', from the file's first bytes."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except OSError as error:
        raise BackupError(f"Cannot read {path}: {error.strerror}.") from None
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PG_CUSTOM_MAGIC):
        return "postgresql"
    raise BackupError(f"{path} is not a backup made by backup_db (neither SQLite nor pg_dump).")


def table_names(connection) -> list[str]:
    with connection.cursor() as cursor:
        return connection.introspection.table_names(cursor)


def is_empty(connection) -> bool:
    """A database is empty when it has no tables at all (a migrated database is not empty)."""
    return not table_names(connection)


def restore(source: str | Path, connection=None, *, force: bool = False) -> None:
    """Replace the database behind `connection` with the backup in `source`.

    Checks the backup first, then refuses a database that has any table unless
    `force`; nothing is changed when either check fails.
    """
    connection = connection or connections[DEFAULT_DB_ALIAS]
    source = Path(source)
    kind = backup_format(source)
    if kind != connection.vendor:
        raise BackupError(
            f"{source} is a {kind} backup; the database is {connection.vendor}. "
            "Restore into a database of the same kind."
        )
    if kind == "sqlite":
        _sqlite_check(source)
    else:
        _pg_check_archive(source, connection.settings_dict)
    if not force and not is_empty(connection):
        raise DatabaseNotEmpty(
            f"The database {connection.settings_dict['NAME']} is not empty "
            f"({len(table_names(connection))} tables). Nothing was restored; "
            "restore into an empty database, or pass --force to replace its contents."
        )
    connection.close()
    if kind == "sqlite":
        _sqlite_restore(source, connection)
    else:
        _run(
            [
                "pg_restore",
                "--clean",
                "--if-exists",
                "--no-owner",
                "--single-transaction",
                "--no-password",
            ]
            + _pg_connection_args(connection.settings_dict)
            + [str(source)],
            connection.settings_dict,
        )
    connection.close()
    from workup.protocols.cache import clear_cache

    clear_cache()


def _open_sqlite_backup(source: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{source}?mode=ro", uri=True)


def _sqlite_check(source: Path) -> None:
    with closing(_open_sqlite_backup(source)) as backup_db:
        try:
            check = backup_db.execute("PRAGMA quick_check").fetchone()[0]
            migrated = backup_db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'django_migrations'"
            ).fetchone()
        except sqlite3.DatabaseError as error:
            raise BackupError(f"{source} is damaged: {error}.") from None
    if check != "ok":
        raise BackupError(f"{source} is damaged: {check}.")
    if not migrated:
        raise BackupError(f"{source} is a SQLite file but not a backup of this app.")


def _sqlite_restore(source: Path, connection) -> None:
    connection.ensure_connection()
    with closing(_open_sqlite_backup(source)) as backup_db:
        try:
            backup_db.backup(
                connection.connection, progress=_give_up_after(SQLITE_LOCK_TIMEOUT_SECONDS)
            )
        except sqlite3.Error as error:
            raise BackupError(f"Restore failed: {error}.") from None


# --- PostgreSQL helpers ---------------------------------------------------------------------


def _pg_connection_args(settings_dict: dict[str, Any]) -> list[str]:
    args = []
    if settings_dict.get("HOST"):
        args.append(f"--host={settings_dict['HOST']}")
    if settings_dict.get("PORT"):
        args.append(f"--port={settings_dict['PORT']}")
    if settings_dict.get("USER"):
        args.append(f"--username={settings_dict['USER']}")
    args.append(f"--dbname={settings_dict['NAME']}")
    return args


def _pg_env(settings_dict: dict[str, Any]) -> dict[str, str]:
    env = dict(os.environ)
    if settings_dict.get("PASSWORD"):
        env["PGPASSWORD"] = str(settings_dict["PASSWORD"])
    options = settings_dict.get("OPTIONS") or {}
    for option, variable in (
        ("sslmode", "PGSSLMODE"),
        ("sslrootcert", "PGSSLROOTCERT"),
        ("sslcert", "PGSSLCERT"),
        ("sslkey", "PGSSLKEY"),
        ("passfile", "PGPASSFILE"),
        ("service", "PGSERVICE"),
    ):
        if options.get(option):
            env[variable] = str(options[option])
    return env


def _run(command: list[str], settings_dict: dict[str, Any]) -> None:
    if shutil.which(command[0]) is None:
        raise BackupError(f"{command[0]} was not found: install the PostgreSQL client tools.")
    result = subprocess.run(
        command, env=_pg_env(settings_dict), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        message = result.stderr.strip() or f"exit status {result.returncode}"
        raise BackupError(f"{command[0]} failed: {message}")


def _pg_check_archive(source: Path, settings_dict: dict[str, Any]) -> None:
    """Read the whole archive (as a script to nowhere): a truncated or damaged one fails here."""
    try:
        _run(["pg_restore", f"--file={os.devnull}", str(source)], settings_dict)
    except BackupError as error:
        raise BackupError(f"{source} is damaged: {error}") from None


def _pg_maintenance_connection(settings_dict: dict[str, Any]):
    import psycopg

    return psycopg.connect(
        dbname=PG_MAINTENANCE_DB,
        host=settings_dict.get("HOST") or None,
        port=settings_dict.get("PORT") or None,
        user=settings_dict.get("USER") or None,
        password=settings_dict.get("PASSWORD") or None,
        autocommit=True,
    )


def create_pg_database(settings_dict: dict[str, Any], name: str) -> None:
    from psycopg import sql

    with closing(_pg_maintenance_connection(settings_dict)) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_pg_database(settings_dict: dict[str, Any], name: str) -> None:
    from psycopg import sql

    with closing(_pg_maintenance_connection(settings_dict)) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


# --- scratch databases and the restore check ------------------------------------------------


@contextmanager
def database_connection(settings_dict: dict[str, Any]) -> Iterator[Any]:
    """A Django connection to another database (settings completed with Django's defaults)."""
    handler = ConnectionHandler({DEFAULT_DB_ALIAS: dict(settings_dict)})
    try:
        yield handler[DEFAULT_DB_ALIAS]
    finally:
        handler.close_all()


@contextmanager
def scratch_database(settings_dict: dict[str, Any], prefix: str = "verify_restore") -> Iterator:
    """An empty database of the same kind as `settings_dict`, removed afterwards.

    SQLite: a file in a private temporary directory. PostgreSQL: a database
    named <prefix>_<random> on the same server, created and dropped with the
    same credentials (the role needs CREATEDB).
    """
    engine = settings_dict["ENGINE"]
    if engine.endswith("sqlite3"):
        with tempfile.TemporaryDirectory(prefix=f"{prefix}_") as directory:
            scratch = {**settings_dict, "NAME": str(Path(directory) / "restore.sqlite3")}
            with database_connection(scratch) as connection:
                yield connection
    elif "postgresql" in engine:
        name = f"{prefix}_{secrets.token_hex(6)}"
        create_pg_database(settings_dict, name)
        try:
            with database_connection({**settings_dict, "NAME": name}) as connection:
                yield connection
        finally:
            drop_pg_database(settings_dict, name)
    else:
        raise BackupError(f"Scratch databases for {engine} are not supported.")


@contextmanager
def as_default_database(connection) -> Iterator[None]:
    """Run code written for the default database against `connection` (this thread only)."""
    from workup.protocols.cache import clear_cache

    previous = connections[DEFAULT_DB_ALIAS]
    connections[DEFAULT_DB_ALIAS] = connection
    clear_cache()
    try:
        yield
    finally:
        connections[DEFAULT_DB_ALIAS] = previous
        clear_cache()


def snapshot() -> dict[str, Any]:
    """What must survive a backup and restore, from the default database.

    For every workup: its version and status, each step's state, the suggested
    steps in order, and how many results and marks it has; overall counts; the
    audit chain verification; and every table's rows and the digest of their values
    (`table_digests`), which tells a restored row whose values changed.
    """
    from workup import reads
    from workup.audit.trail import verify_chain
    from workup.models import AuditEvent, Patient, StepMark, StepRecord, Workup

    workups = {}
    queryset = Workup.objects.select_related("patient", "protocol").order_by("pk")
    for workup in queryset.iterator(chunk_size=500):
        checklist = reads.load_state(workup).checklist()
        workups[workup.pk] = {
            "version": workup.version,
            "status": workup.status,
            "steps": {item.code: item.state for item in checklist.items},
            "suggested": [item.code for item in checklist.suggested],
            "records": workup.records.count(),
            "marks": workup.marks.count(),
        }
    chain = verify_chain()
    return {
        "counts": {
            "patients": Patient.objects.count(),
            "workups": len(workups),
            "step records": StepRecord.objects.count(),
            "step marks": StepMark.objects.count(),
            "audit events": AuditEvent.objects.count(),
        },
        "audit chain": {
            "ok": chain.ok,
            "checked": chain.checked,
            "first_bad_id": chain.first_bad_id,
        },
        "workups": workups,
        "tables": table_digests(),
    }


def migrated_models() -> list:
    """Every model whose table Django migrates in the default database (what flush empties)."""
    from django.apps import apps
    from django.db import connection, router
    from django.db.migrations.loader import MigrationLoader

    migrated = MigrationLoader(connection, ignore_no_migrations=True).migrated_apps
    return [
        model
        for model in apps.get_models()
        if model._meta.app_label in migrated
        and model._meta.can_migrate(connection)
        and router.allow_migrate_model(connection.alias, model)
    ]


def table_digests() -> dict[str, dict[str, Any]]:
    """{table: {"rows": n, "digest": SHA-256 of every row's values, in primary-key order}}.

    Every table Django migrates (the app's, history, users, sessions, django-axes'),
    read through the ORM so that both sides of a comparison decode values alike.
    """
    digests = {}
    for model in migrated_models():
        meta = model._meta
        columns = [field.attname for field in meta.concrete_fields]
        digest, rows = hashlib.sha256(), 0
        values = model._base_manager.order_by(meta.pk.name).values_list(*columns)
        for row in values.iterator(chunk_size=2000):
            digest.update(json.dumps(row, default=str, sort_keys=True).encode() + b"\n")
            rows += 1
        digests[meta.db_table] = {"rows": rows, "digest": digest.hexdigest()}
    return digests


def compare(live: dict[str, Any], restored: dict[str, Any]) -> list[str]:
    """The differences between two snapshots, in words (empty: identical)."""
    problems = []
    for name, count in live["counts"].items():
        if restored["counts"].get(name) != count:
            problems.append(f"{name}: {count} live, {restored['counts'].get(name)} restored")
    if live["audit chain"] != restored["audit chain"]:
        problems.append(
            f"audit chain: {_chain_text(live['audit chain'])} live, "
            f"{_chain_text(restored['audit chain'])} restored"
        )
    for table, before in live["tables"].items():
        after = restored["tables"].get(table)
        if after is None:
            problems.append(f"table {table}: missing from the restored database")
        elif after["rows"] != before["rows"]:
            problems.append(f"table {table}: {before['rows']} rows live, {after['rows']} restored")
        elif after["digest"] != before["digest"]:
            problems.append(
                f"table {table}: the same {before['rows']} rows, but their values differ"
            )
    live_workups, restored_workups = live["workups"], restored["workups"]
    for pk in sorted(set(live_workups) - set(restored_workups)):
        problems.append(f"workup {pk}: missing from the restored database")
    for pk in sorted(set(restored_workups) - set(live_workups)):
        problems.append(f"workup {pk}: in the restored database only")
    for pk in sorted(set(live_workups) & set(restored_workups)):
        before, after = live_workups[pk], restored_workups[pk]
        for key in before:
            if key == "steps":
                for code in sorted(set(before["steps"]) | set(after["steps"])):
                    if before["steps"].get(code) != after["steps"].get(code):
                        problems.append(
                            f"workup {pk}: step {code} is {before['steps'].get(code)} live, "
                            f"{after['steps'].get(code)} restored"
                        )
            elif before[key] != after.get(key):
                problems.append(
                    f"workup {pk}: {key} {before[key]!r} live, {after.get(key)!r} restored"
                )
    return problems


def _chain_text(chain: dict[str, Any]) -> str:
    if chain["ok"]:
        return f"intact ({chain['checked']} events)"
    return f"broken at event {chain['first_bad_id']} ({chain['checked']} intact before it)"


def verify_restore(source: str | Path) -> list[str]:
    """Restore `source` into a scratch database and compare it with the default database."""
    backup_format(source)  # a clear message for a file that is no backup at all
    live = snapshot()
    with scratch_database(connections[DEFAULT_DB_ALIAS].settings_dict) as scratch:
        restore(source, scratch)
        with as_default_database(scratch):
            restored = snapshot()
    return compare(live, restored)
