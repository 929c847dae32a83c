"""How a step's form is laid out: yes/no answers as one row of toggle buttons, a number's
unit beside its input, the protocol's field groups as fieldsets, a "Used by" note beside
each field a calculation or a rule reads, and the mark as a separate, closed action.

Through the HTTP client where the shipped protocol shows it; the layout helpers over a
protocol built here where it does not (no shipped field has a group yet).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from crispy_forms.utils import render_crispy_form
from django.urls import reverse

from workup.core.spec import CalculationSpec, FieldSpec, ProtocolSpec, RuleSpec, StepSpec
from workup.models import StepMark, Workup
from workup.web.forms import StepForm, field_runs, used_by_notes

from .conftest import record


def step_url(workup: Workup, step_code: str) -> str:
    return reverse("step_form", args=[workup.pk, step_code])


def field_block(html: str, name: str) -> str:
    """One field's part of the page: from its wrapper to the next field's."""
    start = html.find(f'id="div_id_{name}"')
    assert start != -1, f"no form field {name!r} on the page"
    end = html.find('id="div_id_', start + 1)
    return html[start : end if end != -1 else len(html)]


def mark_details_tag(html: str) -> str:
    tag = re.search(r'<details[^>]*id="mark"[^>]*>', html)
    assert tag, "no mark section on the page"
    return tag.group(0)


@pytest.fixture
def as_clinician(client, clinician_a):
    client.force_login(clinician_a)
    return client


# --- toggles, units, notes, over HTTP ------------------------------------------------------------


def test_a_yes_no_answer_is_one_row_of_radio_buttons_under_its_legend(as_clinician, workup_a):
    html = as_clinician.get(step_url(workup_a, "history")).content.decode()

    block = field_block(html, "episode_flushing")
    assert re.search(r"<fieldset[^>]*>\s*<legend[^>]*>Flushing during episodes</legend>", block)
    row = re.search(r'<div class="toggle-row">(.*?)</div>', block, re.S).group(1)
    radios = re.findall(r'<input type="radio" class="btn-check"[^>]*value="([^"]*)"', row)
    labels = re.findall(r'<label for="[^"]+" class="btn [^"]+">([^<]+)</label>', row)
    assert radios == ["yes", "no", ""]  # the values posted before, in reading order
    assert labels == ["Yes", "No", "Not recorded"]


def test_a_number_shows_its_unit_beside_its_input(as_clinician, workup_a):
    html = as_clinician.get(step_url(workup_a, "serum_tryptase")).content.decode()

    block = field_block(html, "value_ng_ml")
    assert re.search(
        r'<div class="input-group">\s*<input[^>]*name="value_ng_ml"[^>]*>\s*'
        r'<span class="input-group-text"[^>]*>ng/mL</span>',
        block,
    ), block


def test_a_field_a_rule_reads_says_so_beside_it(as_clinician, workup_a):
    html = as_clinician.get(step_url(workup_a, "history")).content.decode()

    assert "Used by: rule R12" in field_block(html, "ckd_or_dialysis")
    assert "Used by" not in field_block(html, "episode_flushing")  # read by nothing


def test_a_refused_answer_keeps_its_message_next_to_the_toggles(as_clinician, workup_a):
    data = {"mediator_symptoms": "yes", "performed_on": "2020-01-01", "workup_version": "1"}

    response = as_clinician.post(step_url(workup_a, "history"), data)

    block = field_block(response.content.decode(), "anaphylaxis")
    assert response.status_code == 400
    described_by = re.search(r'<fieldset aria-describedby="([^"]*)"', block).group(1).split()
    assert "id_anaphylaxis_error" in described_by
    assert 'class="btn-check is-invalid"' in block
    assert "This is required: enter anaphylaxis." in block
    kept = field_block(response.content.decode(), "mediator_symptoms")
    assert re.search(r'value="yes"[^>]*checked', kept), "the answer given was not kept"


# --- the mark section -----------------------------------------------------------------------------


def test_the_mark_section_is_closed_when_the_page_opens(as_clinician, workup_a):
    html = as_clinician.get(step_url(workup_a, "dexa")).content.decode()

    tag = mark_details_tag(html)
    assert " open" not in tag
    assert "<summary>Mark as ordered / not indicated / declined</summary>" in html
    assert html.count("btn-primary") == 1, "the result's Save is the only primary button"


def test_the_mark_section_is_open_after_a_refused_mark(as_clinician, workup_a):
    data = {"status": "not_indicated", "reason": "", "workup_version": workup_a.version}

    response = as_clinician.post(
        reverse("step_mark", args=[workup_a.pk, "dexa"]), data, follow=True
    )

    assert " open" in mark_details_tag(response.content.decode())
    assert StepMark.objects.count() == 0


def test_the_mark_section_is_open_with_what_was_typed_after_a_conflict(
    as_clinician, clinician_a, workup_a
):
    data = {"status": "declined", "reason": "Patient prefers to wait.", "workup_version": 1}
    record(workup_a, clinician_a, "history", {"mediator_symptoms": True, "anaphylaxis": False})

    response = as_clinician.post(reverse("step_mark", args=[workup_a.pk, "dexa"]), data)

    html = response.content.decode()
    assert response.status_code == 409
    assert " open" in mark_details_tag(html)
    assert re.search(r'id="mark-declined"[^>]*checked', html)
    assert "Patient prefers to wait." in html


# --- the layout helpers, over a protocol built here ---------------------------------------------

REMA_STEP = StepSpec(
    code="history",
    title="Clinical history",
    section="History",
    order=1,
    fields=(
        FieldSpec(code="flushing", label="Flushing", kind="boolean", group="REMA items"),
        FieldSpec(code="syncope", label="Syncope", kind="boolean", group="REMA items"),
        FieldSpec(code="nicas", label="NICAS score", kind="integer", unit="points"),
        FieldSpec(code="itching", label="Itching", kind="boolean", group="REMA items"),
        FieldSpec(code="rema", label="REMA", kind="integer", calculation="rema_score"),
    ),
)


def var(name: str) -> dict:
    return {"var": name}


def rule(code: str, condition, *, label=None, enabled: bool = True) -> RuleSpec:
    return RuleSpec(
        code=code,
        title=code,
        action="suggest",
        target_step="history",
        condition=condition,
        rationale="",
        source="",
        label=label,
        enabled=enabled,
    )


REMA_PROTOCOL = ProtocolSpec(
    code="test",
    version=1,
    title="Test",
    steps=(REMA_STEP,),
    calculations=(
        CalculationSpec(
            code="rema_score",
            label="REMA score",
            expression={"+": [var("history.flushing"), var("history.syncope")]},
        ),
        CalculationSpec(
            code="b3", label="B3 (WHO): organomegaly", expression={"!!": var("history.syncope")}
        ),
    ),
    rules=(
        rule("R14", {"==": [var("history.syncope"), True]}),
        rule("R12", {"==": [var("calc.rema_score"), 2]}, label={"if": [var("history.nicas"), 1]}),
        rule("R99", {"==": [var("history.flushing"), True]}, enabled=False),
    ),
)


def test_consecutive_fields_of_one_group_make_one_run():
    runs = field_runs(REMA_STEP.entry_fields)

    assert [(title, [f.code for f in fields]) for title, fields in runs] == [
        ("REMA items", ["flushing", "syncope"]),
        ("", ["nicas"]),
        ("REMA items", ["itching"]),  # apart from the others: the protocol's order is kept
    ]


def test_the_used_by_note_names_calculations_and_enabled_rules():
    notes = used_by_notes(REMA_PROTOCOL, REMA_STEP)

    assert notes == {
        "flushing": "Used by: REMA score",  # R99 is disabled
        "syncope": "Used by: REMA score, B3 (WHO); rule R14",
        "nicas": "Used by: rule R12",  # read by the rule's label expression
    }


class _FieldGroups(HTMLParser):
    """The field-group fieldsets of a page: each one's legend and the inputs inside it."""

    def __init__(self):
        super().__init__()
        self.groups: list[dict] = []
        self._depth = 0  # fieldsets open inside the current group, the group's own included
        self._in_legend = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "fieldset" and self._depth:
            self._depth += 1
        elif tag == "fieldset" and "field-group" in (attrs.get("class") or ""):
            self.groups.append({"legend": "", "names": []})
            self._depth = 1
        elif tag == "legend" and self._depth == 1:
            self._in_legend = True
        elif tag == "input" and self._depth and attrs.get("name") not in self.groups[-1]["names"]:
            self.groups[-1]["names"].append(attrs.get("name"))

    def handle_endtag(self, tag):
        if tag == "fieldset" and self._depth:
            self._depth -= 1
        elif tag == "legend":
            self._in_legend = False

    def handle_data(self, data):
        if self._in_legend:
            self.groups[-1]["legend"] += data.strip()


