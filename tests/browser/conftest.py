"""Browser tests: Debian's Chromium driven by Playwright against pytest-django's live server.

`playwright install` cannot download browsers here, so the tests use the system's
/usr/bin/chromium (CI installs it; without it they are skipped). A live server needs
committed data, so these tests are transactional: pytest-django runs them after the
others and empties every table after each one. The module-scoped fixture below puts
back what was committed before (the protocol, the groups the migrations made, the audit
chain), so the tests that follow find the database as they expect.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.core.management.color import no_style
from django.db import connection, connections
from django.test import Client

from workup.audit.trail import verify_chain
from workup.models import Protocol
from workup.protocols.cache import clear_cache

from ..conftest import PROTOCOL_FIXTURE
from ..transactional import committed_rows, put_back
from .support import axe_summary

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
# from here are still synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_terminal_summary(terminalreporter):
    """axe-core's result on every page state, in the output of every run (not only with -s)."""
    lines = axe_summary()
    if lines:
        terminalreporter.section("axe-core, WCAG 2.1 A and AA: violations per page state")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def chromium():
    if not CHROMIUM.exists():
        pytest.skip(f"Debian's Chromium is not installed at {CHROMIUM} (CI installs it).")
    from playwright.sync_api import expect, sync_playwright

    # Waits are on conditions; on a busy machine a page may take a few seconds to come.
    expect.set_options(timeout=15_000)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()
        # While Playwright's event loop runs in this thread, Django keeps the ORM's
        # connections apart (per async context). Close those before the loop stops, or
        # PostgreSQL refuses to drop the test database at the end of the run.
        connections.close_all()


@pytest.fixture(scope="module")
def committed_state_restored(django_db_setup, django_db_blocker):
    """Whatever was committed before this module's tests is there again after them, exactly:
    tests.transactional's rows keep their datetimes to the microsecond, so the audit events
    put back still match their hash chain (Django's JSON serialization cut them to
    milliseconds, and any later verify_chain() read the chain as tampered)."""
    with django_db_blocker.unblock():
        rows = committed_rows()
        chain = verify_chain()
    yield
    with django_db_blocker.unblock():
        put_back(rows)
        _reset_sequences()
        restored = verify_chain()
        assert restored == chain, f"the audit chain changed in the round trip: {restored}"
        assert restored.ok, f"the audit chain put back is broken: {restored}"
    clear_cache()


def _reset_sequences() -> None:
    """Move every PostgreSQL id sequence past its table's rows (put_back moves only those of
    the tables it filled), as loaddata does; SQLite needs nothing."""
    models = [
        m for app in apps.get_app_configs() for m in app.get_models(include_auto_created=True)
    ]
    statements = connection.ops.sequence_reset_sql(no_style(), models)
    if statements:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)


@pytest.fixture
def protocol_loaded(committed_state_restored, transactional_db):
    """The shipped protocol, loaded again if an earlier transactional test emptied the tables."""
    if not Protocol.objects.filter(status=Protocol.Status.PUBLISHED).exists():
        call_command("load_protocol", str(PROTOCOL_FIXTURE), verbosity=0)
    clear_cache()


@pytest.fixture
def browser_page(chromium, live_server):
    # No smooth scrolling: a click must not land while the page still glides.
    context = chromium.new_context(base_url=live_server.url, reduced_motion="reduce")
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def log_in(page, user, live_server_url: str) -> None:
    """Give the browser a session of `user` (the login form has its own tests)."""
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cookie.value, "url": live_server_url}]
    )
