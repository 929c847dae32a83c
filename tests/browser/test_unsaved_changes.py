"""The browser asks before a clinician leaves a form with unsaved changes, and only then
(static/js/unsaved.js): not for an untouched form, not when the form is saved."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from .conftest import log_in
from .support import sequences_follow_restored_rows  # noqa: F401 - autouse

pytestmark = pytest.mark.browser


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
