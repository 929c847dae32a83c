"""Protocol versions: immutability in code, new drafts, publishing, moving a workup on."""

import dataclasses

import pytest
from django.core.management import call_command
from django.urls import reverse

from workup import reads
from workup.models import (
    FieldDefinition,
    Protocol,
    ProtocolCase,
    ProtocolLocked,
    Rule,
    StepDefinition,
    Workup,
)
from workup.protocols import versions
from workup.protocols.cache import build_spec
from workup.records import move, writes

from .conftest import PROTOCOL_FIXTURE, record
from .factories import PatientFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def v1(db):
    return Protocol.objects.get(code="mastocytosis", version=1)


@pytest.fixture
def draft(v1, protocol_admin):
    return versions.new_draft(protocol=v1, user=protocol_admin)


def publish_without_blood_count_rule(draft, user) -> Protocol:
    """v2: R6 (blood count while not done) disabled, its cases updated to match."""
    rule = Rule.objects.get(protocol=draft, code="R6")
    rule.enabled = False
    rule.save()
    for case in ProtocolCase.objects.filter(protocol=draft, code__in=["E02", "E08"]):
        case.expected_suggested = [c for c in case.expected_suggested if c != "cbc_diff"]
        case.save()
    return versions.publish(protocol=draft, user=user)


# Immutability in code ---------------------------------------------------------------


def test_a_part_of_a_published_version_cannot_be_saved_or_deleted(v1):
    rule = Rule.objects.get(protocol=v1, code="R12")
    rule.condition = {">": [{"var": "calc.bst_adj"}, 25]}
    with pytest.raises(ProtocolLocked, match="mastocytosis v1 is published"):
        rule.save()
    with pytest.raises(ProtocolLocked):
        rule.delete()
    field = FieldDefinition.objects.get(
        step__protocol=v1, code="value_ng_ml", step__code="serum_tryptase"
    )
    field.max_value = 5000
    with pytest.raises(ProtocolLocked):
        field.save()
    with pytest.raises(ProtocolLocked):
        StepDefinition.objects.create(
            protocol=v1, code="new_step", title="New", section="Other", order=99
        )
    with pytest.raises(ProtocolLocked):
        ProtocolCase.objects.filter(protocol=v1).delete()
    assert "20" in str(Rule.objects.get(protocol=v1, code="R12").condition)


def test_bulk_updates_and_deletes_of_a_published_version_are_refused(v1):
    with pytest.raises(ProtocolLocked):
        Rule.objects.filter(protocol=v1).update(enabled=False)
    with pytest.raises(ProtocolLocked):
        FieldDefinition.objects.filter(step__protocol=v1).delete()
    with pytest.raises(ProtocolLocked):
        Protocol.objects.filter(pk=v1.pk).update(title="Changed")
    assert Rule.objects.filter(protocol=v1, enabled=True).count() > 0


def test_a_published_protocol_keeps_its_content_and_can_only_be_retired(v1):
    v1.title = "Changed"
    with pytest.raises(ProtocolLocked, match="title"):
        v1.save()
    v1.refresh_from_db()
    v1.status = Protocol.Status.DRAFT
    with pytest.raises(ProtocolLocked, match="cannot become draft"):
        v1.save()
    v1.refresh_from_db()
    with pytest.raises(ProtocolLocked):
        v1.delete()
    v1.status = Protocol.Status.RETIRED
    v1.save()
    v1.status = Protocol.Status.PUBLISHED
    with pytest.raises(ProtocolLocked):
        v1.save()


def test_a_rule_cannot_be_moved_out_of_a_published_version(v1, draft):
    rule = Rule.objects.get(protocol=v1, code="R12")
    rule.protocol = draft
    with pytest.raises(ProtocolLocked):
        rule.save()


def test_a_draft_can_be_changed_and_deleted(draft):
    rule = Rule.objects.get(protocol=draft, code="R12")
    rule.condition = {">": [{"var": "calc.bst_adj"}, 25]}
    rule.save()
    draft.title = "Next version"
    draft.save()
    draft.delete()
    assert not Protocol.objects.filter(pk=draft.pk).exists()


def test_a_fixture_cannot_be_forced_into_a_version_that_has_workups(workup_a):
    with pytest.raises(ProtocolLocked, match="has workups"):
        call_command("loaddata", str(PROTOCOL_FIXTURE), verbosity=0)


# New draft and publish ----------------------------------------------------------------


