"""axe-core (WCAG 2.1 A and AA) on every page a clinician or a protocol admin uses, in Chromium
with the app's own CSP: no serious or critical violation. Each page's result is listed at the
end of the run (conftest.py). The same visits check the headings and landmarks (one h1, no
level skipped, a banner, named navigation, one main; the checklist can be walked step by step
by its headings) and the HTML the server sent: no duplicate id, no form inside a form."""

from __future__ import annotations

import pytest
from django.urls import reverse

from workup.models import Protocol

from .conftest import log_in
from .support import (
    PAGE_LANDMARKS,
    HtmlWatch,
    axe_source,
    blocking,
    outline,
    outline_problems,
    run_axe,
    sequences_follow_restored_rows,  # noqa: F401 - autouse
)

pytestmark = pytest.mark.browser
PRINT_LANDMARKS = ("navigation", "main")  # the print summary: its toolbar, no site header
PROTOCOL_MODELS = (  # as granted by migrations 0002_roles, 0011 and 0013
    "protocol",
    "protocolsource",
    "stepdefinition",
    "fielddefinition",
    "calculation",
    "rule",
    "criterionitem",
    "disagreement",
    "criteriongroup",
    "trendseries",
    "stepgroup",
)


@pytest.fixture
def axe_page(chromium, live_server, protocol_loaded):
    # No smooth scrolling (Bootstrap's default): a click on the sticky Save bar while the
    # page still glides missed it once under load and landed beside it.
    context = chromium.new_context(
        base_url=live_server.url, locale="en-GB", reduced_motion="reduce"
    )
    context.add_init_script(axe_source())
    page = context.new_page()
    page.set_default_timeout(10_000)
    watch = HtmlWatch(page)
    yield page
    context.close()
    assert not watch.problems, f"pages that are not well formed: {watch.problems}"


class Audit:
    """Runs axe on each page visited, and checks its headings and landmarks; fails at the end,
    listing every page with a problem."""

    def __init__(self, page):
        self.page = page
        self.failures: dict[str, list[dict]] = {}
        self.outline_failures: dict[str, list[str]] = {}

    def check(self, name: str, url: str | None = None, *, landmarks=PAGE_LANDMARKS):
        if url is not None:
            self.page.goto(url)
        found = blocking(run_axe(self.page, name))
        if found:
            self.failures[name] = found
        problems = outline_problems(outline(self.page), landmarks=landmarks)
        if problems:
            self.outline_failures[name] = problems

    def assert_clean(self):
        assert not self.failures, f"serious or critical axe violations: {self.failures}"
        assert not self.outline_failures, f"headings or landmarks: {self.outline_failures}"


@pytest.fixture
def audit(axe_page):
    return Audit(axe_page)


def test_the_login_page(audit):
    audit.check("login", reverse("login"))
    audit.page.get_by_label("Username").fill("nobody")
    audit.page.get_by_label("Password").fill("wrong-password")
    audit.page.get_by_role("button", name="Log in").click()
    audit.page.get_by_role("alert").wait_for()
    audit.check("login, refused")
    audit.assert_clean()


def test_the_clinician_pages(audit, live_server, clinician_a, workup_a, spec):
    from tests.conftest import record

    record(workup_a, clinician_a, "history", {"mediator_symptoms": True, "anaphylaxis": False})
    record(workup_a, clinician_a, "serum_tryptase", {"value_ng_ml": 25.0, "is_baseline": True})
    page = audit.page
    log_in(page, clinician_a, live_server.url)

    audit.check("worklist", reverse("worklist"))
    audit.check("add patient", reverse("patient_new"))
    page.get_by_role("button", name="Save patient").click()
    audit.check("add patient, with errors")
    audit.check("patient", reverse("patient_detail", args=[workup_a.patient.pk]))
    audit.check("checklist", reverse("checklist", args=[workup_a.pk]))
    assert_the_checklist_can_be_walked_by_its_headings(page, workup_a, spec)
    for step in spec.steps:
        audit.check(f"step {step.code}", reverse("step_form", args=[workup_a.pk, step.code]))
        page.get_by_label("Date done").fill("")  # a recorded step's form comes filled in
        page.get_by_role("button", name="Save", exact=True).click()
        page.locator("[aria-invalid=true]").first.wait_for(state="attached")
        audit.check(f"step {step.code}, with errors")
    page.goto(reverse("step_form", args=[workup_a.pk, "dexa"]))
    page.locator("details#mark > summary").click()
    page.get_by_role("radio", name="Not indicated").check()
    page.get_by_role("button", name="Save mark").click()
    audit.check("step dexa, mark refused (no reason)")
    audit.check("summary", reverse("workup_summary", args=[workup_a.pk]), landmarks=PRINT_LANDMARKS)
    audit.check("history", reverse("workup_history", args=[workup_a.pk]))
    audit.check("about", reverse("about"))
    audit.assert_clean()


