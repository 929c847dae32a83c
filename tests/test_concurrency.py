"""No lost updates: concurrent edits of one workup are each saved once or refused, never lost.

Every write claims the workup's version (`writes.claim_version`): an edit made
from a stale version is refused with WorkupConflict and saves nothing; the user
(here: the thread) reloads and tries again. The threads have their own database
connections, so the rows must be committed: these tests are transactional, and
`keep_database_state` puts the database back as it was for the tests that follow.
"""

from __future__ import annotations

import random
import re
import threading
import time
import traceback
from datetime import date, timedelta

import pytest
from django.db import connection, connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from workup.audit.trail import verify_chain
from workup.models import AuditEvent, Membership, StepRecord, Workup
from workup.ops import backup
from workup.records import writes

from .factories import PatientFactory, SiteFactory, UserFactory
from .live_gunicorn import Browser
from .transactional import clean_database, keep_database_state  # noqa: F401 - fixtures

THREADS, EDITS = 8, 50
CONFLICT = "Someone else changed this workup"

only_postgresql = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="PostgreSQL only: the test database is SQLite"
)
only_sqlite = pytest.mark.skipif(
    "connection.vendor != 'sqlite'", reason="SQLite only: the test database is PostgreSQL"
)


def clinic():
    site = SiteFactory(code="race-site", name="Race Clinic")
    users = [UserFactory(), UserFactory()]
    for user in users:
        Membership.objects.create(user=user, site=site, role=Membership.Role.CLINICIAN)
    patient = PatientFactory(site=site, birth_date=date(1970, 5, 1), sex="male")
    return users, writes.open_workup(patient=patient, user=users[0])


def edit_until_saved(workup_id: int, user, thread: int, edit: int) -> int:
    """One edit as a clinician makes it: load, read the version, save; on conflict, again."""
    conflicts = 0
    while True:
        workup = Workup.objects.select_related("patient", "protocol").get(pk=workup_id)
        try:
            writes.record_step(
                workup=workup,
                step_code="serum_tryptase",
                values={"value_ng_ml": float(10 + thread), "is_baseline": edit % 2 == 0},
                performed_on=date(2026, 1, 1) - timedelta(days=edit),
                note=f"thread {thread} edit {edit}",
                user=user,
                expected_version=workup.version,
            )
            return conflicts
        except writes.WorkupConflict:
            conflicts += 1
            # Back off a little before trying again, as a client does (a thundering herd of
            # retries would only multiply the refused attempts).
            time.sleep(random.uniform(0, 0.02 * min(conflicts, 10)))


