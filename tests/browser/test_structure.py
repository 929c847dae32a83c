"""The checklist as a screen reader's list of headings and landmarks shows it: it can be walked
step by step, each step under its section. (Every page's headings and landmarks in general,
one h1, no level skipped, are checked with axe in test_accessibility.py.)"""

from __future__ import annotations

import pytest
from django.urls import reverse

from .conftest import log_in
from .support import (
    outline,
    outline_problems,
    sequences_follow_restored_rows,  # noqa: F401 - autouse
)

pytestmark = pytest.mark.browser


@pytest.fixture
def page(browser_page, live_server, protocol_loaded, clinician_a, workup_a):
    from tests.conftest import record

    record(workup_a, clinician_a, "history", {"mediator_symptoms": True, "anaphylaxis": False})
    record(workup_a, clinician_a, "serum_tryptase", {"value_ng_ml": 25.0, "is_baseline": True})
    log_in(browser_page, clinician_a, live_server.url)
    return browser_page


def test_the_checklist_can_be_walked_by_its_headings(page, workup_a, spec):
    page.goto(reverse("checklist", args=[workup_a.pk]))
    found = outline(page)
    headings, landmarks = found["headings"], found["landmarks"]

    titles = [h["text"] for h in headings]
    assert titles[0].startswith(workup_a.patient.family_name)  # the patient, h1
    assert {"Suggested next steps", "All steps"} <= set(titles)
    # Every step has a heading of its own, one level below its section's, in checklist order.
    step_headings = [h for h in headings if h["text"] in {s.title for s in spec.steps}]
    assert [h["text"] for h in step_headings] == [
        item.locator("h4").inner_text()
        for item in page.locator("[data-step]").all()  # the order the checklist shows
    ]
    assert len(step_headings) == len(spec.steps)
    assert {h["level"] for h in step_headings} == {4}
    sections = [h for h in headings if h["level"] == 3]
    assert sections, "the steps are grouped under section headings"
    assert ("navigation", "Main") in {(lm["role"], lm["name"]) for lm in landmarks}
    assert ("navigation", "breadcrumb") in {(lm["role"], lm["name"]) for lm in landmarks}
    assert not outline_problems(found)
