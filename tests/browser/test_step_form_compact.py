"""The compact step form in Chromium, at the size of a tablet held upright (820 x 1180):
a yes/no answer is one row of toggle buttons worked with the keyboard alone (Tab to the
group, the arrow keys within it, Space to choose), the form fits the screen's width with
touch-sized buttons, and the mark is a separate action, closed until opened."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from workup.models import StepDefinition

from .conftest import log_in
from .support import Keyboard, sequences_follow_restored_rows  # noqa: F401 - autouse

pytestmark = pytest.mark.browser

TABLET_UPRIGHT = {"width": 820, "height": 1180}
TOUCH_TARGET_PX = 44


@pytest.fixture
def page(chromium, live_server, protocol_loaded, clinician_a):
    context = chromium.new_context(
        base_url=live_server.url, viewport=TABLET_UPRIGHT, locale="en-GB", reduced_motion="reduce"
    )
    page = context.new_page()
    script_errors = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    log_in(page, clinician_a, live_server.url)
    yield page
    context.close()
    assert not script_errors


def step_url(workup, code):
    return reverse("step_form", args=[workup.pk, code])


def open_step(page, workup, code):
    page.goto(step_url(workup, code))
    page.wait_for_load_state("load")  # the page's scripts have run before any key is pressed


def test_a_yes_no_answer_is_chosen_with_the_keyboard_only_and_saved(page, workup_a):
    open_step(page, workup_a, "history")
    keys = Keyboard(page)
    symptoms_yes = page.locator("input[name=mediator_symptoms][value=yes]")
    symptoms_no = page.locator("input[name=mediator_symptoms][value=no]")
    anaphylaxis_yes = page.locator("input[name=anaphylaxis][value=yes]")
    anaphylaxis_no = page.locator("input[name=anaphylaxis][value=no]")

    # Tab stops once at a group with nothing chosen: on its first button, Yes.
    keys.tab_to(symptoms_yes)
    page.keyboard.press("Space")
    expect(symptoms_yes).to_be_checked()
    # The arrow keys move within the group and choose as they go.
    page.keyboard.press("ArrowRight")
    expect(symptoms_no).to_be_focused()
    expect(symptoms_no).to_be_checked()
    page.keyboard.press("ArrowLeft")
    expect(symptoms_yes).to_be_checked()
    # The next Tab leaves the group for the next one.
    page.keyboard.press("Tab")
    expect(anaphylaxis_yes).to_be_focused()
    page.keyboard.press("ArrowRight")
    expect(anaphylaxis_no).to_be_checked()

    keys.tab_to(page.get_by_role("button", name="Save", exact=True))
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/workups/\d+/#step-history"))
    expect(page.get_by_role("status")).to_contain_text("Clinical history: saved.")

    open_step(page, workup_a, "history")
    recorded = page.get_by_role("region", name="Recorded result")
    expect(recorded).to_contain_text("Mast cell mediator symptoms: yes")
    expect(recorded).to_contain_text("Anaphylaxis: no")
    expect(symptoms_yes).to_be_checked()  # the form to edit comes filled in
    expect(anaphylaxis_no).to_be_checked()


def test_the_history_form_fits_a_tablets_width_with_touch_sized_buttons(page, workup_a):
    open_step(page, workup_a, "history")

    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"the page scrolls sideways: {widths}"
    buttons = page.locator("form .toggle-row label.btn")
    assert buttons.count() >= 9 * 2, "the yes/no answers are not toggle buttons"
    heights = buttons.evaluate_all("labels => labels.map(l => l.getBoundingClientRect().height)")
    assert min(heights) >= TOUCH_TARGET_PX, f"buttons under {TOUCH_TARGET_PX} px: {heights}"
    # Two answers side by side: the form is half as long as a column of them.
    first, second = (
        page.locator(f"#div_id_{name}").bounding_box()
        for name in ("mediator_symptoms", "anaphylaxis")
    )
    assert first["y"] == second["y"] and first["x"] < second["x"]


def test_the_mark_section_is_closed_until_opened_with_the_keyboard(page, workup_a):
    open_step(page, workup_a, "dexa")
    mark = page.locator("details#mark")
    ordered = page.get_by_role("radio", name="Ordered")

    assert mark.get_attribute("open") is None
    expect(ordered).to_be_hidden()

    keys = Keyboard(page)
    keys.tab_to(page.locator("details#mark > summary"))
    page.keyboard.press("Enter")
    expect(ordered).to_be_visible()
    keys.tab_to(ordered)
    page.keyboard.press("Space")
    expect(ordered).to_be_checked()
    expect(page.get_by_role("button", name="Save mark")).to_be_visible()


FITS_ONE_SCREEN_UP_TO = 7  # entry fields (date and note included) a step may have and still fit


def test_every_step_keeps_save_on_screen_and_a_short_step_fits_it_whole(
    chromium, live_server, protocol_loaded, protocol_v2, clinician_a, workup_a
):
    context = chromium.new_context(
        base_url=live_server.url, viewport=TABLET_UPRIGHT, reduced_motion="reduce"
    )
    page = context.new_page()
    log_in(page, clinician_a, live_server.url)
    height = TABLET_UPRIGHT["height"]
    too_long = []
    for step in StepDefinition.objects.filter(protocol=protocol_v2).order_by("order"):
        open_step(page, workup_a, step.code)
        save = page.get_by_role("button", name="Save", exact=True).bounding_box()
        assert save["y"] + save["height"] <= height, f"{step.code}: Save is below the screen"
        fields = page.locator("section.step-form form [id^=div_id_]")
        last = fields.nth(fields.count() - 1).bounding_box()
        if fields.count() <= FITS_ONE_SCREEN_UP_TO and last["y"] + last["height"] > height:
            too_long.append((step.code, fields.count(), round(last["y"] + last["height"])))
    assert not too_long, f"short steps that do not fit one screen: {too_long}"

    # On a long step, a field reached with Tab is scrolled clear of the Save bar, not under it.
    open_step(page, workup_a, "history")
    keys = Keyboard(page)
    # Below the fold at first; Tab stops on the group's chosen answer, "Not recorded".
    target = page.locator("input[name=unexplained_osteoporosis]:checked")
    keys.tab_to(target)
    bar = page.locator(".step-form-actions").bounding_box()
    box = target.bounding_box()
    assert box["y"] + box["height"] <= bar["y"], "the focused answer is hidden under the Save bar"
    context.close()
