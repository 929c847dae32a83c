"""Suggestions grouped safety first, the worklist's "+ N more", and every page on a tablet.

In Chromium at a desktop (1366 x 900) and at a tablet held upright (820 x 1180): the
checklist shows the safety measures first under their heading; a worklist row names
three suggestions and opens the rest in place, by mouse or keyboard; the worklist, the
checklist, a step form and the summary never scroll sideways at 820 px, and their
controls are touch targets of at least 44 px.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from workup.records import writes

from ..conftest import worked_up
from ..factories import PatientFactory
from .conftest import log_in
from .support import sequences_follow_restored_rows  # noqa: F401 - autouse

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1366, "height": 900}
TABLET_UPRIGHT = {"width": 820, "height": 1180}
TOUCH_TARGET_PX = 44
# What a finger presses: buttons, inputs and selects, the pager, the "+ N more" summary.
CONTROLS = "main .btn, main .form-control, main .form-select, main .page-link, main summary.badge"


@pytest.fixture
def workup_with_suggestions(protocol_loaded, site_a, clinician_a):
    """Anaphylaxis, typical lesions, a raised tryptase: safety measures and investigations."""
    patient = PatientFactory(site=site_a, family_name="Tablet", created_by=clinician_a)
    workup = writes.open_workup(patient=patient, user=clinician_a)
    return worked_up(workup, clinician_a)


def open_page(chromium, live_server, user, viewport):
    context = chromium.new_context(
        base_url=live_server.url, viewport=viewport, locale="en-GB", reduced_motion="reduce"
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    log_in(page, user, live_server.url)
    return page


@pytest.fixture
def desktop(chromium, live_server, clinician_a):
    page = open_page(chromium, live_server, clinician_a, DESKTOP)
    yield page
    page.context.close()


@pytest.fixture
def tablet(chromium, live_server, clinician_a):
    page = open_page(chromium, live_server, clinician_a, TABLET_UPRIGHT)
    yield page
    page.context.close()


def test_the_checklist_shows_the_safety_measures_first(desktop, workup_with_suggestions):
    desktop.goto(f"/workups/{workup_with_suggestions.pk}/")
    suggested = desktop.locator("section[aria-labelledby=suggested-heading]")
    headings = suggested.locator("section.suggestion-group > h3").all_inner_texts()
    assert headings[0] == "Start now: safety measures"
    assert "Next investigations" in headings
    first_group = suggested.locator("section.suggestion-group").first
    titles = first_group.locator("li.suggested-item > a").all_inner_texts()
    assert "Epinephrine autoinjector" in titles
    assert "Bone marrow aspirate and biopsy" not in titles
    # Safety comes before any investigation on the page, as a reader scans it.
    everything = suggested.locator("li.suggested-item > a").all_inner_texts()
    assert everything.index("Epinephrine autoinjector") < everything.index(
        "Bone marrow aspirate and biopsy"
    )


def test_a_worklist_row_names_three_and_opens_the_rest_in_place(tablet, workup_with_suggestions):
    tablet.goto("/")
    row = tablet.get_by_role("row").filter(has_text="Tablet")
    badges = row.locator("td.suggestions > span.badge.text-bg-primary")
    expect(badges).to_have_count(3)
    expect(badges.first).to_contain_text("Epinephrine autoinjector")
    more = row.locator("details.more-suggestions")
    hidden = more.locator("li")
    total = len(workup_with_suggestions.suggested_steps)
    expect(more.locator("summary")).to_contain_text(f"+ {total - 3} more")
    expect(hidden.first).to_be_hidden()
    # By keyboard: the summary takes the focus and Enter opens it.
    more.locator("summary").focus()
    tablet.keyboard.press("Enter")
    expect(hidden).to_have_count(total - 3)
    expect(hidden.first).to_be_visible()
    tablet.keyboard.press("Enter")
    expect(hidden.first).to_be_hidden()


@pytest.mark.parametrize("where", ["worklist", "checklist", "step form", "summary"])
def test_no_page_scrolls_sideways_on_a_tablet_and_its_controls_fit_a_finger(
    tablet, workup_with_suggestions, where
):
    pk = workup_with_suggestions.pk
    path = {
        "worklist": "/",
        "checklist": f"/workups/{pk}/",
        "step form": f"/workups/{pk}/steps/serum_tryptase/",
        "summary": f"/workups/{pk}/summary/",
    }[where]
    tablet.goto(path)
    expect(tablet.locator("main")).to_be_visible()
    width, client_width = tablet.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert width <= client_width, f"{where}: {width} px of content in {client_width} px"
    # Nothing inside scrolls sideways either (a table in a .table-responsive box).
    wide = tablet.evaluate(
        """() => [...document.querySelectorAll('main *')]
            .filter(el => el.scrollWidth > el.clientWidth + 1
                    && getComputedStyle(el).overflowX !== 'visible'
                    && getComputedStyle(el).overflowX !== 'hidden')
            .map(el => el.className || el.tagName)"""
    )
    assert wide == [], f"{where}: boxes that scroll sideways: {wide}"
    small = tablet.evaluate(
        """([selector, least]) => [...document.querySelectorAll(selector)]
            .filter(el => el.offsetParent !== null)
            .map(el => [el.innerText.trim() || el.name || el.className,
                        Math.round(el.getBoundingClientRect().height)])
            .filter(([, height]) => height < least)""",
        [CONTROLS, TOUCH_TARGET_PX],
    )
    assert small == [], f"{where}: controls under {TOUCH_TARGET_PX} px: {small}"


def test_a_reason_reads_plainly_with_numbered_references_and_its_rule_behind_details(
    desktop, workup_with_suggestions
):
    desktop.goto(f"/workups/{workup_with_suggestions.pk}/")
    item = desktop.locator("li.suggested-item").filter(has_text="Epinephrine autoinjector")
    reason = item.locator(".reason").first
    expect(reason.locator(".rationale")).to_be_visible()
    # The rule's logic is there, but only behind "Rule details", opened by keyboard.
    logic = reason.locator("details.rule-details code")
    expect(logic).to_be_hidden()
    reason.locator("details.rule-details > summary").focus()
    desktop.keyboard.press("Enter")
    expect(logic).to_be_visible()
    # A source is a number that leads to the full reference at the foot of the page.
    number = reason.locator(".source a").first
    target = number.get_attribute("href")
    assert target.startswith("#ref-")
    number.click()
    reference = desktop.locator(f"ol.references-list > li{target}")
    expect(reference).to_be_in_viewport()
    assert len(reference.inner_text()) > 40  # authors, title, journal, year
    expect(desktop.get_by_role("heading", name="References")).to_be_visible()
