"""A clinician's whole workup in Chromium: log in, add a patient, open the workup, record the
first steps (one refused value corrected), watch the suggestions change, mark a step not
indicated, open the summary and its print preview, log out. At desktop and tablet size,
and once with the keyboard only. Every HTML page loaded on the way must be well formed."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .support import (
    PASSWORD,
    HtmlWatch,
    Keyboard,
    sequences_follow_restored_rows,  # noqa: F401 - autouse
)

pytestmark = pytest.mark.browser

VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "tablet": {"width": 768, "height": 1024}}
# (step link text, {radio field: value}, {text field: value}) in the order a clinician goes.
STEPS = [
    ("Clinical history", {"mediator_symptoms": "yes", "anaphylaxis": "yes"}, {}),
    ("Skin examination", {"typical_lesions": "yes"}, {}),
    ("Baseline serum tryptase", {"is_baseline": "yes"}, {"Serum tryptase": "25"}),
    ("Skin biopsy (histology ± lesional KIT)", {"mc_infiltrate_increased": "yes"}, {}),
    ("Bone marrow aspirate and biopsy", {"mc_aggregates_ge15": "yes"}, {}),
]


@pytest.fixture
def flow_page(chromium, live_server, protocol_loaded, request):
    viewport = VIEWPORTS[getattr(request, "param", "desktop")]
    context = chromium.new_context(
        base_url=live_server.url, viewport=viewport, locale="en-GB", reduced_motion="reduce"
    )
    page = context.new_page()
    watch = HtmlWatch(page)
    script_problems = []  # the app's scripts: no error, nothing the CSP refused
    page.on("pageerror", lambda error: script_problems.append(str(error)))
    page.on(
        "console",
        lambda message: (
            script_problems.append(message.text)
            if "Content Security Policy" in message.text or "Refused" in message.text
            else None
        ),
    )
    yield page
    context.close()
    assert watch.checked > 0
    assert not watch.problems, f"pages that are not well formed: {watch.problems}"
    assert not script_problems


def suggested(page) -> list[str]:
    section = page.locator("section[aria-labelledby=suggested-heading]")
    return section.locator("li.suggested-item > a").all_inner_texts()


def expect_saved(page, what: str):
    """The success message names what was saved, in the role=status region (announced)."""
    expect(page.get_by_role("status")).to_contain_text(f"{what}: saved.")


def expect_focus_on_saved_step(page, title: str):
    """Back on the checklist, the saved step's heading has the focus (static/js/checklist.js)."""
    expect(page).to_have_url(re.compile(r"/workups/\d+/#step-"))
    expect(page.locator("[data-step] :focus")).to_have_text(title)


def log_in_with_the_form(page, user):
    page.goto("/")
    page.wait_for_url(re.compile(r"/accounts/login/"))
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Worklist", level=1).wait_for()


def add_patient(page):
    page.get_by_role("link", name="Add patient").click()
    page.get_by_label("MRN").fill("E2E-0001")
    page.get_by_label("Family name").fill("Browser")
    page.get_by_label("Given name").fill("Bea")
    page.get_by_label("Birth date").fill("1968-03-14")
    page.get_by_label("Sex").select_option("female")
    page.get_by_role("button", name="Save patient").click()
    # The confirmation names no one (messages travel in a cookie); the heading does.
    expect(page.get_by_role("status")).to_contain_text("Patient added.")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Browser, Bea")
    page.get_by_role("button", name="Open the workup checklist").click()
    page.get_by_role("heading", name="Suggested next steps").wait_for()


def record_step(page, title, radios, texts):
    page.get_by_role("link", name=title, exact=True).first.click()
    page.get_by_role("heading", name=title, level=2).wait_for()
    for name, value in radios.items():
        page.locator(f"input[name={name}][value={value}]").check()
    for label, value in texts.items():
        page.get_by_label(label).fill(value)
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url(re.compile(r"/workups/\d+/#step-"))
    expect_saved(page, title)
    expect_focus_on_saved_step(page, title)


