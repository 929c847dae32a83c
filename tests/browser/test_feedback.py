"""What keeps a clinician from losing work or their place:

- the browser asks before leaving a form with unsaved changes, and only then: not for an
  untouched form, not when the form is saved (static/js/unsaved.js);
- the checklist keeps its place across a save, and the focus goes to the saved step's
  heading, described by the success message (static/js/checklist.js).

One module, so the committed rows are put back once for both.
"""

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


class Dialogs:
    """Records every dialog; beforeunload ones are dismissed (stay) or accepted (leave)."""

    def __init__(self, page):
        self.seen: list[str] = []
        self.leave = False
        page.on("dialog", self._on_dialog)

    def _on_dialog(self, dialog):
        self.seen.append(dialog.type)
        if self.leave:
            dialog.accept()
        else:
            dialog.dismiss()


@pytest.fixture
def page(browser_page, live_server, protocol_loaded, clinician_a):
    log_in(browser_page, clinician_a, live_server.url)
    return browser_page


@pytest.fixture
def dialogs(page):
    return Dialogs(page)


def step_url(workup, code):
    return reverse("step_form", args=[workup.pk, code])


def checklist_url(workup):
    return reverse("checklist", args=[workup.pk])


def test_leaving_a_form_with_changes_asks_first_and_saving_does_not(page, dialogs, workup_a):
    # An untouched form, or one typed back to what it came with: no question.
    page.goto(reverse("patient_new"))
    page.get_by_role("link", name="Worklist", exact=True).first.click()
    page.get_by_role("heading", name="Worklist", level=1).wait_for()
    page.goto(step_url(workup_a, "history"))
    nicas = page.get_by_label("NICAS score")
    nicas.press_sequentially("3")
    nicas.press("Backspace")
    page.get_by_role("link", name="Checklist", exact=True).click()
    page.wait_for_url(re.compile(re.escape(checklist_url(workup_a)) + "$"))
    assert dialogs.seen == []

    # A change: the browser asks; staying keeps what was typed, leaving leaves.
    page.goto(step_url(workup_a, "history"))
    page.get_by_label("NICAS score").press_sequentially("3")
    with page.expect_event("dialog"):
        page.get_by_role("link", name="Checklist", exact=True).click()
    assert dialogs.seen == ["beforeunload"]
    assert page.url.endswith(step_url(workup_a, "history"))
    assert page.get_by_label("NICAS score").input_value() == "3"
    dialogs.leave = True
    page.get_by_role("link", name="Cancel").click()
    page.wait_for_url(re.compile(re.escape(checklist_url(workup_a)) + "#step-history$"))
    assert dialogs.seen == ["beforeunload"] * 2

    # Saving the changes does not ask.
    page.goto(step_url(workup_a, "physical_exam"))
    for name in ("hepatomegaly", "splenomegaly", "lymphadenopathy"):
        page.locator(f"input[name={name}][value=no]").check()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Physical examination")
    assert dialogs.seen == ["beforeunload"] * 2

    # The mark form and the patient form are watched too.
    dialogs.leave = False
    page.goto(step_url(workup_a, "dexa"))
    page.locator("details#mark > summary").click()
    page.get_by_role("radio", name="Ordered").check()
    with page.expect_event("dialog"):
        page.get_by_role("link", name="Worklist", exact=True).first.click()
    assert page.url.endswith(step_url(workup_a, "dexa"))
    dialogs.leave = True
    page.goto(reverse("patient_new"))  # a navigation of the browser's own asks as well
    page.get_by_label("Family name").press_sequentially("Unsaved")
    page.get_by_role("link", name="Worklist", exact=True).first.click()
    page.get_by_role("heading", name="Worklist", level=1).wait_for()
    assert dialogs.seen == ["beforeunload"] * 5


def test_a_refused_entry_counts_as_unsaved_until_it_is_saved(page, dialogs, workup_a):
    page.goto(step_url(workup_a, "serum_tryptase"))
    page.get_by_label("Serum tryptase").fill("5000")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("Nothing was saved")
    assert dialogs.seen == []  # submitting does not ask

    with page.expect_event("dialog"):  # what was typed is kept: leaving would lose it
        page.get_by_role("link", name="Checklist", exact=True).click()
    assert dialogs.seen == ["beforeunload"]
    expect(page.get_by_role("alert")).to_contain_text("Nothing was saved")

    page.get_by_label("Serum tryptase").fill("25")
    page.locator("input[name=is_baseline][value=yes]").check()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Baseline serum tryptase: saved.")
    assert dialogs.seen == ["beforeunload"]


# The checklist's place after a save.


@pytest.fixture
def small_page(chromium, live_server, protocol_loaded, clinician_a):
    context = chromium.new_context(
        base_url=live_server.url, viewport=SMALL_SCREEN, locale="en-GB", reduced_motion="reduce"
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    log_in(page, clinician_a, live_server.url)
    yield page
    context.close()


def scroll_y(page) -> int:
    return page.evaluate("Math.round(window.scrollY)")


def heading_of(page, code):
    return page.locator(f"[data-step={code}]").get_by_role("heading")


def fully_visible(page, locator) -> bool:
    return locator.evaluate(
        "el => { const b = el.getBoundingClientRect(); "
        "return b.top >= 0 && b.bottom <= window.innerHeight; }"
    )


def test_the_checklist_keeps_its_place_after_a_save_and_the_saved_step_has_the_focus(
    small_page, workup_a
):
    page = small_page
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
