"""Support for tests that must commit (threads with their own connections, pg_dump).

pytest-django runs such tests (`django_db(transaction=True)`) after the others
and empties every table after each of them: the protocol, its case library and
the groups the migrations created would be gone for the tests that follow.

- `keep_database_state` (module scope) records every committed row before the
  module's first transactional test and puts exactly those rows back after its last
  (and the id sequences past them).
- `clean_database` starts a test from empty tables plus the shipped protocol, so
  that it does not depend on what earlier tests left committed.

Why not Django's serialize_db_to_string / deserialize_db_from_string (what
`serialized_rollback` uses): their JSON cuts datetimes to milliseconds, and an
audit event whose time changed no longer matches its SHA-256 hash, so the audit
chain of every later test reads as tampered. The "python" serializer keeps
datetimes and JSON values as they are.
"""

from __future__ import annotations

import pytest
from django.core import serializers
from django.core.management import call_command
from django.core.management.color import no_style
from django.db import connection, transaction

from workup.audit.trail import verify_chain
from workup.ops import backup
from workup.protocols.cache import clear_cache

from .conftest import PROTOCOL_FIXTURE


def committed_rows() -> list[dict]:
    """Every row of every migrated model, as Python values (the same models as Django's)."""
    objects = []
    for model in backup.migrated_models():
        objects.extend(model._base_manager.order_by(model._meta.pk.name))
    return serializers.serialize("python", objects)


def put_back(rows: list[dict]) -> None:
    """Empty every table, then insert `rows` as they were (ids, times and hashes included)."""
    call_command(
        "flush", interactive=False, verbosity=0, inhibit_post_migrate=True, reset_sequences=False
    )
    models = set()
    with transaction.atomic(), connection.constraint_checks_disabled():
        for obj in serializers.deserialize("python", rows):
            obj.save()
            models.add(type(obj.object))
    connection.check_constraints(table_names=sorted(m._meta.db_table for m in models))
    # The ids were inserted as given: move each sequence past them (PostgreSQL), or the
    # next insert would reuse an id.
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), models):
            cursor.execute(sql)


@pytest.fixture(scope="module")
def keep_database_state(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        rows = committed_rows()
        chain = verify_chain()
    yield
    with django_db_blocker.unblock():
        put_back(rows)
        assert verify_chain() == chain, "the audit chain changed in the round trip"
        connection.close()
    clear_cache()


@pytest.fixture
def clean_database(keep_database_state, transactional_db):
    """Empty tables (a fresh audit chain) and the shipped protocol, committed."""
    call_command("flush", interactive=False, verbosity=0)
    call_command("load_protocol", str(PROTOCOL_FIXTURE), verbosity=0)
    clear_cache()
