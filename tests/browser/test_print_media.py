"""The summary in a real browser's print mode: no navigation, the disclaimer, header and
footer on every page, and the Print buttons call the browser's print."""

from __future__ import annotations

import io
import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect
from pypdf import PdfReader

from .conftest import log_in

pytestmark = pytest.mark.browser

# A4's text width (210 mm less 2 x 15 mm margins) in CSS pixels; Letter's is wider.
A4_TEXT_WIDTH_PX = round(180 * 96 / 25.4)
# Count window.print() calls instead of opening a dialog.
STUB_PRINT = "window.__printed = 0; window.print = () => { window.__printed += 1; };"


@pytest.fixture
def summary_page(protocol_loaded, browser_page, live_server, clinician_a, workup_a):
    from tests.conftest import record

    record(workup_a, clinician_a, "serum_tryptase", {"value_ng_ml": 25.0, "is_baseline": True})
    log_in(browser_page, clinician_a, live_server.url)
    browser_page.goto(reverse("workup_summary", args=[workup_a.pk]))
    return browser_page


def test_print_media_hides_the_navigation_shows_the_disclaimer_and_fits_a4(summary_page):
    page = summary_page
    toolbar = page.locator("nav.print-toolbar")
    disclaimer = page.locator(".disclaimer").first

    # expect() waits for the restyle after each media switch (a one-shot read can race it).
    page.emulate_media(media="screen")
    expect(toolbar).to_be_visible()
    expect(page.locator(".page-header")).to_be_hidden()

    page.emulate_media(media="print")
    expect(toolbar).to_be_hidden()
    assert page.locator("nav").evaluate_all("navs => navs.every(n => !n.checkVisibility())")
    assert disclaimer.is_visible()
    assert "not a diagnosis" in disclaimer.inner_text()
    assert page.locator(".page-header").is_visible()
    assert "Printed by" in page.locator(".page-footer").inner_text()

    # The printed page fits the text width of A4.
    page.set_viewport_size({"width": A4_TEXT_WIDTH_PX, "height": 1000})
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0


def test_the_browser_prints_the_patient_the_footer_and_page_x_of_y_on_every_page(
    summary_page, workup_a
):
    page = summary_page
    page.emulate_media(media="print")

    for paper in ("A4", "Letter"):
        document = PdfReader(io.BytesIO(page.pdf(format=paper)))

        texts = [re.sub(r"\s+", " ", p.extract_text()) for p in document.pages]
        assert len(texts) >= 2, paper
        for number, text in enumerate(texts, start=1):
            assert f"MRN {workup_a.patient.mrn}" in text, paper
            assert "Printed by" in text and "not a diagnosis" in text, paper
            assert f"Page {number} of {len(texts)}" in text, paper
            assert "Back to the checklist" not in text, paper


def test_the_summary_print_button_calls_the_browser_print_within_the_csp(summary_page):
    page = summary_page
    problems = []
    page.on("console", lambda message: problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.add_init_script(STUB_PRINT)
    page.reload()

    page.get_by_role("button", name="Print").click()

    assert page.evaluate("window.__printed") == 1
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p]
    assert not [p for p in problems if "error" in p.lower()]


def test_the_checklist_print_button_opens_the_summary_and_prints_it(
    protocol_loaded, browser_page, live_server, clinician_a, workup_a
):
    page = browser_page
    log_in(page, clinician_a, live_server.url)
    page.add_init_script(STUB_PRINT)
    page.goto(reverse("checklist", args=[workup_a.pk]))

    page.get_by_role("link", name="Print", exact=True).click()
    page.wait_for_url(re.compile(r"/summary/"))
    page.wait_for_function("window.__printed === 1")

    assert page.url.endswith(reverse("workup_summary", args=[workup_a.pk]))  # #print is gone