def assert_the_checklist_can_be_walked_by_its_headings(page, workup, spec):
    """As a screen reader's list of headings shows it: the patient (h1), the suggestions and
    all steps (h2), each section (h3) and under it each step (h4), in the checklist's order."""
    found = outline(page)
    headings = found["headings"]
    titles = [h["text"] for h in headings]
    assert titles[0].startswith(workup.patient.family_name)
    assert {"Suggested next steps", "All steps"} <= set(titles)
    step_titles = {s.title for s in spec.steps}
    step_headings = [h for h in headings if h["text"] in step_titles]
    shown_order = [item.locator("h4").inner_text() for item in page.locator("[data-step]").all()]
    assert [h["text"] for h in step_headings] == shown_order
    assert len(step_headings) == len(spec.steps)
    assert {h["level"] for h in step_headings} == {4}
    assert [h for h in headings if h["level"] == 3], "the steps are grouped under sections"
    named = {(landmark["role"], landmark["name"]) for landmark in found["landmarks"]}
    assert {("navigation", "Main"), ("navigation", "breadcrumb")} <= named


@pytest.fixture
def protocol_admins_group(protocol_loaded):
    """The group the migrations made, made again if an earlier test's flush removed it."""
    from django.contrib.auth.models import Group, Permission

    group, _ = Group.objects.get_or_create(name="Protocol admins")
    models = [*PROTOCOL_MODELS, "protocolcase"]
    group.permissions.set(
        Permission.objects.filter(content_type__app_label="workup", content_type__model__in=models)
    )
    return group


def test_the_protocol_admin_pages(audit, live_server, protocol_admins_group, protocol_admin):
    protocol = Protocol.objects.get(status=Protocol.Status.PUBLISHED)
    page = audit.page
    log_in(page, protocol_admin, live_server.url)

    # Django's admin index has no breadcrumbs, so no navigation landmark.
    audit.check("admin index", reverse("admin:index"), landmarks=("banner", "main"))
    audit.check("admin protocols", reverse("admin:workup_protocol_changelist"))
    audit.check("admin protocol", reverse("admin:workup_protocol_change", args=[protocol.pk]))
    audit.check("admin protocol diff", reverse("admin:workup_protocol_diff", args=[protocol.pk]))
    cases = reverse("admin:workup_protocol_run_cases", args=[protocol.pk])
    audit.check("admin protocol cases", cases)
    audit.check("admin steps", reverse("admin:workup_stepdefinition_changelist"))
    audit.check("admin rules", reverse("admin:workup_rule_changelist"))
    audit.assert_clean()


def test_the_v2_pages_not_yet_references_and_a_field_asked_only_sometimes(
    audit, live_server, clinician_a, site_a
):
    """Version 2 (reference v0.3): the "not yet" state, the reference list, rule details,
    and the KIT form, whose sensitivity question appears only for another method."""
    from django.core.management import call_command

    from tests.conftest import PROTOCOL_V2_FIXTURE, record
    from tests.factories import PatientFactory
    from workup.protocols.cache import clear_cache
    from workup.records import writes

    call_command("load_protocol", str(PROTOCOL_V2_FIXTURE), verbosity=0)
    clear_cache()
    patient = PatientFactory(site=site_a, created_by=clinician_a)
    workup = writes.open_workup(patient=patient, user=clinician_a)
    assert workup.protocol.version == 2
    record(workup, clinician_a, "history", {"mediator_symptoms": True, "anaphylaxis": False})
    page = audit.page
    log_in(page, clinician_a, live_server.url)

    audit.check("checklist v2, not yet", reverse("checklist", args=[workup.pk]))
    assert page.get_by_role("heading", name="Not yet decidable: record first").is_visible()
    assert page.get_by_role("heading", name="References").is_visible()
    page.locator("summary", has_text="Rule details").first.click()
    audit.check("checklist v2, rule details open")

    audit.check(
        "step kit, v2", reverse("step_form", args=[workup.pk, "kit_d816v_peripheral_blood"])
    )
    question = page.locator("#div_id_high_sensitivity")
    assert question.is_hidden()
    page.get_by_role("radio", name="Other", exact=True).check()
    question.wait_for(state="visible")
    page.get_by_role("radio", name="Negative").check()
    page.get_by_role("button", name="Save", exact=True).click()
    page.locator("[aria-invalid=true]").first.wait_for(state="attached")
    assert question.is_visible()  # the refused answer is asked for next to its field
    audit.check("step kit, v2, answer missing")
    page.get_by_role("radio", name="Digital droplet PCR (ddPCR)").check()
    question.wait_for(state="hidden")
    audit.assert_clean()
