"""The worklist (search, filter, pages), adding and editing patients, opening a workup."""

from __future__ import annotations

import re
from datetime import date, timedelta
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from workup import reads
from workup.models import Patient, Protocol, Workup
from workup.records import writes

from .conftest import record
from .factories import PatientFactory
from .test_query_budgets import WORKLIST_BUDGET

WORKLIST = "/"
SEARCH = "/search/"
NEW_PATIENT = "/patients/new/"
# The budget: session, user, memberships, one page (tests/test_query_budgets.py
# checks it at 10 and 1,000 patients).


@pytest.fixture
def as_clinician(client, clinician_a):
    client.force_login(clinician_a)
    return client


def years_ago(years: int) -> date:
    return date(timezone.localdate().year - years, 1, 1)


def worklist_rows(response) -> list[str]:
    """The family names on the worklist page, in order."""
    assert response.status_code == 200
    return [patient.family_name for patient, *_ in response.context["rows"]]


def pager_link(html: str, label: str) -> tuple[str, bool]:
    """(href, disabled) of a pager link such as First, Previous, Next or Last."""
    match = re.search(
        rf'<li class="page-item( disabled)?"><a class="page-link" href="([^"]*)"[^>]*>{label}</a>',
        html,
    )
    assert match, f"no pager link {label!r}"
    return unescape(match.group(2)), bool(match.group(1))


def table_row(html: str, text: str) -> str:
    """The worklist row that contains `text` (an MRN), unescaped."""
    rows = [unescape(row) for row in re.findall(r"<tr>.*?</tr>", html, re.S)]
    matching = [row for row in rows if re.search(rf">\s*{re.escape(text)}\s*<", row)]
    assert len(matching) == 1, f"{len(matching)} worklist rows show {text!r}"
    return matching[0]


def field_block(html: str, name: str) -> str:
    start = html.find(f'id="div_id_{name}"')
    assert start != -1, f"no form field {name!r} on the page"
    end = html.find('id="div_id_', start + 1)
    return html[start : end if end != -1 else len(html)]


def field_errors(html: str, name: str) -> list[str]:
    return [
        unescape(re.sub(r"<[^>]+>", "", text)).strip()
        for text in re.findall(
            rf'id="error_\d+_id_{name}"[^>]*>(.*?)</(?:p|span)>', field_block(html, name), re.S
        )
    ]


def patient_form(site, **overrides) -> dict:
    data = {
        "site": site.pk,
        "mrn": "N-5001",
        "family_name": "Quennell",
        "given_name": "Ruth",
        "birth_date": "1961-03-14",
        "sex": "female",
    }
    data.update(overrides)
    return data


def with_open_workup(user, **patient_fields) -> Patient:
    patient = PatientFactory(**patient_fields)
    writes.open_workup(patient=patient, user=user)
    return patient


# --- the worklist -------------------------------------------------------------------------------


def test_the_worklist_lists_only_the_patients_of_my_sites(
    as_clinician, clinician_a, clinician_b, site_a, site_b
):
    with_open_workup(clinician_a, site=site_a, family_name="Northcote", mrn="N-1")
    with_open_workup(clinician_b, site=site_b, family_name="Southgate", mrn="S-1")

    response = as_clinician.get(WORKLIST)

    assert worklist_rows(response) == ["Northcote"]
    html = response.content.decode()
    assert "Southgate" not in html and "S-1" not in html


def test_the_worklist_shows_progress_and_suggested_steps(as_clinician, clinician_a, site_a, spec):
    patient = with_open_workup(clinician_a, site=site_a, birth_date=years_ago(54))
    workup = patient.workups.get()
    record(workup, clinician_a, "history", {"mediator_symptoms": False, "anaphylaxis": False})
    workup.refresh_from_db()

    row = table_row(as_clinician.get(WORKLIST).content.decode(), patient.mrn)

    assert workup.progress_done == 1
    assert f"{workup.progress_done} of {workup.progress_applicable} documented" in row
    assert reverse("checklist", args=[workup.pk]) in row
    for code in ("skin_exam", "serum_tryptase", "chemistry_liver"):
        assert code in workup.suggested_steps
        assert spec.step(code).title in row
    assert spec.step("history").title not in row


