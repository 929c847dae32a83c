"""A database restart costs no failed request once the database is back (PostgreSQL).

The app keeps connections open between requests (CONN_MAX_AGE) with
CONN_HEALTH_CHECKS on: a connection the server has dropped is noticed at the start
of the next request and replaced. Driven through Django's WSGI handler, because the
test client turns off the per-request connection housekeeping this relies on.
"""

import psycopg
import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection
from django.test import RequestFactory

from .transactional import keep_database_state  # noqa: F401 - fixture

# Transactional (the handler's own connection housekeeping must run), so the rows the
# session loaded are put back afterwards by keep_database_state.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("keep_database_state"),
]


def get(app: WSGIHandler, path: str) -> str:
    statuses = []
    environ = RequestFactory()._base_environ(PATH_INFO=path, REQUEST_METHOD="GET")
    body = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
    b"".join(body)
    body.close()  # request_finished: Django's connection housekeeping runs
    return statuses[0]


def test_a_dropped_database_connection_costs_no_failed_request():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: the test database is SQLite")
    assert connection.settings_dict["CONN_HEALTH_CHECKS"]
    assert connection.settings_dict["CONN_MAX_AGE"] != 0
    app = WSGIHandler()
    assert get(app, "/healthz").startswith("200")
    backend = connection.connection.info.backend_pid  # the connection kept for the next request

    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        dbname="postgres",
        autocommit=True,
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [backend])  # as a restart does

    assert get(app, "/healthz").startswith("200")
    assert connection.connection.info.backend_pid != backend