def test_a_new_draft_copies_the_whole_version_and_its_case_library(v1, draft, protocol_admin):
    assert (draft.code, draft.version, draft.status) == ("mastocytosis", 2, "draft")
    same = dataclasses.replace(build_spec(draft), id=None, version=1, status="published")
    assert same == dataclasses.replace(build_spec(v1), id=None)
    assert sorted(draft.protocolcase_set.values_list("code", flat=True)) == sorted(
        v1.protocolcase_set.values_list("code", flat=True)
    )
    copied = Rule.objects.get(protocol=draft, code="R12")
    assert copied.target_step.protocol == draft
    latest = copied.history.latest()
    assert latest.history_user == protocol_admin
    assert latest.history_change_reason == "new draft v2 from v1"


def test_publish_refuses_while_a_case_fails_and_says_which_and_why(draft, protocol_admin):
    rule = Rule.objects.get(protocol=draft, code="R6")
    rule.enabled = False
    rule.save()
    with pytest.raises(versions.PublishRefused) as refusal:
        versions.publish(protocol=draft, user=protocol_admin)
    failures = {r.case_id: r.failures for r in refusal.value.report.failures}
    assert set(failures) == {"E02", "E08"}
    assert "cbc_diff should be suggested" in failures["E02"][0]
    draft.refresh_from_db()
    assert draft.status == Protocol.Status.DRAFT
    assert reads.current_protocol().version == 1


def test_publish_refuses_an_empty_case_library(draft, protocol_admin):
    ProtocolCase.objects.filter(protocol=draft).delete()
    with pytest.raises(versions.PublishRefused, match="no cases"):
        versions.publish(protocol=draft, user=protocol_admin)


def test_publish_refuses_an_invalid_draft(draft, protocol_admin):
    rule = Rule.objects.get(protocol=draft, code="R12")
    rule.condition = {">": [{"var": "serum_tryptase.basal"}, 20]}
    rule.save()
    with pytest.raises(versions.PublishRefused, match="serum_tryptase.basal"):
        versions.publish(protocol=draft, user=protocol_admin)


def test_publishing_retires_the_previous_version_and_pins_new_workups_only(
    v1, draft, protocol_admin, workup_a, site_a, clinician_a
):
    v2 = publish_without_blood_count_rule(draft, protocol_admin)
    v1.refresh_from_db()
    assert (v1.status, v2.status) == ("retired", "published")
    assert v2.published_at is not None
    assert reads.current_protocol() == v2
    workup_a.refresh_from_db()
    assert workup_a.protocol == v1  # in progress: stays pinned
    other = PatientFactory(site=site_a)
    assert writes.open_workup(patient=other, user=clinician_a).protocol == v2


def test_an_older_draft_cannot_be_published_over_a_newer_version(v1, protocol_admin):
    older = versions.new_draft(protocol=v1, user=protocol_admin)
    newer = versions.new_draft(protocol=v1, user=protocol_admin)
    publish_without_blood_count_rule(newer, protocol_admin)
    with pytest.raises(versions.PublishRefused, match="v3 is already published"):
        versions.publish(protocol=older, user=protocol_admin)


# Moving a workup -------------------------------------------------------------------------


@pytest.fixture
def v2(draft, protocol_admin):
    return publish_without_blood_count_rule(draft, protocol_admin)


def test_the_preview_names_the_suggestions_that_would_change(workup_a, v2):
    assert "cbc_diff" in workup_a.suggested_steps
    preview = move.preview_move(workup_a)
    assert preview.target == v2
    sentences = [c.sentence for c in preview.suggestion_changes]
    assert "Blood count with differential would no longer be suggested" in " ".join(sentences)
    assert preview.blocked_because == []
    workup_a.refresh_from_db()
    assert workup_a.protocol.version == 1  # a preview writes nothing


def test_moving_repins_the_workup_its_records_and_marks_and_is_recorded(workup_a, clinician_a, v2):
    record(workup_a, clinician_a, "serum_tryptase", {"value_ng_ml": 32.0, "is_baseline": True})
    writes.set_mark(
        workup=workup_a,
        step_code="dexa",
        status="ordered",
        reason="",
        user=clinician_a,
        expected_version=None,
    )
    workup_a.refresh_from_db()
    before = workup_a.version
    move.move_workup(
        workup=workup_a, target=v2, user=clinician_a, expected_version=workup_a.version
    )
    workup_a.refresh_from_db()
    assert workup_a.protocol == v2 and workup_a.version == before + 1
    assert {r.step.protocol_id for r in workup_a.records.all()} == {v2.pk}
    assert {m.step.protocol_id for m in workup_a.marks.all()} == {v2.pk}
    assert "cbc_diff" not in workup_a.suggested_steps
    latest = workup_a.history.latest()
    assert latest.history_user == clinician_a
    assert latest.history_change_reason == "moved from v1 to v2"
    assert reads.load_state(workup_a).spec.version == 2