def refuse_then_correct_tryptase(page):
    page.get_by_role("link", name="Baseline serum tryptase", exact=True).first.click()
    value = page.get_by_label("Serum tryptase")
    value.fill("5000")
    page.locator("input[name=is_baseline][value=yes]").check()
    page.get_by_role("button", name="Save", exact=True).click()

    error = page.locator("#id_value_ng_ml_error")
    assert "Enter a plausible value between 0 and 2000 ng/mL" in error.inner_text()
    assert value.get_attribute("aria-invalid") == "true"
    assert "id_value_ng_ml_error" in value.get_attribute("aria-describedby").split()
    assert value.input_value() == "5000"  # what was typed is kept
    assert "Nothing was saved" in page.get_by_role("alert").inner_text()  # announced
    # Leaving the refused value behind asks first: it was not saved.
    dialogs = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.type), dialog.accept()))
    page.get_by_role("link", name="Checklist", exact=True).click()
    page.get_by_role("heading", name="Suggested next steps").wait_for()
    assert dialogs == ["beforeunload"]


def mark_not_indicated(page, title, reason):
    page.get_by_role("link", name=title, exact=True).first.click()
    page.locator("details#mark > summary").click()  # the mark is a closed, separate action
    page.get_by_role("radio", name="Not indicated").check()
    page.get_by_role("textbox", name="Reason").fill(reason)
    page.get_by_role("button", name="Save mark").click()
    expect_saved(page, title)
    expect_focus_on_saved_step(page, title)


def open_summary_and_print_preview(page):
    page.get_by_role("link", name="print preview").click()
    page.get_by_role("button", name="Print").wait_for()
    assert "MRN E2E-0001" in page.locator("h1").inner_text()
    page.emulate_media(media="print")
    # expect() waits for the restyle: a one-shot is_visible() raced it once in CI.
    expect(page.locator(".disclaimer").first).to_be_visible()
    expect(page.locator("nav.print-toolbar")).to_be_hidden()
    page.emulate_media(media="screen")
    page.get_by_role("link", name=re.compile("Back to the checklist")).click()


@pytest.mark.parametrize("flow_page", ["desktop", "tablet"], indirect=True)
def test_a_clinician_works_up_a_new_patient(flow_page, clinician_a):
    page = flow_page
    log_in_with_the_form(page, clinician_a)
    add_patient(page)
    seen = [suggested(page)]
    assert seen[0], "a new workup suggests its first steps"

    for index, (title, radios, texts) in enumerate(STEPS):
        if title == "Baseline serum tryptase":
            refuse_then_correct_tryptase(page)
        record_step(page, title, radios, texts)
        now = suggested(page)
        assert now != seen[-1], f"the suggestions did not change after {title}"
        assert title not in now
        seen.append(now)
        assert f"{index + 1} of" in page.locator("main").inner_text()

    step = seen[-1][0]
    mark_not_indicated(page, step, "Done elsewhere last month; report on file.")
    assert step not in suggested(page)
    item = page.locator("li.step-item", has=page.get_by_role("link", name=step, exact=True))
    assert "Not indicated: Done elsewhere last month; report on file." in item.inner_text()

    open_summary_and_print_preview(page)
    page.get_by_role("button", name="Log out").click()
    page.get_by_role("heading", name="Log in").wait_for()
    page.goto("/")
    page.wait_for_url(re.compile(r"/accounts/login/"))


# Keyboard only: Tab and Shift+Tab to move, Enter to follow a link or press a button, Space to
# choose a radio button (the arrow keys within a radio group), and typing into fields. Every
# wait is on a condition (the focused element, the URL, a heading or a message), never a time,
# so a slow machine only makes it slower.


