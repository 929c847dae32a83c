"""Screenshots of the app for the README, made from the demo data in a throwaway database.

    .venv/bin/python docs/screenshots.py        # writes docs/screenshots/*.png

It migrates a temporary SQLite file, loads the protocol, its case library and the demo data
(as `make run` does), serves it with `manage.py runserver`, and drives Debian's Chromium
(/usr/bin/chromium) with Playwright as the demo clinician. Nothing touches db.sqlite3.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
PYTHON = sys.executable
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1366, "height": 900}
TABLET = {"width": 820, "height": 1180}  # a tablet held upright
DEMO_PATIENT = "N-1010"  # vignette E10: suggestions with reasons, and steps that are "not yet"


def manage(env, *args):
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"the server did not answer at {url}")


def take(base: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(base_url=base, viewport=VIEWPORT, locale="en-GB")
        log_in(page)
        page.screenshot(path=OUT / "worklist.png")
        # The worklist filtered on a step that cannot be decided yet for lack of data.
        page.get_by_label("Filter by a step").select_option("not_yet:bone_marrow_biopsy")
        page.get_by_role("button", name="Filter").click()
        page.locator(".not-yet").first.wait_for()
        page.screenshot(path=OUT / "worklist-not-yet.png")
        page.goto("/")

        page.get_by_role("cell", name=DEMO_PATIENT).locator("xpath=..").get_by_role(
            "link"
        ).first.click()
        page.get_by_role("heading", name="Suggested next steps").wait_for()
        page.screenshot(path=OUT / "checklist.png")
        page.locator("#not-yet-heading").scroll_into_view_if_needed()
        page.evaluate("window.scrollBy(0, -20)")
        page.screenshot(path=OUT / "checklist-not-yet.png")
        page.evaluate("window.scrollTo(0, 0)")

        page.get_by_role("link", name="Baseline serum tryptase", exact=True).first.click()
        page.get_by_label("Serum tryptase").fill("5000")
        page.get_by_role("button", name="Save", exact=True).click()
        page.locator("#id_value_ng_ml_error").wait_for()
        page.locator("#form-heading").scroll_into_view_if_needed()
        page.screenshot(path=OUT / "step-form-error.png")

        page.get_by_role("link", name="Checklist", exact=True).click()
        page.get_by_role("link", name="print preview").click()
        page.get_by_role("button", name="Print").wait_for()
        page.emulate_media(media="print")
        page.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi
        page.screenshot(path=OUT / "summary-print.png")
        page.context.close()
        take_tablet(browser, base)
        browser.close()


def take_tablet(browser, base: str) -> None:
    """The worklist and a step form of toggle buttons, as a tablet held upright shows them."""
    page = browser.new_page(base_url=base, viewport=TABLET, locale="en-GB")
    log_in(page)
    page.screenshot(path=OUT / "worklist-tablet.png")
    page.get_by_role("cell", name=DEMO_PATIENT).locator("xpath=..").get_by_role(
        "link"
    ).first.click()
    page.get_by_role("heading", name="Suggested next steps").wait_for()
    page.get_by_role("link", name="Clinical history", exact=True).first.click()
    page.locator("#form-heading").scroll_into_view_if_needed()
    page.screenshot(path=OUT / "step-form-tablet.png")
    page.context.close()


def log_in(page) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("clinician")
    page.get_by_label("Password").fill("demo-password")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Worklist", level=1).wait_for()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DEBUG": "true",
            "DATABASE_URL": f"sqlite:///{tmp}/screenshots.sqlite3",
        }
        manage(env, "migrate", "--noinput", "-v", "0")
        manage(env, "load_protocol", "fixtures/mastocytosis.json")
        manage(
            env,
            "import_protocol_cases",
            "mastocytosis",
            "--version",
            "1",
            "fixtures/cases/mastocytosis-vignettes.json",
        )
        manage(env, "load_protocol", "fixtures/mastocytosis-v2.json")
        manage(
            env,
            "import_protocol_cases",
            "mastocytosis",
            "--version",
            "2",
            "fixtures/cases/mastocytosis-v2-vignettes.json",
        )
        manage(env, "load_demo", "fixtures/demo.json")
        port = free_port()
        server = subprocess.Popen(
            [PYTHON, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_up(f"{base}/healthz")
            take(base)
        finally:
            server.terminate()
            server.wait(timeout=10)
    for path in sorted(OUT.glob("*.png")):
        print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