def field_groups(html: str) -> list[dict]:
    parser = _FieldGroups()
    parser.feed(html)
    return parser.groups


def test_a_group_is_a_fieldset_with_its_title_as_legend():
    html = render_crispy_form(StepForm(step=REMA_STEP))

    assert field_groups(html) == [
        {"legend": "REMA items", "names": ["flushing", "syncope"]},
        {"legend": "REMA items", "names": ["itching"]},
    ]


# --- the step page's references ----------------------------------------------------------------


def test_a_step_page_lists_only_the_references_it_cites_numbered_as_on_the_checklist(
    as_clinician, workup_a
):
    html = as_clinician.get(step_url(workup_a, "history")).content.decode()
    checklist = as_clinician.get(reverse("checklist", args=[workup_a.pk])).content.decode()

    def listed(page):
        block = page[page.find('id="references-heading"') :]
        return dict(re.findall(r'<li id="ref-(\d+)" value="\d+">(.*?)</li>', block, re.S))

    on_step, on_checklist = listed(html), listed(checklist)
    cited = set(re.findall(r'href="#ref-(\d+)"', html))
    assert cited, "the step page cites no source"
    # Every number the page shows leads to an entry on it, and nothing uncited is listed.
    assert set(on_step) == cited
    assert len(on_step) < len(on_checklist)
    # The same number is the same paper on both pages.
    for number, citation in on_step.items():
        assert on_checklist[number] == citation
