"""Recording a step through the step form, and marking a step, over HTTP.

POST /workups/<id>/steps/<step_code>/ takes the protocol's field codes plus
performed_on, note and workup_version; booleans are "yes" / "no". Bad input is
refused field by field (status 400, the message next to the field, what was typed
kept) and nothing is saved.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from html import unescape

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from workup import reads
from workup.models import AuditEvent, StepMark, StepRecord, Workup
from workup.protocols.file import read_protocol_file
from workup.records import writes

from .conftest import PROTOCOL_FIXTURE, record
from .factories import PatientFactory

SHIPPED_STEPS = [step.code for step in read_protocol_file(PROTOCOL_FIXTURE).steps]
CONFLICT = "Someone else changed this workup"


def days_ago(days: int) -> str:
    return (timezone.localdate() - timedelta(days=days)).isoformat()


def step_url(workup: Workup, step_code: str, action: str = "") -> str:
    name = {"": "step_form", "mark": "step_mark", "unmark": "step_unmark"}[action]
    return reverse(name, args=[workup.pk, step_code])


def checklist_url(workup: Workup) -> str:
    return reverse("checklist", args=[workup.pk])


def version_of(workup: Workup) -> int:
    return Workup.objects.get(pk=workup.pk).version


def form_value(field, index: int):
    """A plausible value as the browser sends it, and the value it must be stored as."""
    if field.kind in ("decimal", "integer"):
        low = field.min_value if field.min_value is not None else 0
        high = field.max_value if field.max_value is not None else low + 10
        middle = low + (high - low) / 4
        if field.kind == "integer":
            return str(int(middle)), int(middle)
        return f"{middle:.1f}", float(f"{middle:.1f}")
    if field.kind == "boolean":
        return ("yes", True) if index % 2 == 0 else ("no", False)
    if field.kind == "choice":
        value = field.choices[-1][0]
        return value, value
    if field.kind == "multi_choice":
        values = [c[0] for c in field.choices[:2]]
        return values, values
    if field.kind == "date":
        return days_ago(40), days_ago(40)
    return "Typed in the form.", "Typed in the form."


def filled_form(spec, step_code: str, workup: Workup, **overrides) -> tuple[dict, dict]:
    """A complete, valid POST for a step and the values it must be stored as."""
    data = {"performed_on": days_ago(7), "note": "", "workup_version": version_of(workup)}
    stored = {}
    for index, field in enumerate(spec.step(step_code).entry_fields):
        data[field.code], stored[field.code] = form_value(field, index)
    data.update(overrides)
    return data, stored


def field_block(html: str, name: str) -> str:
    """The part of the page that crispy-forms renders for one field: label, input, errors."""
    start = html.find(f'id="div_id_{name}"')
    assert start != -1, f"no form field {name!r} on the page"
    end = html.find('id="div_id_', start + 1)
    return html[start : end if end != -1 else len(html)]


def field_errors(html: str, name: str) -> list[str]:
    block = field_block(html, name)
    return [
        unescape(re.sub(r"<[^>]+>", "", text)).strip()
        for text in re.findall(rf'id="error_\d+_id_{name}"[^>]*>(.*?)</(?:p|span)>', block, re.S)
    ]


def input_tag(html: str, name: str, value: str | None = None) -> str:
    """The <input> of a field (for a radio, the one with that value)."""
    for tag in re.findall(r"<input[^>]*>", field_block(html, name)):
        if f'name="{name}"' in tag and (value is None or f'value="{value}"' in tag):
            return tag
    raise AssertionError(f"no input {name}={value!r} on the page")


@pytest.fixture
def adult_54(site_a, clinician_a):
    """A 54-year-old man with an open workup and nothing recorded."""
    patient = PatientFactory(
        site=site_a, birth_date=date(timezone.localdate().year - 54, 1, 1), sex="male"
    )
    return writes.open_workup(patient=patient, user=clinician_a)


@pytest.fixture
def as_clinician(client, clinician_a):
    client.force_login(clinician_a)
    return client


# --- recording every kind of field ----------------------------------------------------------


@pytest.mark.parametrize("step_code", SHIPPED_STEPS)
def test_a_clinician_records_every_field_of_a_step(as_clinician, workup_a, spec, step_code):
    data, stored = filled_form(spec, step_code, workup_a, note="Seen in clinic.")

    response = as_clinician.post(step_url(workup_a, step_code), data)

    assert response.status_code == 302
    assert response.headers["Location"] == f"{checklist_url(workup_a)}#step-{step_code}"
    saved = StepRecord.objects.get(workup=workup_a, step__code=step_code)
    assert saved.values == stored
    assert saved.performed_on.isoformat() == data["performed_on"]
    assert saved.note == "Seen in clinic."


def test_the_shipped_steps_cover_the_field_kinds_the_form_builds(spec):
    kinds = {f.kind for step in spec.steps for f in step.entry_fields}
    assert {"decimal", "integer", "boolean", "choice", "text"} <= kinds


def test_a_boolean_answered_no_is_stored_as_false_not_as_missing(as_clinician, workup_a, spec):
    data, _ = filled_form(spec, "serum_tryptase", workup_a, value_ng_ml="9", is_baseline="no")

    as_clinician.post(step_url(workup_a, "serum_tryptase"), data)

    assert StepRecord.objects.get(workup=workup_a).values == {
        "value_ng_ml": 9.0,
        "is_baseline": False,
    }


def test_an_optional_field_left_empty_is_not_stored(as_clinician, workup_a, spec):
    data, _ = filled_form(spec, "urine_mediators", workup_a)
    data["lte4_pg_mg_creat"] = ""

    as_clinician.post(step_url(workup_a, "urine_mediators"), data)

    assert "lte4_pg_mg_creat" not in StepRecord.objects.get(workup=workup_a).values


def test_a_calculated_field_cannot_be_typed_in(as_clinician, workup_a, spec):
    data, _ = filled_form(spec, "history", workup_a, rema_score="7")

    html = as_clinician.get(step_url(workup_a, "history")).content.decode()
    as_clinician.post(step_url(workup_a, "history"), data)

    assert 'name="rema_score"' not in html
    assert "rema_score" not in StepRecord.objects.get(workup=workup_a).values


def test_a_recorded_value_shows_on_the_checklist(as_clinician, workup_a, spec):
    data, _ = filled_form(spec, "serum_tryptase", workup_a, value_ng_ml="12.5", is_baseline="yes")

    response = as_clinician.post(step_url(workup_a, "serum_tryptase"), data, follow=True)

    assert "12.5 ng/mL" in response.content.decode()


# --- bad input --------------------------------------------------------------------------------


def assert_refused(response, field: str, message: str, typed: str, radio: bool = False):
    html = response.content.decode()
    assert response.status_code == 400
    assert any(message in error for error in field_errors(html, field)), field_errors(html, field)
    tag = input_tag(html, field, typed if radio else None)
    assert f'value="{typed}"' in tag, f"the typed value {typed!r} was not kept: {tag}"
    if radio:
        assert "checked" in tag
    assert StepRecord.objects.count() == 0, "bad input was saved"


def test_an_implausible_tryptase_is_refused_next_to_its_field(as_clinician, workup_a, spec):
    data, _ = filled_form(spec, "serum_tryptase", workup_a, value_ng_ml="2500")

    response = as_clinician.post(step_url(workup_a, "serum_tryptase"), data)

    assert_refused(
        response, "value_ng_ml", "Enter a plausible value between 0 and 2000 ng/mL.", "2500"
    )


def test_a_value_that_is_not_a_number_is_refused_next_to_its_field(as_clinician, workup_a, spec):
    data, _ = filled_form(spec, "serum_tryptase", workup_a, value_ng_ml="abc")

    response = as_clinician.post(step_url(workup_a, "serum_tryptase"), data)

    assert_refused(response, "value_ng_ml", "Enter a number", "abc")


def test_a_whole_number_field_refuses_a_fraction(as_clinician, workup_a, spec):
    data, _ = filled_form(spec, "hat_genotyping", workup_a, extra_alpha_copies="1.5")

    response = as_clinician.post(step_url(workup_a, "hat_genotyping"), data)

    assert_refused(response, "extra_alpha_copies", "Enter a whole number.", "1.5")


def test_a_date_in_the_future_is_refused_next_to_its_field(as_clinician, workup_a, spec):
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    data, _ = filled_form(spec, "serum_tryptase", workup_a, performed_on=tomorrow)

    response = as_clinician.post(step_url(workup_a, "serum_tryptase"), data)

    assert_refused(response, "performed_on", "This date is in the future.", tomorrow)


def test_a_date_before_the_patients_birth_is_refused(as_clinician, workup_a, spec):
    before_birth = (workup_a.patient.birth_date - timedelta(days=365)).isoformat()
    data, _ = filled_form(spec, "serum_tryptase", workup_a, performed_on=before_birth)

    response = as_clinician.post(step_url(workup_a, "serum_tryptase"), data)

    assert response.status_code == 400
    assert field_errors(response.content.decode(), "performed_on")
    assert StepRecord.objects.count() == 0


def test_a_missing_required_value_is_refused_and_the_rest_is_kept(as_clinician, workup_a, spec):
    data, _ = filled_form(spec, "serum_tryptase", workup_a, is_baseline="yes")
    del data["value_ng_ml"]

    response = as_clinician.post(step_url(workup_a, "serum_tryptase"), data)

    html = response.content.decode()
    assert response.status_code == 400
    assert field_errors(html, "value_ng_ml") == ["This is required: enter serum tryptase."]
    assert "checked" in input_tag(html, "is_baseline", "yes")
    assert f'value="{data["performed_on"]}"' in input_tag(html, "performed_on")
    assert StepRecord.objects.count() == 0


def test_a_missing_required_yes_no_answer_is_refused_next_to_its_field(
    as_clinician, workup_a, spec
):
    data, _ = filled_form(spec, "serum_tryptase", workup_a, value_ng_ml="14")
    del data["is_baseline"]

    response = as_clinician.post(step_url(workup_a, "serum_tryptase"), data)

    html = response.content.decode()
    assert response.status_code == 400
    assert field_errors(html, "is_baseline") == ["This is required: enter baseline sample."]
    assert 'value="14"' in input_tag(html, "value_ng_ml")
    assert StepRecord.objects.count() == 0


def test_a_missing_date_is_refused_next_to_its_field(as_clinician, workup_a, spec):
    data, _ = filled_form(spec, "serum_tryptase", workup_a)
    del data["performed_on"]

    response = as_clinician.post(step_url(workup_a, "serum_tryptase"), data)

    assert response.status_code == 400
    assert field_errors(response.content.decode(), "performed_on") == [
        "Enter the date the step was done."
    ]
    assert StepRecord.objects.count() == 0


def test_an_answer_outside_the_choices_is_refused(as_clinician, workup_a, spec):
    data, _ = filled_form(spec, "serum_tryptase", workup_a, is_baseline="maybe")

    response = as_clinician.post(step_url(workup_a, "serum_tryptase"), data)

    assert response.status_code == 400
    assert field_errors(response.content.decode(), "is_baseline")
    assert StepRecord.objects.count() == 0


# --- after a good save ------------------------------------------------------------------------


def test_saving_a_result_redirects_to_the_checklist_and_names_what_changed(
    as_clinician, adult_54, spec
):
    data, _ = filled_form(spec, "serum_tryptase", adult_54, value_ng_ml="25", is_baseline="yes")

    response = as_clinician.post(step_url(adult_54, "serum_tryptase"), data, follow=True)

    assert response.redirect_chain == [(f"{checklist_url(adult_54)}#step-serum_tryptase", 302)]
    html = response.content.decode()
    assert f"{escape(spec.step('serum_tryptase').title)}: saved." in html
    marrow = escape(spec.step("bone_marrow_biopsy").title)
    assert f"{marrow} is now suggested: R12." in html


def test_the_change_message_is_shown_once(as_clinician, adult_54, spec):
    data, _ = filled_form(spec, "serum_tryptase", adult_54, value_ng_ml="25", is_baseline="yes")
    first = as_clinician.post(step_url(adult_54, "serum_tryptase"), data, follow=True)

    again = as_clinician.get(checklist_url(adult_54)).content.decode()

    # Shown after the save (so the message exists), then not again on the next page.
    assert unescape(first.content.decode()).count("is now suggested: R12") == 1
    assert "is now suggested: R12" not in again


def test_a_repeatable_step_keeps_every_value(as_clinician, workup_a, spec):
    url = step_url(workup_a, "serum_tryptase")
    first, _ = filled_form(
        spec,
        "serum_tryptase",
        workup_a,
        value_ng_ml="12",
        is_baseline="yes",
        performed_on=days_ago(60),
    )
    assert as_clinician.post(url, first).status_code == 302
    second, _ = filled_form(
        spec,
        "serum_tryptase",
        workup_a,
        value_ng_ml="31",
        is_baseline="yes",
        performed_on=days_ago(5),
    )
    assert as_clinician.post(url, second).status_code == 302

    values = sorted(r.values["value_ng_ml"] for r in StepRecord.objects.filter(workup=workup_a))
    assert values == [12.0, 31.0]
    page = as_clinician.get(url).content.decode()
    assert "12 ng/mL" in page and "31 ng/mL" in page
    assert "Record another result" in page


def test_a_step_recorded_once_is_edited_in_place(as_clinician, workup_a, spec):
    url = step_url(workup_a, "history")
    data, _ = filled_form(spec, "history", workup_a, anaphylaxis="no")
    assert as_clinician.post(url, data).status_code == 302

    page = as_clinician.get(url).content.decode()
    assert "Edit the result" in page
    assert "checked" in input_tag(page, "anaphylaxis", "no")

    data, _ = filled_form(spec, "history", workup_a, anaphylaxis="yes")
    assert as_clinician.post(url, data).status_code == 302

    saved = StepRecord.objects.get(workup=workup_a, step__code="history")
    assert saved.values["anaphylaxis"] is True


def test_a_viewer_sees_the_step_read_only(client, viewer_a, workup_a):
    client.force_login(viewer_a)

    response = client.get(step_url(workup_a, "serum_tryptase"))

    html = response.content.decode()
    assert response.status_code == 200
    assert "read-only" in html
    assert 'name="value_ng_ml"' not in html
    assert 'method="post" novalidate' not in html
    assert reverse("step_mark", args=[workup_a.pk, "serum_tryptase"]) not in html


def test_a_viewer_cannot_record_a_step(client, viewer_a, workup_a, spec):
    client.force_login(viewer_a)
    data, _ = filled_form(spec, "serum_tryptase", workup_a)

    response = client.post(step_url(workup_a, "serum_tryptase"), data)

    assert response.status_code == 403
    assert StepRecord.objects.count() == 0


def test_a_viewer_cannot_mark_a_step(client, viewer_a, workup_a):
    client.force_login(viewer_a)
    data = {"status": "ordered", "workup_version": version_of(workup_a)}

    response = client.post(step_url(workup_a, "serum_tryptase", "mark"), data)

    assert response.status_code == 403
    assert StepMark.objects.count() == 0


@pytest.mark.parametrize(
    ("method", "action"), [("get", ""), ("post", ""), ("post", "mark"), ("post", "unmark")]
)
def test_an_unknown_step_code_is_not_found(as_clinician, workup_a, method, action):
    data = {"status": "ordered", "reason": "x", "workup_version": version_of(workup_a)}
    kwargs = {"data": data} if method == "post" else {}

    response = getattr(as_clinician, method)(step_url(workup_a, "no_such_step", action), **kwargs)

    assert response.status_code == 404
    assert version_of(workup_a) == workup_a.version


# --- lost updates -----------------------------------------------------------------------------


def test_a_stale_form_is_refused_with_a_conflict_message(as_clinician, clinician_a, workup_a, spec):
    url = step_url(workup_a, "serum_tryptase")
    stale, _ = filled_form(spec, "serum_tryptase", workup_a, value_ng_ml="40")
    # Someone else saves a result after the form was loaded.
    record(workup_a, clinician_a, "history", {"mediator_symptoms": True, "anaphylaxis": False})

    response = as_clinician.post(url, stale)

    html = response.content.decode()
    assert response.status_code == 409
    assert CONFLICT in html
    assert 'value="40"' in input_tag(html, "value_ng_ml"), "what the user typed was lost"
    assert not StepRecord.objects.filter(step__code="serum_tryptase").exists()


def test_after_a_conflict_the_reviewed_form_can_be_sent_again(
    as_clinician, clinician_a, workup_a, spec
):
    url = step_url(workup_a, "serum_tryptase")
    stale, _ = filled_form(spec, "serum_tryptase", workup_a, value_ng_ml="40")
    record(workup_a, clinician_a, "history", {"mediator_symptoms": True, "anaphylaxis": False})
    html = as_clinician.post(url, stale).content.decode()
    version = re.search(r'name="workup_version" value="(\d+)"', html)
    assert version, "the conflict page has no workup version to send again"

    response = as_clinician.post(url, {**stale, "workup_version": version.group(1)})

    assert response.status_code == 302
    assert StepRecord.objects.get(step__code="serum_tryptase").values["value_ng_ml"] == 40.0


def test_a_stale_edit_does_not_overwrite_the_other_clinicians_values(
    as_clinician, clinician_a, workup_a, spec
):
    url = step_url(workup_a, "history")
    assert as_clinician.post(url, filled_form(spec, "history", workup_a)[0]).status_code == 302
    stale, _ = filled_form(spec, "history", workup_a, anaphylaxis="no")
    # Another clinician edits the same history in between.
    other, _ = filled_form(spec, "history", workup_a, anaphylaxis="yes", note="Other clinician")
    assert as_clinician.post(url, other).status_code == 302

    response = as_clinician.post(url, stale)

    assert response.status_code == 409
    saved = StepRecord.objects.get(workup=workup_a, step__code="history")
    assert saved.values["anaphylaxis"] is True
    assert saved.note == "Other clinician"


def test_a_stale_mark_is_refused(as_clinician, clinician_a, workup_a):
    data = {"status": "ordered", "reason": "", "workup_version": version_of(workup_a)}
    record(workup_a, clinician_a, "history", {"mediator_symptoms": True, "anaphylaxis": False})

    response = as_clinician.post(step_url(workup_a, "serum_tryptase", "mark"), data, follow=True)

    assert CONFLICT in response.content.decode()
    assert StepMark.objects.count() == 0


# --- marks ------------------------------------------------------------------------------------


def test_not_indicated_without_a_reason_is_refused(as_clinician, workup_a):
    data = {"status": "not_indicated", "reason": "  ", "workup_version": version_of(workup_a)}

    response = as_clinician.post(step_url(workup_a, "chemistry_liver", "mark"), data)

    # Refused on the step's page itself, the status still chosen: not a 404, not saved.
    assert response.status_code == 400
    page = response.content.decode()
    assert "Give the reason" in page
    assert re.search(r'id="mark-not_indicated" value="not_indicated" required checked', page)
    assert StepMark.objects.count() == 0
    assert version_of(workup_a) == workup_a.version


def test_a_refused_mark_keeps_the_reason_as_typed(as_clinician, workup_a):
    reason = "Done at the referring hospital in May."
    data = {"status": "", "reason": reason, "workup_version": version_of(workup_a)}

    response = as_clinician.post(step_url(workup_a, "chemistry_liver", "mark"), data)

    assert response.status_code == 400
    page = unescape(response.content.decode())
    assert f">{reason}</textarea>" in page
    assert re.search(r'<details class="mark-action[^"]*" id="mark" open>', page)
    assert StepMark.objects.count() == 0


def test_declined_without_a_reason_is_refused(as_clinician, workup_a):
    data = {"status": "declined", "reason": "", "workup_version": version_of(workup_a)}

    response = as_clinician.post(step_url(workup_a, "chemistry_liver", "mark"), data)

    assert response.status_code == 400
    assert "Give the reason: it is shown on the checklist and the print." in unescape(
        response.content.decode()
    )
    assert StepMark.objects.count() == 0


def test_not_indicated_with_a_reason_shows_on_the_checklist(as_clinician, workup_a):
    reason = "Liver tests done last month at the referring hospital."
    data = {"status": "not_indicated", "reason": reason, "workup_version": version_of(workup_a)}

    response = as_clinician.post(step_url(workup_a, "chemistry_liver", "mark"), data, follow=True)

    assert response.redirect_chain == [(f"{checklist_url(workup_a)}#step-chemistry_liver", 302)]
    html = response.content.decode()
    item = html[html.index('id="step-chemistry_liver"') :]
    item = item[: item.index("</li>")]
    assert "Not indicated" in item
    assert escape(reason) in item
    mark = StepMark.objects.get(workup=workup_a)
    assert (mark.status, mark.reason) == ("not_indicated", reason)


def test_undoing_a_mark_restores_the_suggestion(as_clinician, workup_a, spec):
    reason = "Patient prefers to wait."
    mark = {"status": "declined", "reason": reason, "workup_version": version_of(workup_a)}
    as_clinician.post(step_url(workup_a, "chemistry_liver", "mark"), mark)

    response = as_clinician.post(
        step_url(workup_a, "chemistry_liver", "unmark"),
        {"workup_version": version_of(workup_a)},
        follow=True,
    )

    assert StepMark.objects.count() == 0
    html = response.content.decode()
    assert escape(reason) not in html
    suggested = html[html.index('id="suggested-heading"') : html.index('id="steps-heading"')]
    assert escape(spec.step("chemistry_liver").title) in suggested


def test_recording_a_result_replaces_an_ordered_mark(as_clinician, workup_a, spec):
    mark = {"status": "ordered", "reason": "", "workup_version": version_of(workup_a)}
    as_clinician.post(step_url(workup_a, "serum_tryptase", "mark"), mark)
    assert StepMark.objects.count() == 1

    data, _ = filled_form(spec, "serum_tryptase", workup_a)
    as_clinician.post(step_url(workup_a, "serum_tryptase"), data)

    assert StepMark.objects.count() == 0
    assert StepRecord.objects.count() == 1


def test_a_step_post_evaluates_the_rules_once(as_clinician, adult_54, spec, monkeypatch):
    """The save compares with the snapshot, so the rules run once: for the new snapshot."""

    calls = []
    real = reads.evaluate

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(reads, "evaluate", counting)
    data, _ = filled_form(spec, "serum_tryptase", adult_54, value_ng_ml="25", is_baseline="yes")
    response = as_clinician.post(step_url(adult_54, "serum_tryptase"), data)
    assert response.status_code == 302
    assert len(calls) == 1
    # What the save changed is still told, against the snapshot of before.
    page = unescape(as_clinician.get(response["Location"]).content.decode())
    assert "is now suggested: R12" in page


def test_a_result_supersedes_the_steps_mark_and_leaves_other_marks(as_clinician, workup_a, spec):
    for step_code in ("serum_tryptase", "dexa"):
        mark = {"status": "ordered", "workup_version": version_of(workup_a)}
        assert as_clinician.post(step_url(workup_a, step_code, "mark"), mark).status_code == 302
    data, _ = filled_form(spec, "serum_tryptase", workup_a)

    assert as_clinician.post(step_url(workup_a, "serum_tryptase"), data).status_code == 302

    assert list(StepMark.objects.values_list("step__code", "status")) == [("dexa", "ordered")]
    event = AuditEvent.objects.filter(object_type="workup.stepmark").latest("pk")
    assert event.action == AuditEvent.Action.DELETE