def run_in_threads(count: int, work) -> list[str]:
    """Run work(n) in `count` threads started together; each closes its own connections."""
    barrier = threading.Barrier(count)
    errors: list[str] = []

    def target(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            work(n)
        except BaseException:  # noqa: BLE001 - reported by the test
            errors.append(traceback.format_exc())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=target, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread is still running"
    return errors


def assert_every_edit_saved_once(workup: Workup, threads: int, edits: int, start_version: int):
    records = StepRecord.objects.filter(workup=workup)
    notes = sorted(records.values_list("note", flat=True))
    expected = sorted(f"thread {t} edit {e}" for t in range(threads) for e in range(edits))
    assert len(notes) == threads * edits, "an edit was lost (or saved twice)"
    assert notes == expected
    workup.refresh_from_db()
    assert workup.version == start_version + threads * edits
    created = AuditEvent.objects.filter(
        workup_id=workup.pk, object_type="workup.steprecord", action=AuditEvent.Action.CREATE
    )
    assert sorted(int(i) for i in created.values_list("object_id", flat=True)) == sorted(
        records.values_list("pk", flat=True)
    ), "every saved result has exactly one audit event"
    chain = verify_chain()
    assert chain.ok, chain


@only_postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("clean_database")
def test_eight_clinicians_editing_one_workup_at_once_lose_no_edit():
    users, workup = clinic()
    start_version = Workup.objects.get(pk=workup.pk).version
    conflicts = [0] * THREADS

    def work(n: int) -> None:
        for edit in range(EDITS):
            conflicts[n] += edit_until_saved(workup.pk, users[n % 2], n, edit)

    errors = run_in_threads(THREADS, work)

    assert not errors, "\n".join(errors)
    assert_every_edit_saved_once(workup, THREADS, EDITS, start_version)
    assert sum(conflicts) > 0, "the threads never collided: the test proves nothing"
    print(f"\n{THREADS} x {EDITS} edits: {sum(conflicts)} conflicts refused and retried")


def form_token(html: str) -> str:
    return re.search(r'name="workup_version" value="(\d+)"', html).group(1)


def tryptase_form(token: str, value: str) -> dict:
    return {
        "value_ng_ml": value,
        "is_baseline": "yes",
        "performed_on": timezone.localdate().isoformat(),
        "note": "",
        "workup_version": token,
    }


@pytest.mark.django_db
def test_the_second_of_two_clinicians_with_the_same_form_gets_the_conflict_page(
    clinician_a, site_a
):
    other = UserFactory()
    Membership.objects.create(user=other, site=site_a, role=Membership.Role.CLINICIAN)
    patient = PatientFactory(site=site_a, birth_date=date(1970, 5, 1))
    workup = writes.open_workup(patient=patient, user=clinician_a)
    url = reverse("step_form", args=[workup.pk, "serum_tryptase"])
    first, second = Client(), Client()
    first.force_login(clinician_a)
    second.force_login(other)
    token = form_token(first.get(url).content.decode())
    assert form_token(second.get(url).content.decode()) == token

    won = first.post(url, tryptase_form(token, "21"))
    lost = second.post(url, tryptase_form(token, "34.5"))

    assert won.status_code == 302
    assert lost.status_code == 409
    html = lost.content.decode()
    assert CONFLICT in html
    assert 'value="34.5"' in html, "what the second clinician typed is kept"
    assert form_token(html) == str(Workup.objects.get(pk=workup.pk).version)
    assert list(StepRecord.objects.values_list("values", flat=True)) == [
        {"value_ng_ml": 21.0, "is_baseline": True}
    ]


@only_postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("clean_database")
def test_two_clinicians_saving_the_same_form_at_the_same_moment_one_wins_one_sees_409():
    users, workup = clinic()
    url = reverse("step_form", args=[workup.pk, "serum_tryptase"])
    browsers = []
    for user in users:
        browser = Client()
        browser.force_login(user)
        browsers.append(browser)

    for attempt in range(5):
        token = form_token(browsers[0].get(url).content.decode())
        statuses: list[int] = [0, 0]

        def work(n: int, token=token, statuses=statuses, attempt=attempt) -> None:
            response = browsers[n].post(url, tryptase_form(token, f"{10 + attempt}.{n}"))
            statuses[n] = response.status_code
            if response.status_code == 409:
                assert CONFLICT in response.content.decode()

        errors = run_in_threads(2, work)

        assert not errors, "\n".join(errors)
        assert sorted(statuses) == [302, 409], statuses
    assert StepRecord.objects.filter(workup=workup).count() == 5


@only_sqlite
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("clean_database")
def test_concurrent_edits_on_a_sqlite_file_in_wal_mode_neither_lock_out_nor_lose(tmp_path):
    """The settings' IMMEDIATE transactions and busy timeout: writers wait for each other.

    The test database is in memory; this runs on a file copy of it, with the same options.
    """
    path = tmp_path / "workup.sqlite3"
    backup.backup(path)  # the committed test database: protocol, groups
    settings_dict = {**connection.settings_dict, "NAME": str(path)}
    assert settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    threads, edits = 4, 25

    with backup.database_connection(settings_dict) as file_db, backup.as_default_database(file_db):
        users, workup = clinic()
        start_version = Workup.objects.get(pk=workup.pk).version
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode")
            assert cursor.fetchone()[0] == "wal"

    conflicts = [0] * threads

    def work(n: int) -> None:
        with backup.database_connection(settings_dict) as own, backup.as_default_database(own):
            for edit in range(edits):
                conflicts[n] += edit_until_saved(workup.pk, users[n % 2], n, edit)

    errors = run_in_threads(threads, work)

    assert not errors, "\n".join(errors)  # "database is locked" would be here
    assert sum(conflicts) > 0, "the threads never collided: the test proves nothing"
    with backup.database_connection(settings_dict) as file_db, backup.as_default_database(file_db):
        assert_every_edit_saved_once(workup, threads, edits, start_version)


@only_postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("clean_database")
def test_eight_browsers_editing_one_workup_through_gunicorn_lose_no_edit(gunicorn):
    """The race through the real doors: HTTP, 4 gunicorn worker processes, PostgreSQL.

    Each browser loads the form and sends it; refused, it sends it again from the
    conflict page (which keeps what was typed and carries the workup's new version),
    as a clinician does. Every accepted save must be there once, every refused one
    must have been shown the conflict page, and nothing else may happen.
    """
    users, workup = clinic()
    start_version = Workup.objects.get(pk=workup.pk).version
    url = reverse("step_form", args=[workup.pk, "serum_tryptase"])
    browsers = [Browser(gunicorn.base, users[n % 2]) for n in range(THREADS)]
    accepted: list[list[str]] = [[] for _ in range(THREADS)]
    refused = [0] * THREADS
    unexpected: list[str] = []

    def work(n: int) -> None:
        browser = browsers[n]
        for edit in range(EDITS):
            note = f"thread {n} edit {edit}"
            page = browser.get(url)
            assert page.status == 200, page.status
            tries = 0
            while True:
                data = {**tryptase_form(form_token(page.body), f"{10 + n}.5"), "note": note}
                page = browser.post(url, data)
                if page.status == 302:
                    accepted[n].append(note)
                    break
                if page.status != 409 or CONFLICT not in page.body:
                    unexpected.append(f"{note}: {page.status}")
                    return
                assert note in page.body, "the conflict page keeps what was typed"
                refused[n] += 1
                tries += 1
                # Back off as a client does: a herd of instant retries only collides again.
                time.sleep(random.uniform(0, 0.01 * 2 ** min(tries, 5)))

    errors = run_in_threads(THREADS, work)

    assert not errors, "\n".join(errors)
    assert not unexpected, unexpected
    assert len(gunicorn.worker_pids()) == 4
    assert sum(len(notes) for notes in accepted) == THREADS * EDITS
    assert_every_edit_saved_once(workup, THREADS, EDITS, start_version)  # 0 lost
    assert sum(refused) > 0, "the browsers never collided: the test proves nothing"
    print(
        f"\nHTTP, 4 gunicorn workers, {THREADS} x {EDITS} edits: "
        f"{THREADS * EDITS} accepted, {sum(refused)} refused with the conflict page, 0 lost"
    )