def test_a_move_from_a_stale_page_is_refused(workup_a, clinician_a, v2):
    stale = workup_a.version
    record(workup_a, clinician_a, "history", {"mediator_symptoms": True})
    with pytest.raises(writes.WorkupConflict):
        move.move_workup(workup=workup_a, target=v2, user=clinician_a, expected_version=stale)
    workup_a.refresh_from_db()
    assert workup_a.protocol.version == 1


def test_a_step_missing_from_the_new_version_is_reported_and_blocks_only_if_recorded(
    v1, protocol_admin, workup_a, clinician_a, site_a
):
    draft = versions.new_draft(protocol=v1, user=protocol_admin)
    StepDefinition.objects.get(protocol=draft, code="medical_alert_id").delete()
    versions.publish(protocol=draft, user=protocol_admin)

    preview = move.preview_move(workup_a)
    assert preview.removed_steps == ["Medical alert identification"]
    assert not preview.blocked_because

    record(workup_a, clinician_a, "medical_alert_id", {"advised": True})
    workup_a.refresh_from_db()
    preview = move.preview_move(workup_a)
    assert preview.removed_steps_with_data and "nothing is hidden" in preview.blocked_because[0]
    with pytest.raises(move.MoveRefused):
        move.move_workup(
            workup=workup_a,
            target=preview.target,
            user=clinician_a,
            expected_version=workup_a.version,
        )


# The pages -----------------------------------------------------------------------------


def move_url(workup) -> str:
    return reverse("workup_move_version", args=[workup.pk])


def test_the_checklist_links_to_the_move_only_when_a_newer_version_exists(
    client, clinician_a, workup_a, draft, protocol_admin
):
    client.force_login(clinician_a)
    checklist = reverse("checklist", args=[workup_a.pk])
    assert move_url(workup_a) not in client.get(checklist).content.decode()
    publish_without_blood_count_rule(draft, protocol_admin)
    page = client.get(checklist).content.decode()
    assert move_url(workup_a) in page and "version 2 is published" in page


def test_a_viewer_sees_the_notice_but_no_link_and_cannot_move(client, viewer_a, workup_a, v2):
    client.force_login(viewer_a)
    page = client.get(reverse("checklist", args=[workup_a.pk])).content.decode()
    assert "version 2 is published" in page and move_url(workup_a) not in page
    preview = client.get(move_url(workup_a))
    assert preview.status_code == 200 and "Only a clinician" in preview.content.decode()
    assert 'name="target"' not in preview.content.decode()
    response = client.post(
        move_url(workup_a), {"workup_version": workup_a.version, "target": v2.pk}
    )
    assert response.status_code == 403
    workup_a.refresh_from_db()
    assert workup_a.protocol.version == 1


@pytest.mark.parametrize("persona", ["clinician_b", "protocol_admin"])
def test_outsiders_get_404_on_the_move_page(client, request, persona, workup_a, v2):
    client.force_login(request.getfixturevalue(persona))
    assert client.get(move_url(workup_a)).status_code == 404
    assert client.post(move_url(workup_a), {}).status_code == 404


def test_the_preview_page_shows_the_changes_and_the_post_moves(client, clinician_a, workup_a, v2):
    client.force_login(clinician_a)
    page = client.get(move_url(workup_a))
    assert page.status_code == 200
    assert "Blood count with differential would no longer be suggested" in page.content.decode()
    response = client.post(
        move_url(workup_a), {"workup_version": workup_a.version, "target": v2.pk}
    )
    assert response.status_code == 302 and response.url == reverse("checklist", args=[workup_a.pk])
    assert Workup.objects.get(pk=workup_a.pk).protocol == v2
    followed = client.get(response.url).content.decode()
    assert "now follows" in followed and move_url(workup_a) not in followed
    assert "Blood count with differential is no longer suggested" in followed


def test_a_stale_move_post_is_refused_with_a_message(client, clinician_a, workup_a, v2):
    client.force_login(clinician_a)
    response = client.post(
        move_url(workup_a),
        {"workup_version": workup_a.version - 1, "target": v2.pk},
        follow=True,
    )
    assert "Someone else changed this workup" in response.content.decode()
    assert Workup.objects.get(pk=workup_a.pk).protocol.version == 1


def test_the_preview_says_when_there_is_nothing_newer(client, clinician_a, workup_a):
    client.force_login(clinician_a)
    assert "nothing to move to" in client.get(move_url(workup_a)).content.decode()
