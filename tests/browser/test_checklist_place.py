"""The checklist keeps its place across a save, and the focus goes to the saved step's heading,
described by the success message (static/js/checklist.js)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from .conftest import log_in
from .support import sequences_follow_restored_rows  # noqa: F401 - autouse

pytestmark = pytest.mark.browser

# Small enough that the checklist is several screens long.
SMALL_SCREEN = {"width": 900, "height": 500}


@pytest.fixture
def page(chromium, live_server, protocol_loaded, clinician_a):
    context = chromium.new_context(
        base_url=live_server.url, viewport=SMALL_SCREEN, locale="en-GB", reduced_motion="reduce"
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    log_in(page, clinician_a, live_server.url)
    yield page
    context.close()


def checklist_url(workup):
    return reverse("checklist", args=[workup.pk])


def scroll_y(page) -> int:
    return page.evaluate("Math.round(window.scrollY)")


def heading_of(page, code):
    return page.locator(f"[data-step={code}]").get_by_role("heading")


def fully_visible(page, locator) -> bool:
    return locator.evaluate(
        "el => { const b = el.getBoundingClientRect(); "
        "return b.top >= 0 && b.bottom <= window.innerHeight; }"
    )


def test_the_checklist_keeps_its_place_after_a_save_and_focuses_the_saved_step(page, workup_a):
    page.goto(checklist_url(workup_a))
    heading = heading_of(page, "physical_exam")
    # The step a third of the way down the screen, the checklist scrolled well down.
    top = heading.evaluate("el => el.getBoundingClientRect().top + window.scrollY")
    page.evaluate("y => window.scrollTo(0, y)", round(top - SMALL_SCREEN["height"] / 3))
    before = scroll_y(page)
    assert before > SMALL_SCREEN["height"]

    heading.get_by_role("link").click()
    for name in ("hepatomegaly", "splenomegaly", "lymphadenopathy"):
        page.locator(f"input[name={name}][value=no]").check()
    page.get_by_role("button", name="Save", exact=True).click()

    page.wait_for_url(re.compile("#step-physical_exam$"))
    heading = heading_of(page, "physical_exam")
    expect(heading).to_be_focused()
    assert scroll_y(page) == before  # not the browser's jump to #step-physical_exam
    assert fully_visible(page, heading)
    status = page.get_by_role("status")  # what the screen reader reads with the heading
    expect(status).to_contain_text("Physical examination (liver, spleen, lymph nodes): saved.")
    assert heading.get_attribute("aria-describedby") == status.get_attribute("id")

    # Cancel comes back to the same place.
    heading = heading_of(page, "dexa")
    heading.scroll_into_view_if_needed()
    before = scroll_y(page)
    heading.get_by_role("link").click()
    page.get_by_role("link", name="Cancel").click()
    page.wait_for_url(re.compile("#step-dexa$"))
    expect(heading_of(page, "dexa")).to_be_focused()
    assert scroll_y(page) == before

    # A step opened from the suggestions at the top is in view after its save.
    page.evaluate("window.scrollTo(0, 0)")
    suggestions = page.locator("section[aria-labelledby=suggested-heading]")
    suggestions.get_by_role("link", name="Clinical history", exact=True).click()
    page.locator("input[name=mediator_symptoms][value=yes]").check()
    page.locator("input[name=anaphylaxis][value=no]").check()
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url(re.compile("#step-history$"))
    heading = heading_of(page, "history")
    expect(heading).to_be_focused()
    assert fully_visible(page, heading)
