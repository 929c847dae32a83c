"""Suggestions come grouped and by priority, as the protocol orders them (issue 16, item 1).

The checklist lists them under the protocol's step groups, safety first; the print does
the same; the worklist names the first three by priority and keeps the rest behind
"+ N more", while its step filter still finds a patient by any of them. The groups are
protocol data: check_protocol and the admin refuse a step of no group or an unknown one.
"""

from __future__ import annotations

import json
import re
from html import unescape
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from workup import reads
from workup.models import StepDefinition, StepGroup
from workup.protocols import versions
from workup.protocols.cache import get_spec

from .conftest import PROTOCOL_V2_FIXTURE, worked_up
from .test_admin_protocols import form_data

pytestmark = pytest.mark.django_db

SAFETY = "Start now: safety measures"
INVESTIGATIONS = "Next investigations"


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def suggested_section(client, workup) -> str:
    page = client.get(reverse("checklist", args=[workup.pk])).content.decode()
    start = page.index('id="suggested-heading"')
    return page[start : page.index("</section>\n\n", start)]


@pytest.fixture
def suggested_workup(workup_a, clinician_a):
    """Anaphylaxis, typical lesions, a raised tryptase: safety items and investigations."""
    return worked_up(workup_a, clinician_a)


def test_the_checklist_lists_safety_measures_first_under_their_heading(
    client, clinician_a, suggested_workup
):
    client.force_login(clinician_a)
    section = suggested_section(client, suggested_workup)
    spec = get_spec(suggested_workup.protocol)
    headings = re.findall(r'<h3 class="h6 mb-1" id="suggestion-group-([\w-]+)">', section)
    assert headings[:2] == ["safety", "investigations"]
    assert headings == [g.code for g in spec.step_groups if g.code in headings]
    # Each suggested step sits under the heading of its own group.
    parts = re.split(r'<h3 class="h6 mb-1" id="suggestion-group-', section)[1:]
    for part in parts:
        code = part.split('"', 1)[0]
        titles = re.findall(r'<a class="fw-semibold" href="[^"]+">([^<]+)</a>', part)
        assert titles, code
        assert {spec.steps_by_code[s].group for s in _codes(spec, titles)} == {code}
    safety = text_of(parts[0])
    assert SAFETY in safety and "Epinephrine autoinjector" in safety
    assert "whatever the rest of the workup shows" in safety  # the group's description


def _codes(spec, titles):
    by_title = {step.title: step.code for step in spec.steps}
    return [by_title[unescape(title)] for title in titles]


def test_the_print_summary_groups_the_suggestions_in_the_same_order(
    client, clinician_a, suggested_workup
):
    client.force_login(clinician_a)
    page = client.get(reverse("workup_summary", args=[suggested_workup.pk])).content.decode()
    start = page.index('id="suggested-heading"')
    section = page[start : page.index("</section>", start)]
    groups = re.findall(r'<p class="suggestion-group-title">([^<]+)</p>', section)
    assert groups[:2] == [SAFETY, INVESTIGATIONS]
    assert section.index("Epinephrine autoinjector") < section.index(INVESTIGATIONS)


def test_the_worklist_names_the_first_three_by_priority_and_the_rest_behind_more(
    client, clinician_a, suggested_workup
):
    client.force_login(clinician_a)
    suggested_workup.refresh_from_db()
    stored = suggested_workup.suggested_steps
    spec = get_spec(suggested_workup.protocol)
    assert len(stored) > 4
    by_priority = spec.by_priority(stored)
    assert spec.steps_by_code[by_priority[0]].group == "safety"
    page = client.get(reverse("worklist")).content.decode()
    cell = page[page.index('<td class="suggestions">') :]
    cell = cell[: cell.index("</td>")]
    first = re.findall(r'<span class="badge text-bg-primary[^"]*">.*?</span> ([^<]+)</span>', cell)
    titles = [spec.steps_by_code[code].title for code in by_priority]
    assert [unescape(t) for t in first] == titles[:3]
    assert f"+ {len(titles) - 3} more" in cell
    more = re.search(r'<details class="more-suggestions">(.*?)</details>', cell, re.S).group(1)
    assert [unescape(t).strip() for t in re.findall(r"</span> ([^<]+)</li>", more)] == titles[3:]
    # The filter finds the patient by a step that the row keeps behind "+ N more".
    hidden = by_priority[-1]
    filtered = client.get(reverse("worklist"), {"step": hidden})
    assert [p.pk for p, *_ in filtered.context["rows"]] == [suggested_workup.patient_id]


def test_check_protocol_refuses_a_step_of_no_group_or_of_an_unknown_one(tmp_path):
    rows = json.loads(PROTOCOL_V2_FIXTURE.read_text(encoding="utf-8"))
    steps = {
        r["fields"]["code"]: r["fields"] for r in rows if r["model"] == "workup.stepdefinition"
    }
    steps["dexa"]["group"] = ""
    steps["history"]["group"] = "later"
    path = tmp_path / "protocol.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("check_protocol", str(path), stdout=out, stderr=StringIO())
    problems = out.getvalue()
    assert "step dexa: needs a step group (known: extent, investigations, safety" in problems
    assert "step history: unknown step group 'later'" in problems


def test_the_admin_refuses_an_unknown_group_on_the_step_form(client, protocol_admin):
    v2 = reads.current_protocol()
    draft = versions.new_draft(protocol=v2, user=protocol_admin)
    assert set(draft.stepgroup_set.values_list("code", flat=True)) == set(
        v2.stepgroup_set.values_list("code", flat=True)
    )
    step = StepDefinition.objects.get(protocol=draft, code="dexa")
    client.force_login(protocol_admin)
    url = reverse("admin:workup_stepdefinition_change", args=[step.pk])
    response = client.post(url, form_data(client.get(url), group="later"))
    assert response.status_code == 200
    [error] = response.context["adminform"].form.errors["group"]
    assert "unknown step group 'later'" in error
    step.refresh_from_db()
    assert step.group == "extent"


def test_the_priority_is_the_protocol_groups_order_not_code(protocol_admin, suggested_workup):
    """Order is data: a draft that puts the investigations before safety ranks them first."""
    suggested_workup.refresh_from_db()
    draft = versions.new_draft(protocol=suggested_workup.protocol, user=protocol_admin)
    StepGroup.objects.filter(protocol=draft, code="investigations").update(order=0)
    spec = get_spec(draft)
    assert [g.code for g in spec.step_groups][:2] == ["investigations", "safety"]
    ranked = spec.by_priority(suggested_workup.suggested_steps)
    assert spec.steps_by_code[ranked[0]].group == "investigations"
    assert spec.steps_by_code[ranked[-1]].group in {"safety", "extent", "specialist"}