def test_names_typed_by_users_are_escaped_on_the_worklist(as_clinician, site_a):
    PatientFactory(site=site_a, family_name="<script>alert(1)</script>")

    html = as_clinician.get(WORKLIST).content.decode()

    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_patient_without_a_workup_links_to_the_patient_page(as_clinician, site_a):
    patient = PatientFactory(site=site_a)

    html = as_clinician.get(WORKLIST).content.decode()

    assert "no workup opened" in html
    assert reverse("patient_detail", args=[patient.pk]) in html


def test_search_by_mrn_prefix_keeps_the_mrn_out_of_every_url(as_clinician, site_a):
    PatientFactory(site=site_a, mrn="N-1001", family_name="Ashdown")
    PatientFactory(site=site_a, mrn="N-2002", family_name="Brennan")

    response = as_clinician.post(SEARCH, {"q": "N-10"}, follow=True)

    assert response.redirect_chain == [(WORKLIST, 302)]
    for url, _ in response.redirect_chain:
        assert "N-10" not in url
    assert response.request["QUERY_STRING"] == ""
    assert as_clinician.session["worklist_search"] == "N-10"
    assert worklist_rows(response) == ["Ashdown"]


def test_search_by_family_name_prefix_ignores_case(as_clinician, site_a):
    PatientFactory(site=site_a, family_name="Ashdown")
    PatientFactory(site=site_a, family_name="Ashford")
    PatientFactory(site=site_a, family_name="Brennan")

    response = as_clinician.post(SEARCH, {"q": "ash"}, follow=True)

    assert worklist_rows(response) == ["Ashdown", "Ashford"]
    assert "starts with “ash”" in response.content.decode()


def test_the_search_stays_until_it_is_cleared(as_clinician, site_a):
    PatientFactory(site=site_a, family_name="Ashdown")
    PatientFactory(site=site_a, family_name="Brennan")
    as_clinician.post(SEARCH, {"q": "Bren"})

    assert worklist_rows(as_clinician.get(WORKLIST)) == ["Brennan"]

    response = as_clinician.post(SEARCH, {"q": "Bren", "clear": "1"}, follow=True)
    assert worklist_rows(response) == ["Ashdown", "Brennan"]
    assert "worklist_search" not in as_clinician.session


def test_search_does_not_reach_another_sites_patients(as_clinician, site_b):
    PatientFactory(site=site_b, mrn="S-9001", family_name="Southgate")

    response = as_clinician.post(SEARCH, {"q": "S-9001"}, follow=True)

    assert worklist_rows(response) == []


def test_the_worklist_filters_by_a_suggested_step(
    as_clinician, clinician_a, clinician_b, site_a, site_b
):
    marrow = with_open_workup(
        clinician_a, site=site_a, family_name="Marrowby", birth_date=years_ago(54)
    )
    record(
        marrow.workups.get(),
        clinician_a,
        "serum_tryptase",
        {"value_ng_ml": 25.0, "is_baseline": True},
    )
    with_open_workup(clinician_a, site=site_a, family_name="Plainfield", birth_date=years_ago(54))
    elsewhere = with_open_workup(
        clinician_b, site=site_b, family_name="Southgate", birth_date=years_ago(54)
    )
    record(
        elsewhere.workups.get(),
        clinician_b,
        "serum_tryptase",
        {"value_ng_ml": 25.0, "is_baseline": True},
    )

    response = as_clinician.get(WORKLIST, {"step": "bone_marrow_biopsy"})

    assert worklist_rows(response) == ["Marrowby"]
    assert '<option value="bone_marrow_biopsy" selected>' in response.content.decode()


