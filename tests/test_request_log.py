"""One log line per request, for the operators: who, what, the status and the time taken,
and nothing about a patient. In JSON (LOG_FORMAT=json, the production default) each line
is one object a log collector reads as it is."""

from __future__ import annotations

import json
import logging

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from .fresh_process import run_python


def request_lines(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "workup.request"]


def test_each_request_is_one_line_with_user_path_view_status_and_time(
    client, clinician_a, workup_a, caplog
):
    client.force_login(clinician_a)
    with caplog.at_level(logging.INFO, logger="workup.request"):
        client.get(reverse("worklist"), {"q": "Smith MRN000123"})
        client.post(reverse("step_form", args=[workup_a.pk, "serum_tryptase"]), {})

    search, refused = request_lines(caplog)
    assert (search.user_id, search.method, search.path, search.view, search.status) == (
        clinician_a.pk,
        "GET",
        "/",
        "worklist",
        200,
    )
    assert isinstance(search.duration_ms, float) and search.duration_ms > 0
    assert (refused.method, refused.view, refused.status) == ("POST", "step_form", 400)
    assert refused.path == f"/workups/{workup_a.pk}/steps/serum_tryptase/"
    # The search term (a name, an MRN) is in the query string, which is never logged.
    for record in (search, refused):
        assert "Smith" not in record.getMessage() and "MRN000123" not in str(vars(record))


def test_a_health_probe_is_logged_without_a_query_to_find_its_user(client, caplog, db):
    with (
        caplog.at_level(logging.INFO, logger="workup.request"),
        CaptureQueriesContext(connection) as queries,
    ):
        response = client.get(reverse("healthz"))

    assert response.status_code == 200
    (line,) = request_lines(caplog)
    assert (line.user_id, line.view, line.status) == (None, "healthz", 200)
    assert not [q for q in queries if "django_session" in q["sql"]]


def test_json_logs_are_one_object_per_line_with_no_query_string_anywhere():
    done = run_python(
        "from django.test import Client\n"
        "c = Client()\n"
        "c.get('/healthz')\n"
        "c.get('/?q=Smith-MRN000123')\n"  # signed out: sent to the login page
        "c.get('/no-such-page?q=Smith-MRN000123')\n",  # a 404, logged by Django too
        LOG_FORMAT="json",
    )
    assert done.returncode == 0, done.stderr
    logged = [line for line in done.stderr.splitlines() if line.strip()]
    assert logged and all(line.startswith("{") for line in logged), logged
    lines = [json.loads(line) for line in logged]
    requests = [line for line in lines if line["logger"] == "workup.request"]
    assert [(r["path"], r["status"], r["user_id"]) for r in requests] == [
        ("/healthz", 200, None),
        ("/", 302, None),
        ("/no-such-page", 404, None),
    ]
    assert {"time", "level", "message", "method", "view", "duration_ms"} <= set(requests[0])
    assert "Smith" not in done.stderr and "MRN000123" not in done.stderr


def test_an_unknown_log_format_is_refused_at_start():
    done = run_python("import django; django.setup()", shell=False, LOG_FORMAT="xml")
    assert done.returncode != 0 and "LOG_FORMAT must be json or text" in done.stderr
