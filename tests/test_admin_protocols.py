"""The admin for protocol admins: validated rules, read-only published versions, new draft,
publish (refused while a case fails), run cases, diff, case import, users and sites."""

import json

import pytest
from django import forms
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from workup import reads
from workup.models import (
    Calculation,
    Membership,
    Protocol,
    ProtocolCase,
    Rule,
    TrendSeries,
    Workup,
)
from workup.protocols import versions

from .conftest import VIGNETTES
from .factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def v1(db):
    return Protocol.objects.get(code="mastocytosis", version=1)


@pytest.fixture
def draft(v1, protocol_admin):
    return versions.new_draft(protocol=v1, user=protocol_admin)


@pytest.fixture
def as_protocol_admin(client, protocol_admin):
    client.force_login(protocol_admin)
    return client


@pytest.fixture
def superuser(db):
    return UserFactory(is_staff=True, is_superuser=True)


def change_url(obj) -> str:
    return reverse(f"admin:workup_{obj._meta.model_name}_change", args=[obj.pk])


def form_data(response, **changes) -> dict:
    """What the browser would post back from an admin change page, with `changes` applied."""
    data = {}

    def add(form, prefix=""):
        for name, field in form.fields.items():
            value = form[name].value()
            key = f"{prefix}{name}"
            if field.show_hidden_initial:  # rendered as a hidden input beside the field
                initial = field.prepare_value(form[name].initial)
                data[f"initial-{key}"] = "" if initial is None else initial
            if isinstance(field, forms.BooleanField):
                if value:
                    data[key] = "on"
            elif isinstance(value, list | tuple):
                data[key] = [str(v) for v in value]
            else:
                data[key] = "" if value is None else value

    add(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        for name in management.fields:
            data[f"{formset.prefix}-{name}"] = management[name].value()
        for form in formset.forms:
            add(form, f"{form.prefix}-")
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def condition_errors(response) -> list[str]:
    return list(response.context["adminform"].form.errors.get("condition", []))


# Who sees what --------------------------------------------------------------------------


def test_a_protocol_admin_sees_protocols_but_no_patient_data(as_protocol_admin):
    index = as_protocol_admin.get(reverse("admin:index"))
    assert index.status_code == 200
    page = index.content.decode()
    assert "Protocols" in page and "Protocol cases" in page
    assert "Patients" not in page and "Workups" not in page and "Memberships" not in page
    for path in ("patient", "workup", "steprecord", "stepmark"):
        assert as_protocol_admin.get(f"/admin/workup/{path}/").status_code == 404
    assert as_protocol_admin.get(reverse("admin:workup_membership_changelist")).status_code == 403
    assert as_protocol_admin.get(reverse("admin:auth_user_changelist")).status_code == 403


def test_a_protocol_admin_gets_404_on_the_patient_pages(as_protocol_admin, workup_a):
    patient = workup_a.patient
    for url in (
        reverse("patient_detail", args=[patient.pk]),
        reverse("checklist", args=[workup_a.pk]),
        reverse("step_form", args=[workup_a.pk, "serum_tryptase"]),
        reverse("workup_move_version", args=[workup_a.pk]),
    ):
        assert as_protocol_admin.get(url).status_code == 404, url
    worklist = as_protocol_admin.get(reverse("worklist")).content.decode()
    assert patient.mrn not in worklist


def test_the_protocol_list_filters_and_searches(as_protocol_admin, draft):
    url = reverse("admin:workup_protocol_changelist")
    drafts = as_protocol_admin.get(url, {"status__exact": "draft"})
    assert drafts.context["cl"].result_count == 1
    assert as_protocol_admin.get(url, {"q": "mastocytosis"}).context["cl"].result_count == 2


def test_rule_conditions_are_shown_readably(as_protocol_admin, v1):
    listing = as_protocol_admin.get(reverse("admin:workup_rule_changelist"), {"q": "R12"})
    assert "calc.adult and calc.bst_adj &gt; 20" in listing.content.decode()
    page = as_protocol_admin.get(change_url(Rule.objects.get(protocol=v1, code="R12")))
    assert "calc.adult and calc.bst_adj &gt; 20" in page.content.decode()


# Validation of rules and calculations ---------------------------------------------------


def test_an_invalid_rule_is_refused_with_a_message_on_the_field(as_protocol_admin, draft):
    rule = Rule.objects.get(protocol=draft, code="R12")
    url = change_url(rule)
    typed = json.dumps(
        {"and": [{"var": "calc.adult"}, {">": [{"var": "serum_tryptase.basal"}, 20]}]}
    )
    response = as_protocol_admin.post(url, form_data(as_protocol_admin.get(url), condition=typed))
    assert response.status_code == 200
    [error] = condition_errors(response)
    assert error.startswith("rule R12: unknown variable 'serum_tryptase.basal'")
    assert "(known under 'serum_tryptase': " in error and "serum_tryptase.value_ng_ml" in error
    assert "serum_tryptase.basal" in response.content.decode()  # what was typed stays
    rule.refresh_from_db()
    assert "basal" not in json.dumps(rule.condition)


@pytest.mark.parametrize(
    "typed, message",
    [
        ('{"and": [{"var": "calc.adult"}', "This is not valid JSON: "),
        ('{"gt": [{"var": "calc.bst"}, 20]}', "rule R12: unknown operator 'gt'"),
        ('{"!": {"var": 12}}', "rule R12: a variable name must be written out as text"),
        ('{"var": "calc.nothing"}', "rule R12: unknown variable 'calc.nothing'"),
        ("", "rule R12: a condition is required"),
    ],
)
def test_broken_jsonlogic_is_refused_in_words(as_protocol_admin, draft, typed, message):
    url = change_url(Rule.objects.get(protocol=draft, code="R12"))
    response = as_protocol_admin.post(url, form_data(as_protocol_admin.get(url), condition=typed))
    assert response.status_code == 200
    assert any(e.startswith(message) for e in condition_errors(response)), condition_errors(
        response
    )


def test_a_post_without_the_hidden_initial_values_is_still_checked(as_protocol_admin, draft):
    url = change_url(Rule.objects.get(protocol=draft, code="R12"))
    data = form_data(as_protocol_admin.get(url), condition="")
    data = {k: v for k, v in data.items() if not k.startswith("initial-")}
    response = as_protocol_admin.post(url, data)
    assert response.status_code == 200
    assert condition_errors(response) == ["rule R12: a condition is required"]


def test_a_target_step_of_another_version_is_refused(as_protocol_admin, draft, v1):
    url = change_url(Rule.objects.get(protocol=draft, code="R12"))
    other = v1.stepdefinition_set.get(code="dexa")
    response = as_protocol_admin.post(
        url, form_data(as_protocol_admin.get(url), target_step=other.pk)
    )
    assert "target_step" in response.context["adminform"].form.errors


def test_a_valid_rule_change_is_saved_and_recorded_with_who(
    as_protocol_admin, draft, protocol_admin
):
    rule = Rule.objects.get(protocol=draft, code="R12")
    url = change_url(rule)
    typed = json.dumps({"and": [{"var": "calc.adult"}, {">": [{"var": "calc.bst_adj"}, 25]}]})
    response = as_protocol_admin.post(url, form_data(as_protocol_admin.get(url), condition=typed))
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.condition["and"][1][">"][1] == 25
    latest = rule.history.latest()
    assert (latest.history_type, latest.history_user) == ("~", protocol_admin)
    history = as_protocol_admin.get(reverse("admin:workup_rule_history", args=[rule.pk]))
    assert history.status_code == 200 and protocol_admin.username in history.content.decode()
    protocol_page = as_protocol_admin.get(change_url(draft)).content.decode()
    assert "rule R12" in protocol_page and protocol_admin.username in protocol_page


def test_a_rule_label_may_be_typed_as_plain_text(as_protocol_admin, draft):
    rule = Rule.objects.get(protocol=draft, code="R3")
    url = change_url(rule)
    response = as_protocol_admin.post(
        url, form_data(as_protocol_admin.get(url), label="liver and spleen")
    )
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.label == "liver and spleen"


def test_an_invalid_calculation_is_refused_on_its_expression(as_protocol_admin, draft):
    calc = Calculation.objects.get(protocol=draft, code="adult")
    url = change_url(calc)
    # A calculation sees only the calculations before it.
    typed = json.dumps({"var": "calc.rema_score"})
    response = as_protocol_admin.post(url, form_data(as_protocol_admin.get(url), expression=typed))
    [error] = response.context["adminform"].form.errors["expression"]
    assert error.startswith("calculation adult: unknown variable 'calc.rema_score'")


def test_renaming_a_calculation_that_rules_use_is_refused(as_protocol_admin, draft):
    calc = Calculation.objects.get(protocol=draft, code="bst_adj")
    url = change_url(calc)
    response = as_protocol_admin.post(url, form_data(as_protocol_admin.get(url), code="bst_hat"))
    errors = response.context["adminform"].form.non_field_errors()
    assert any("rule R12: unknown variable 'calc.bst_adj'" in e for e in errors), errors
    assert Calculation.objects.filter(protocol=draft, code="bst_adj").exists()


def test_two_calculations_cannot_share_an_order(as_protocol_admin, draft):
    calc = Calculation.objects.get(protocol=draft, code="child")
    url = change_url(calc)
    response = as_protocol_admin.post(url, form_data(as_protocol_admin.get(url), order=1))
    assert "already has order 1" in response.context["adminform"].form.errors["order"][0]


def test_deleting_a_step_that_rules_use_is_refused_in_the_protocol_page(as_protocol_admin, draft):
    url = change_url(draft)
    page = as_protocol_admin.get(url)
    step_forms = page.context["inline_admin_formsets"][0].formset.forms
    index = next(i for i, f in enumerate(step_forms) if f.instance.code == "physical_exam")
    response = as_protocol_admin.post(
        url, form_data(page, **{f"stepdefinition_set-{index}-DELETE": "on"})
    )
    assert response.status_code == 200
    assert "Deleting would break the draft" in response.content.decode()
    assert draft.stepdefinition_set.filter(code="physical_exam").exists()


# Published versions are read-only ----------------------------------------------------------


def test_a_published_version_is_read_only_in_the_admin(as_protocol_admin, v1):
    rule = Rule.objects.get(protocol=v1, code="R12")
    page = as_protocol_admin.get(change_url(rule))
    assert page.status_code == 200 and page.context["has_change_permission"] is False
    assert "is published: it is read-only" in page.content.decode()
    response = as_protocol_admin.post(change_url(rule), {"condition": "{}", "code": "R12"})
    assert response.status_code == 403
    assert (
        as_protocol_admin.post(
            reverse("admin:workup_rule_delete", args=[rule.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    protocol_page = as_protocol_admin.get(change_url(v1))
    assert protocol_page.context["has_change_permission"] is False
    assert all(
        not inline.has_add_permission and not inline.has_delete_permission
        for inline in protocol_page.context["inline_admin_formsets"]
    )
    assert as_protocol_admin.post(change_url(v1), {"title": "Changed"}).status_code == 403
    assert Protocol.objects.get(pk=v1.pk).title != "Changed"


# Actions ----------------------------------------------------------------------------------


def action(client, name, *protocols, follow=False):
    return client.post(
        reverse("admin:workup_protocol_changelist"),
        {"action": name, "_selected_action": [p.pk for p in protocols]},
        follow=follow,
    )


def test_new_draft_from_this_version_copies_the_whole_protocol(as_protocol_admin, v1):
    response = action(as_protocol_admin, "new_draft_action", v1)
    draft = Protocol.objects.get(code="mastocytosis", version=2)
    assert response.status_code == 302 and response.url == change_url(draft)
    assert draft.status == "draft"
    assert draft.rule_set.count() == v1.rule_set.count()
    assert draft.protocolcase_set.count() == v1.protocolcase_set.count() == 8
    page = as_protocol_admin.get(response.url)
    assert page.context["has_change_permission"] is True


def test_publish_is_refused_while_a_case_fails_showing_which_and_why(as_protocol_admin, draft):
    Rule.objects.filter(protocol=draft, code="R6").update(enabled=False)
    response = action(as_protocol_admin, "publish_action", draft)
    assert response.status_code == 200
    page = response.content.decode()
    assert "was not published" in page and "failing cases: E02, E08" in page
    assert "cbc_diff should be suggested, but is not suggested" in page
    assert Protocol.objects.get(pk=draft.pk).status == "draft"
    assert reads.current_protocol().version == 1


def test_publish_retires_the_previous_version_and_keeps_workups_pinned(
    as_protocol_admin, draft, v1, workup_a
):
    response = as_protocol_admin.post(reverse("admin:workup_protocol_publish", args=[draft.pk]))
    assert response.status_code == 302
    draft.refresh_from_db()
    v1.refresh_from_db()
    assert (draft.status, v1.status) == ("published", "retired")
    assert Workup.objects.get(pk=workup_a.pk).protocol == v1
    assert reads.current_protocol() == draft


def test_run_cases_reports_passes_and_failures(as_protocol_admin, v1, draft):
    Rule.objects.filter(protocol=draft, code="R6").update(enabled=False)
    response = action(as_protocol_admin, "run_cases_action", v1, draft)
    page = response.content.decode()
    assert "all 8 case(s) pass" in page and "2 of 8 case(s) fail" in page
    single = as_protocol_admin.get(reverse("admin:workup_protocol_run_cases", args=[v1.pk]))
    assert single.content.decode().count("✓ passes") == 8


def test_the_diff_page_names_a_changed_threshold(as_protocol_admin, v1, draft):
    Rule.objects.filter(protocol=draft, code="R12").update(
        condition={"and": [{"var": "calc.adult"}, {">": [{"var": "calc.bst_adj"}, 25]}]}
    )
    url = reverse("admin:workup_protocol_diff", args=[draft.pk])
    page = as_protocol_admin.get(url, {"against": v1.pk}).content.decode()
    assert "From v1 (published) to v2 (draft): 1 change(s)" in page
    assert "R12" in page and "threshold 20 → 25 in condition" in page


def test_the_fixture_can_be_downloaded(as_protocol_admin, v1):
    response = as_protocol_admin.get(reverse("admin:workup_protocol_export", args=[v1.pk]))
    assert response["Content-Disposition"] == 'attachment; filename="mastocytosis-v1.json"'
    assert json.loads(response.content)[0]["fields"]["code"] == "mastocytosis"


# The case library -------------------------------------------------------------------------


def upload(client, protocol, cases):
    content = json.dumps(cases).encode() if not isinstance(cases, bytes) else cases
    return client.post(
        reverse("admin:workup_protocol_import_cases", args=[protocol.pk]),
        {"file": SimpleUploadedFile("cases.json", content, "application/json")},
    )


def test_cases_can_be_imported_into_a_draft_from_a_file(as_protocol_admin, draft):
    cases = json.loads(VIGNETTES.read_text())
    cases.append({**cases[0], "id": "E20", "summary": "New"})
    response = upload(as_protocol_admin, draft, cases)
    assert response.status_code == 302
    assert ProtocolCase.objects.get(protocol=draft, code="E20").summary == "New"


def test_an_invalid_case_file_is_refused_on_the_form(as_protocol_admin, draft):
    cases = [{**json.loads(VIGNETTES.read_text())[0], "findings": {"marrow": {}}}]
    response = upload(as_protocol_admin, draft, cases)
    assert response.status_code == 200
    assert "case E01: unknown step &#x27;marrow&#x27;" in response.content.decode()
    bad_json = upload(as_protocol_admin, draft, b"[{")
    assert "not valid JSON" in bad_json.content.decode()


def test_cases_of_a_published_version_cannot_be_imported_in_the_admin(as_protocol_admin, v1):
    assert upload(as_protocol_admin, v1, []).status_code == 403


def test_a_case_with_an_unknown_step_is_refused_on_its_field(as_protocol_admin, draft):
    case = ProtocolCase.objects.get(protocol=draft, code="E03")
    url = change_url(case)
    response = as_protocol_admin.post(
        url,
        form_data(as_protocol_admin.get(url), expected_suggested='["bone_marrow"]'),
    )
    errors = response.context["adminform"].form.errors
    assert errors["expected_suggested"] == [
        "case E03: expected_suggested names unknown step 'bone_marrow'"
    ]
    passing = as_protocol_admin.get(url).content.decode()
    assert "✓ passes" in passing


def test_a_case_change_is_recorded(as_protocol_admin, draft, protocol_admin):
    case = ProtocolCase.objects.get(protocol=draft, code="E03")
    url = change_url(case)
    response = as_protocol_admin.post(url, form_data(as_protocol_admin.get(url), summary="Edited"))
    assert response.status_code == 302
    assert case.history.latest().history_user == protocol_admin


# Users, sites and memberships ----------------------------------------------------------------


def test_an_admin_manages_memberships_and_each_change_is_recorded(client, superuser, site_a):
    client.force_login(superuser)
    user = UserFactory()
    response = client.post(
        reverse("admin:workup_membership_add"),
        {"user": user.pk, "site": site_a.pk, "role": "viewer"},
    )
    assert response.status_code == 302
    membership = Membership.objects.get(user=user, site=site_a)
    assert membership.history.latest().history_user == superuser
    history = client.get(reverse("admin:workup_membership_history", args=[membership.pk]))
    assert superuser.username in history.content.decode()
    user_page = client.get(reverse("admin:auth_user_change", args=[user.pk])).content.decode()
    assert "Site memberships" in user_page and "North Clinic" in user_page


def test_the_user_list_shows_roles(client, superuser, clinician_a, protocol_admin):
    client.force_login(superuser)
    page = client.get(reverse("admin:auth_user_changelist")).content.decode()
    assert "Clinician at North Clinic" in page and "Protocol admins" in page


# Criterion groups and trend series are protocol data ------------------------------------


@pytest.mark.parametrize("model", ["criteriongroup", "trendseries"])
def test_a_protocol_admin_manages_groups_and_trend_series(as_protocol_admin, v1, model):
    url = reverse(f"admin:workup_{model}_changelist")
    response = as_protocol_admin.get(url, {"protocol__id__exact": v1.pk})
    assert response.status_code == 200
    assert {"criteriongroup": "SM items", "trendseries": "Not baseline"}[model] in (
        response.content.decode()
    )
    assert as_protocol_admin.get(reverse(f"admin:workup_{model}_add")).status_code == 200


def test_a_trend_series_on_a_yes_no_field_is_refused_on_its_field(as_protocol_admin, draft):
    series = TrendSeries.objects.get(protocol=draft, code="baseline")
    url = change_url(series)
    response = as_protocol_admin.post(
        url, form_data(as_protocol_admin.get(url), field_code="is_baseline")
    )
    assert response.status_code == 200
    [error] = response.context["adminform"].form.errors["field_code"]
    assert error.startswith("trend series baseline: field_code 'is_baseline' must name a number")
    series.refresh_from_db()
    assert series.field_code == "value_ng_ml"


def test_a_new_draft_copies_groups_and_series_onto_its_own_steps(v1, draft):
    assert list(draft.criteriongroup_set.values_list("code", "counts_label")) == list(
        v1.criteriongroup_set.values_list("code", "counts_label")
    )
    copied = {s.code: s for s in draft.trendseries_set.select_related("step")}
    assert set(copied) == {"baseline", "not-baseline", "acute"}
    assert {s.step.protocol_id for s in copied.values()} == {draft.pk}
    assert copied["acute"].step.code == "acute_tryptase"
    assert copied["acute"].detail_fields == [["hours_after_onset", "after onset"]]