def follow(client, href: str, **extra):
    """GET a pager link (a query string relative to the worklist)."""
    return client.get(WORKLIST + href, **extra)


def test_the_worklist_is_paged_with_first_previous_next_and_last(as_clinician, site_a, settings):
    settings.WORKLIST_PAGE_SIZE = 2
    patients = {
        name: PatientFactory(site=site_a, family_name=name)
        for name in ("Abbott", "Baker", "Carter", "Dawson", "Ellis")
    }

    first = as_clinician.get(WORKLIST)
    html = first.content.decode()
    assert worklist_rows(first) == ["Abbott", "Baker"]
    assert pager_link(html, "First")[1] and pager_link(html, "Previous")[1]
    assert pager_link(html, "Next") == (f"?after={patients['Baker'].pk}", False)
    assert pager_link(html, "Last") == ("?page=last", False)

    middle = follow(as_clinician, pager_link(html, "Next")[0])
    html = middle.content.decode()
    assert worklist_rows(middle) == ["Carter", "Dawson"]
    assert pager_link(html, "First") == ("?", False)
    assert pager_link(html, "Previous") == (f"?before={patients['Carter'].pk}", False)
    assert worklist_rows(follow(as_clinician, pager_link(html, "Previous")[0])) == [
        "Abbott",
        "Baker",
    ]

    last = follow(as_clinician, pager_link(html, "Next")[0])
    html = last.content.decode()
    assert worklist_rows(last) == ["Ellis"]
    assert pager_link(html, "Next")[1] and pager_link(html, "Last")[1]
    assert worklist_rows(as_clinician.get(WORKLIST, {"page": "last"})) == ["Dawson", "Ellis"]


def test_pages_follow_the_name_order_when_names_repeat(as_clinician, site_a, settings):
    """Same family and given name: the id breaks the tie, so no one is skipped or shown twice."""
    settings.WORKLIST_PAGE_SIZE = 2
    twins = [PatientFactory(site=site_a, family_name="Smith", given_name="Jo") for _ in range(5)]
    seen, href = [], ""
    for _ in range(5):
        response = follow(as_clinician, href) if href else as_clinician.get(WORKLIST)
        seen += [patient.pk for patient, *_ in response.context["rows"]]
        href, disabled = pager_link(response.content.decode(), "Next")
        if disabled:
            break
    assert seen == sorted(p.pk for p in twins)


def test_the_pages_keep_the_step_filter(as_clinician, clinician_a, site_a, settings):
    settings.WORKLIST_PAGE_SIZE = 1
    first, _second = (
        with_open_workup(clinician_a, site=site_a, family_name=name, birth_date=years_ago(54))
        for name in ("Abbott", "Baker")
    )

    html = as_clinician.get(WORKLIST, {"step": "history"}).content.decode()

    assert pager_link(html, "Next") == (f"?after={first.pk}&step=history", False)
    assert pager_link(html, "Last") == ("?page=last&step=history", False)


def test_a_malformed_or_foreign_cursor_shows_no_one_elses_patients(
    as_clinician, site_a, site_b, settings
):
    settings.WORKLIST_PAGE_SIZE = 2
    for name in ("Abbott", "Baker", "Carter"):
        PatientFactory(site=site_a, family_name=name)
    elsewhere = PatientFactory(site=site_b, family_name="Aaron")

    assert worklist_rows(as_clinician.get(WORKLIST, {"after": "x"})) == ["Abbott", "Baker"]
    assert worklist_rows(as_clinician.get(WORKLIST, {"page": 99})) == ["Abbott", "Baker"]
    assert worklist_rows(as_clinician.get(WORKLIST, {"after": "9" * 30})) == ["Abbott", "Baker"]
    # Another site's patient as the boundary: nothing is placed relative to them.
    assert worklist_rows(as_clinician.get(WORKLIST, {"after": elsewhere.pk})) == []


