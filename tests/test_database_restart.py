"""A database restart costs no failed request once the database is back (PostgreSQL).

The app keeps connections open between requests (CONN_MAX_AGE) with
CONN_HEALTH_CHECKS on: a connection the server has dropped is noticed at the start
of the next request and replaced. Driven through Django's WSGI handler, because the
test client turns off the per-request connection housekeeping this relies on.
"""

import os
import re
import shutil
import subprocess
import threading
import time
from datetime import date

import psycopg
import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection, connections
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from workup.audit.trail import verify_chain
from workup.models import AuditEvent, Membership, StepRecord, Workup
from workup.records import writes

from .factories import PatientFactory, SiteFactory, UserFactory
from .live_gunicorn import Browser
from .transactional import clean_database, keep_database_state  # noqa: F401 - fixtures

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


def local_cluster() -> tuple[str, str] | None:
    """(version, name) of the local PostgreSQL cluster serving the test database, if we may
    restart it (Debian's pg_ctlcluster, as root, the database on this host)."""
    settings = connection.settings_dict
    if os.geteuid() != 0 or not shutil.which("pg_lsclusters"):
        return None
    if (settings["HOST"] or "localhost") not in ("localhost", "127.0.0.1", "::1"):
        return None
    listing = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True)
    for line in listing.stdout.splitlines():
        version, name, port, status, *_ = line.split()
        if port == str(settings["PORT"] or 5432) and status == "online":
            return version, name
    return None


def restart_postgresql(cluster: tuple[str, str]) -> None:
    """A fast restart: the server ends every session (rolling back what was open), then
    comes back; every connection the app held is dead."""
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, "restart", "-m", "fast"]
    subprocess.run(command, check=True, capture_output=True, timeout=120)


CLIENTS = 4
CONFLICT = "Someone else changed this workup"


@pytest.mark.usefixtures("clean_database")
def test_a_database_restart_during_a_write_burst_answers_503_and_nothing_is_half_written(
    gunicorn,
):
    cluster = local_cluster()
    if cluster is None:
        pytest.skip("needs root and pg_ctlcluster for the PostgreSQL cluster on this host")
    site = SiteFactory(code="restart-site", name="Restart Clinic")
    user = UserFactory()
    Membership.objects.create(user=user, site=site, role=Membership.Role.CLINICIAN)
    patients = [PatientFactory(site=site, birth_date=date(1970, 5, 1)) for _ in range(CLIENTS)]
    workups = [writes.open_workup(patient=patient, user=user) for patient in patients]
    start_versions = {w.pk: Workup.objects.get(pk=w.pk).version for w in workups}
    restarted = threading.Event()
    stop = threading.Event()
    outcomes: dict[str, list[str]] = {
        "accepted": [],
        "unavailable": [],
        "conflict on sending again": [],
        "other": [],
    }
    accepted_after_restart = [0] * CLIENTS
    pages_unavailable = [0]
    lock = threading.Lock()

    def client(n: int) -> None:
        browser = Browser(gunicorn.base, user)
        url = reverse("step_form", args=[workups[n].pk, "serum_tryptase"])
        edit = 0
        while not stop.is_set():
            form = browser.get(url)
            if form.status == 503:
                with lock:
                    pages_unavailable[0] += 1
                time.sleep(0.1)
                continue
            if form.status != 200:
                with lock:
                    outcomes["other"].append(f"GET {url}: {form.status}")
                return
            token = re.search(r'name="workup_version" value="(\d+)"', form.body).group(1)
            note = f"client {n} edit {edit}"
            edit += 1
            data = edit_form(token, note)
            answer = browser.post(url, data)
            if answer.status == 503:
                with lock:
                    outcomes["unavailable"].append(note)
                    if "may not have been saved" not in answer.body:
                        outcomes["other"].append(f"{note}: 503 page without its advice")
                # As the page advises: send the same form again once the service is back.
                # Saved after all, it meets the version check (409); never saved twice.
                answer = send_again_until_answered(browser, url, data)
                if answer.status == 409 and CONFLICT in answer.body:
                    with lock:
                        outcomes["conflict on sending again"].append(note)
                    continue
            with lock:
                if answer.status != 302:
                    outcomes["other"].append(f"{note}: {answer.status}")
                    return
                outcomes["accepted"].append(note)
                if restarted.is_set():
                    accepted_after_restart[n] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        wait_until(
            lambda: len(outcomes["accepted"]) >= 5 * CLIENTS, "saves before", outcomes["other"]
        )
        restart_postgresql(cluster)
        restarted.set()
        wait_until(lambda: min(accepted_after_restart) >= 5, "saves after", outcomes["other"])
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        connections.close_all()  # the test's own connection died with the restart

    assert not outcomes["other"], f"answers other than 302/503: {outcomes['other']}"
    assert outcomes["unavailable"] or pages_unavailable[0], "no request saw the restart"
    assert gunicorn.process.poll() is None and len(gunicorn.worker_pids()) == 4, (
        "the app recovered without a restart of its own (the same 4 workers)"
    )
    # Nothing half-written: every saved result has its audit event, its history row and
    # its version step; every accepted save is there; a 503 save is there whole or not at all.
    records = StepRecord.objects.filter(workup__in=workups)
    notes = list(records.values_list("note", flat=True))
    assert len(notes) == len(set(notes))
    assert set(outcomes["accepted"]) <= set(notes), "an accepted save was lost"
    # Each 503 save was sent again: it is there exactly once, whether the first send
    # had committed (the second met the version check) or the second one saved it.
    assert set(outcomes["unavailable"]) <= set(notes)
    assert set(outcomes["conflict on sending again"]) <= set(outcomes["unavailable"])
    assert set(notes) == set(outcomes["accepted"]) | set(outcomes["conflict on sending again"])
    for workup in workups:
        workup.refresh_from_db()
        assert workup.version == start_versions[workup.pk] + workup.records.count()
    created = AuditEvent.objects.filter(
        object_type="workup.steprecord", action=AuditEvent.Action.CREATE
    ).values_list("object_id", flat=True)
    assert sorted(int(i) for i in created) == sorted(records.values_list("pk", flat=True))
    assert StepRecord.history.filter(history_type="+").count() == records.count()
    assert verify_chain().ok
    print(
        f"\nPostgreSQL restarted mid-burst: {len(outcomes['accepted'])} saves accepted, "
        f"{len(outcomes['unavailable'])} answered 503 "
        f"(sent again: {len(outcomes['conflict on sending again'])} had committed, the rest "
        "saved then), "
        f"{pages_unavailable[0]} form loads answered 503, 0 answered 500"
    )


def edit_form(token: str, note: str) -> dict[str, str]:
    return {
        "value_ng_ml": "12.5",
        "is_baseline": "yes",
        "performed_on": timezone.localdate().isoformat(),
        "note": note,
        "workup_version": token,
    }


def send_again_until_answered(browser, url: str, data: dict, seconds: float = 60):
    """POST `data` again until the answer is not 503 (the database is back)."""
    deadline = time.monotonic() + seconds
    while True:
        time.sleep(0.2)
        answer = browser.post(url, data)
        if answer.status != 503 or time.monotonic() > deadline:
            return answer


def wait_until(condition, what: str, failures: list, seconds: float = 120) -> None:
    """Until `condition()` holds, or a client has failed (`failures` not empty)."""
    deadline = time.monotonic() + seconds
    while not (condition() or failures):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
