"""A cache shared by every worker (CACHE_URL=redis://...), and pages that survive its loss.

Against the Redis of the machine (127.0.0.1:6379 unless WORKUP_TEST_REDIS_URL says
otherwise), in a database of its own per test database kind, so that a SQLite run and a
PostgreSQL run side by side do not flush each other's keys. Where no Redis answers the
Redis tests are skipped, unless WORKUP_REQUIRE_REDIS is set (CI sets it: .ci/run starts one).
"""

from __future__ import annotations

import logging
import os
import uuid

import pytest
from django.core.cache import caches
from django.db import connection
from django.urls import reverse

from workup.models import Membership, Workup
from workup.ops.cache import FailOpenRedisCache
from workup.records import writes

from .conftest import record
from .factories import PatientFactory, SiteFactory, UserFactory
from .fresh_process import run_python, setting_in_a_fresh_process
from .live_gunicorn import Browser
from .transactional import clean_database, keep_database_state  # noqa: F401 - fixtures

REDIS_BASE = os.environ.get("WORKUP_TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
CLOSED_PORT_URL = "redis://127.0.0.1:1/0"  # nothing listens there


def redis_url() -> str:
    return f"{REDIS_BASE}/{15 if connection.vendor == 'postgresql' else 14}"


@pytest.fixture
def redis_client():
    import redis

    client = redis.Redis.from_url(redis_url(), socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as error:
        if os.environ.get("WORKUP_REQUIRE_REDIS"):
            pytest.fail(f"no Redis at {redis_url()} ({error}); CI must have one")
        pytest.skip(f"no Redis at {redis_url()} ({error})")
    yield client
    client.close()


def redis_cache_settings(url: str, prefix: str) -> dict:
    return {
        "default": {
            "BACKEND": "workup.ops.cache.FailOpenRedisCache",
            "LOCATION": url,
            "KEY_PREFIX": prefix,
            "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.5},
        }
    }


@pytest.fixture
def shared_cache(settings, redis_client):
    """The default cache on Redis, under a key prefix of this test's own."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    settings.CACHES = redis_cache_settings(redis_url(), prefix)
    yield prefix
    for key in redis_client.scan_iter(f"{prefix}:*"):
        redis_client.delete(key)


def test_the_rendered_checklist_is_kept_in_redis_where_any_worker_reads_it(
    client, clinician_a, workup_a, shared_cache, redis_client
):
    client.force_login(clinician_a)
    response = client.get(reverse("checklist", args=[workup_a.pk]))
    assert response.status_code == 200

    keys = [key.decode() for key in redis_client.scan_iter(f"{shared_cache}:*")]
    assert len(keys) == 1 and "template.cache.checklist_body" in keys[0], keys
    # Another process's cache object, made from the same settings, reads the same body.
    other_worker = FailOpenRedisCache(redis_url(), {"KEY_PREFIX": shared_cache})
    key = keys[0].split(":", 2)[2]  # prefix:version:key, as Django makes it
    body = other_worker.get(key)
    assert body and "Suggested next steps" in body
    assert body in response.content.decode()


def test_a_redis_that_does_not_answer_costs_speed_never_the_page(
    client, clinician_a, workup_a, settings, caplog
):
    settings.CACHES = redis_cache_settings(CLOSED_PORT_URL, "down")
    client.force_login(clinician_a)
    url = reverse("checklist", args=[workup_a.pk])

    with caplog.at_level(logging.WARNING, logger="workup.ops.cache"):
        first = client.get(url)
        again = client.get(url)

    assert first.status_code == again.status_code == 200
    assert "Suggested next steps" in again.content.decode()
    warnings = [r.getMessage() for r in caplog.records if r.name == "workup.ops.cache"]
    # Warned once, then left alone for a few seconds: not one slow try per call.
    assert len(warnings) == 1 and "cache unavailable" in warnings[0], warnings
    cache = caches["default"]
    assert cache.get("anything", "missed") == "missed"
    cache.set("anything", 1)  # skipped, no error


def test_cache_url_chooses_the_shared_cache_and_refuses_what_it_cannot_use():
    backend = "settings.CACHES['default']['BACKEND']"
    unset = setting_in_a_fresh_process(backend, CACHE_URL="")
    assert unset == "django.core.cache.backends.locmem.LocMemCache"
    shared = setting_in_a_fresh_process(backend, CACHE_URL="redis://cache.internal:6379/0")
    assert shared == "workup.ops.cache.FailOpenRedisCache"
    refused = run_python("import django; django.setup()", shell=False, CACHE_URL="memcache://x:1")
    assert refused.returncode != 0
    assert "CACHE_URL: only redis://" in refused.stderr


@pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="PostgreSQL only: the test database is SQLite"
)
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("clean_database")
def test_four_gunicorn_workers_share_one_rendered_checklist(request, monkeypatch, redis_client):
    """Through the real doors: the body one worker rendered is read by the others from
    Redis (Redis counts the reads that found it), instead of each building its own."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("CACHE_URL", redis_url())
    monkeypatch.setenv("CACHE_KEY_PREFIX", prefix)
    server = request.getfixturevalue("gunicorn")  # started with the environment above

    site = SiteFactory()
    user = UserFactory()
    Membership.objects.create(user=user, site=site, role=Membership.Role.CLINICIAN)
    patient = PatientFactory(site=site)
    workup = writes.open_workup(patient=patient, user=user)
    browser = Browser(server.base, user)
    url = reverse("checklist", args=[workup.pk])
    hits_before = redis_client.info("stats")["keyspace_hits"]
    try:
        pages = [browser.get(url) for _ in range(12)]  # one connection each: any worker
        assert all(page.status == 200 for page in pages)
        keys = list(redis_client.scan_iter(f"{prefix}:*"))
        assert len(keys) == 1, keys  # one body, not one per worker
        hits = redis_client.info("stats")["keyspace_hits"] - hits_before
        assert hits >= 11, f"only {hits} of 11 later pages were read from Redis"
    finally:
        for key in redis_client.scan_iter(f"{prefix}:*"):
            redis_client.delete(key)


def test_a_cache_that_outlived_a_restore_does_not_answer_for_the_rows_after_it(
    client, clinician_a, workup_a
):
    """After a restore from a backup, ids and versions are handed out again: a workup can
    be at a version it had before with other content. A cache kept across the restore
    (Redis outlives the app's restart) must not serve the body it kept for that version."""
    client.force_login(clinician_a)
    url = reverse("checklist", args=[workup_a.pk])
    workup_a.refresh_from_db()
    before = workup_a.version
    assert 'id="step-history"' in client.get(url).content.decode()  # built and kept
    record(workup_a, clinician_a, "history", {"mediator_symptoms": True, "anaphylaxis": False})
    Workup.objects.filter(pk=workup_a.pk).update(version=before)  # as the restored sequence

    html = client.get(url).content.decode()
    history = html[html.find('id="step-history"') :]
    item = history[: history.find("</li>")]
    assert "Documented" in item, "the kept body was served"