def count_worklist_queries(client) -> int:
    client.get(WORKLIST)  # warm the protocol cache, as a running server has it
    with CaptureQueriesContext(connection) as queries:
        response = client.get(WORKLIST)
    assert response.status_code == 200
    return len(queries)


def test_the_worklist_query_count_is_bounded_and_does_not_grow_with_patients(
    as_clinician, clinician_a, site_a, django_assert_max_num_queries
):
    for _ in range(5):
        patient = with_open_workup(clinician_a, site=site_a, birth_date=years_ago(54))
        record(
            patient.workups.get(),
            clinician_a,
            "serum_tryptase",
            {"value_ng_ml": 25.0, "is_baseline": True},
        )
    with_five = count_worklist_queries(as_clinician)
    with django_assert_max_num_queries(WORKLIST_BUDGET):
        as_clinician.get(WORKLIST)

    for _ in range(35):
        patient = with_open_workup(clinician_a, site=site_a, birth_date=years_ago(54))
        record(
            patient.workups.get(),
            clinician_a,
            "serum_tryptase",
            {"value_ng_ml": 25.0, "is_baseline": True},
        )

    assert count_worklist_queries(as_clinician) == with_five


# --- adding and editing a patient ---------------------------------------------------------------


def test_a_clinician_adds_a_patient(as_clinician, clinician_a, site_a):
    response = as_clinician.post(NEW_PATIENT, patient_form(site_a))

    patient = Patient.objects.get(mrn="N-5001")
    assert response.status_code == 302
    assert response.headers["Location"] == reverse("patient_detail", args=[patient.pk])
    assert (patient.site, patient.created_by) == (site_a, clinician_a)
    assert patient.birth_date == date(1961, 3, 14)


def test_a_duplicate_mrn_at_the_same_site_is_refused_not_a_server_error(
    as_clinician, site_a, patient_a
):
    response = as_clinician.post(NEW_PATIENT, patient_form(site_a, mrn=patient_a.mrn))

    assert response.status_code in (200, 400)
    assert Patient.objects.filter(mrn=patient_a.mrn).count() == 1
    assert "already exists" in response.content.decode()


def test_a_duplicate_mrn_is_reported_next_to_the_mrn_field(as_clinician, site_a, patient_a):
    response = as_clinician.post(NEW_PATIENT, patient_form(site_a, mrn=patient_a.mrn))

    errors = field_errors(response.content.decode(), "mrn")
    assert errors, "the duplicate MRN is not reported on the MRN field"
    assert Patient.objects.filter(mrn=patient_a.mrn).count() == 1


def test_the_same_mrn_at_another_site_is_allowed(client, clinician_b, site_b, patient_a):
    client.force_login(clinician_b)

    response = client.post(NEW_PATIENT, patient_form(site_b, mrn=patient_a.mrn))

    assert response.status_code == 302
    assert Patient.objects.filter(mrn=patient_a.mrn).count() == 2


def test_a_birth_date_in_the_future_is_refused(as_clinician, site_a):
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()

    response = as_clinician.post(NEW_PATIENT, patient_form(site_a, birth_date=tomorrow))

    html = response.content.decode()
    assert response.status_code in (200, 400)
    assert any("in the future" in e for e in field_errors(html, "birth_date"))
    assert f'value="{tomorrow}"' in field_block(html, "birth_date")
    assert not Patient.objects.filter(mrn="N-5001").exists()


def test_a_missing_family_name_is_refused_and_the_rest_is_kept(as_clinician, site_a):
    response = as_clinician.post(NEW_PATIENT, patient_form(site_a, family_name=""))

    html = response.content.decode()
    assert field_errors(html, "family_name")
    assert 'value="N-5001"' in field_block(html, "mrn")
    assert not Patient.objects.filter(mrn="N-5001").exists()


def test_a_clinician_cannot_add_a_patient_to_another_site(as_clinician, site_b):
    response = as_clinician.post(NEW_PATIENT, patient_form(site_b))

    assert response.status_code in (200, 400)
    assert field_errors(response.content.decode(), "site")
    assert not Patient.objects.filter(mrn="N-5001").exists()