def test_a_clinician_works_up_a_new_patient_with_the_keyboard_only(flow_page, clinician_a):
    page = flow_page
    keys = Keyboard(page)

    def activate(locator, key="Enter"):
        keys.tab_to(locator)
        page.keyboard.press(key)

    def type_into(locator, text):
        keys.tab_to(locator)
        page.keyboard.type(text)

    def link(name):
        return page.get_by_role("link", name=name, exact=True).first

    def arrived_at(heading_name, level=None):
        """The new page is there and its scripts have run (before any Tab is pressed)."""
        expect(page.get_by_role("heading", name=heading_name, level=level)).to_be_visible()
        page.wait_for_load_state("load")

    page.goto("/accounts/login/")
    expect(page.get_by_label("Username")).to_be_focused()  # autofocus
    page.keyboard.type(clinician_a.username)
    type_into(page.get_by_label("Password"), PASSWORD)
    page.keyboard.press("Enter")
    arrived_at("Worklist", level=1)

    activate(link("Add patient"))
    arrived_at("Add patient", level=1)
    type_into(page.get_by_label("MRN"), "E2E-0002")
    type_into(page.get_by_label("Family name"), "Keys")
    type_into(page.get_by_label("Given name"), "Kim")
    # Chromium lays the date field out in its own locale (dd/mm or mm/dd, whatever the page's):
    # the same day and month read the same either way.
    type_into(page.get_by_label("Birth date"), "03031968")
    expect(page.get_by_label("Birth date")).to_have_value("1968-03-03")
    type_into(page.get_by_label("Sex"), "f")
    expect(page.get_by_label("Sex")).to_have_value("female")
    activate(page.get_by_role("button", name="Save patient"))
    expect(page.get_by_role("status")).to_contain_text("Patient added.")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Kim")
    page.wait_for_load_state("load")
    activate(page.get_by_role("button", name="Open the workup checklist"))
    arrived_at("Suggested next steps")
    before = suggested(page)

    for title, radios, texts in STEPS:
        activate(link(title))
        arrived_at(title, level=2)
        if title == "Baseline serum tryptase":
            value = page.get_by_label("Serum tryptase")
            type_into(value, "5000")
            activate(page.get_by_role("button", name="Save", exact=True))
            expect(value).to_have_attribute("aria-invalid", "true")  # the page sent back
            expect(page.get_by_role("alert")).to_contain_text("Nothing was saved")
            page.wait_for_load_state("load")
            keys.tab_to(value)
            page.keyboard.press("Control+A")
            page.keyboard.type(texts["Serum tryptase"])
            expect(value).to_have_value(texts["Serum tryptase"])
        else:
            for label, text in texts.items():
                type_into(page.get_by_label(label), text)
        for name, value in radios.items():
            assert value == "yes", "Space chooses the first radio button of a group: Yes"
            radio = page.locator(f"input[name={name}][value=yes]")
            activate(radio, key="Space")
            expect(radio).to_be_checked()
        activate(page.get_by_role("button", name="Save", exact=True))
        expect_focus_on_saved_step(page, title)
        expect_saved(page, title)
        page.wait_for_load_state("load")
        now = suggested(page)
        assert now != before and title not in now
        before = now

    step = before[0]
    activate(link(step))
    arrived_at(step, level=2)
    activate(page.locator("details#mark > summary"))  # the mark is a closed, separate action
    # In a radio group Tab stops once; the arrow keys choose within it (the ARIA pattern).
    keys.tab_to(page.locator("input[name=status]").first)
    not_indicated = page.get_by_role("radio", name="Not indicated")
    for _ in range(5):
        if page.evaluate("document.activeElement.value") == "not_indicated":
            break
        page.keyboard.press("ArrowDown")
    expect(not_indicated).to_be_focused()
    expect(not_indicated).to_be_checked()
    type_into(page.get_by_role("textbox", name="Reason"), "Not needed at this stage.")
    activate(page.get_by_role("button", name="Save mark"))
    expect_focus_on_saved_step(page, step)
    expect_saved(page, step)
    page.wait_for_load_state("load")
    assert step not in suggested(page)

    activate(link("print preview"))
    expect(page.get_by_role("button", name="Print")).to_be_visible()
    page.wait_for_load_state("load")
    activate(page.get_by_role("link", name=re.compile("Back to the checklist")))
    arrived_at("Suggested next steps")
    activate(page.get_by_role("button", name="Log out"))
    arrived_at("Log in")
    print(f"\nkeyboard-only workup: {keys.stops} focus stops, each with a visible indicator")