def test_a_viewer_cannot_add_a_patient(client, viewer_a, site_a):
    client.force_login(viewer_a)

    assert client.get(NEW_PATIENT).status_code == 403
    assert client.post(NEW_PATIENT, patient_form(site_a)).status_code == 403
    assert not Patient.objects.filter(mrn="N-5001").exists()
    assert NEW_PATIENT not in client.get(WORKLIST).content.decode()


def test_a_clinician_edits_a_patient(as_clinician, site_a, patient_a):
    url = reverse("patient_detail", args=[patient_a.pk])
    data = patient_form(site_a, mrn=patient_a.mrn, family_name="Renamed")

    response = as_clinician.post(url, data)

    assert response.status_code == 302
    patient_a.refresh_from_db()
    assert patient_a.family_name == "Renamed"
    assert "Patient details saved." in as_clinician.get(url).content.decode()


def test_editing_a_patient_to_a_taken_mrn_is_refused(as_clinician, site_a, patient_a):
    other = PatientFactory(site=site_a, mrn="N-7007")
    url = reverse("patient_detail", args=[patient_a.pk])

    response = as_clinician.post(url, patient_form(site_a, mrn=other.mrn))

    assert response.status_code in (200, 400)
    assert "already exists" in response.content.decode()
    patient_a.refresh_from_db()
    assert patient_a.mrn != other.mrn


def test_a_viewer_sees_the_patient_read_only(client, viewer_a, patient_a):
    client.force_login(viewer_a)

    html = client.get(reverse("patient_detail", args=[patient_a.pk])).content.decode()

    assert "disabled" in field_block(html, "family_name")
    assert "Save patient" not in html
    assert reverse("workup_open", args=[patient_a.pk]) not in html


# --- opening a workup -------------------------------------------------------------------------


def test_opening_a_workup_pins_the_published_protocol(as_clinician, clinician_a, patient_a):
    response = as_clinician.post(reverse("workup_open", args=[patient_a.pk]))

    workup = Workup.objects.get(patient=patient_a)
    assert response.status_code == 302
    assert response.headers["Location"] == reverse("checklist", args=[workup.pk])
    assert workup.protocol == reads.current_protocol()
    assert workup.protocol.status == Protocol.Status.PUBLISHED
    assert (workup.status, workup.opened_by) == (Workup.Status.OPEN, clinician_a)
    checklist = as_clinician.get(response.headers["Location"]).content.decode()
    assert f"version {workup.protocol.version}" in checklist


def test_the_protocol_a_workup_opens_with_is_configuration_not_code(
    as_clinician, patient_a, settings
):
    settings.WORKUP_DEFAULT_PROTOCOL = "no-such-protocol"

    response = as_clinician.post(reverse("workup_open", args=[patient_a.pk]), follow=True)

    assert response.status_code == 200
    assert "No published version of protocol &#x27;no-such-protocol&#x27;." in (
        response.content.decode()
    )
    assert not Workup.objects.filter(patient=patient_a).exists()


def test_opening_twice_reuses_the_open_workup(as_clinician, patient_a):
    url = reverse("workup_open", args=[patient_a.pk])

    first = as_clinician.post(url)
    second = as_clinician.post(url)

    assert Workup.objects.filter(patient=patient_a).count() == 1
    assert first.headers["Location"] == second.headers["Location"]


def test_opening_a_workup_needs_a_post(as_clinician, patient_a):
    response = as_clinician.get(reverse("workup_open", args=[patient_a.pk]))

    assert response.status_code == 405
    assert not Workup.objects.filter(patient=patient_a).exists()


def test_the_about_page_says_checklist_not_diagnosis_and_needs_login(client, clinician_a):
    url = reverse("about")
    assert client.get(url).status_code == 302

    client.force_login(clinician_a)
    response = client.get(url)

    assert response.status_code == 200
    assert "not a diagnosis" in response.content.decode()
