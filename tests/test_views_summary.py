"""The printed summary: the print-ready page and its PDF.

Both show what the checklist shows (same view-model, same formatting), never a
diagnosis; a viewer may print, another site's user gets 404; every print and
PDF is in the access log; the number of SQL queries is bounded.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections import defaultdict
from datetime import date, timedelta
from html import unescape

import pytest
from django.db import connection
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from pypdf import PdfReader

from workup import reads
from workup.models import AuditEvent
from workup.printing import pdf
from workup.records import writes
from workup.views import printing

from .conftest import record, worked_up
from .factories import PatientFactory

# Today 9 on SQLite, 10 on PostgreSQL: session, user, the workup (with patient, site and
# protocol), its records, its marks, and the access-log row (advisory lock on PostgreSQL,
# last hash, insert, in a savepoint). The bound leaves a little room; a per-record query
# is caught by the comparison further down.
DIAGNOSTIC_PHRASES = (
    "diagnosis of",
    "diagnosis:",
    "diagnosed with",
    "has mastocytosis",
    "has systemic mastocytosis",
    "consistent with mastocytosis",
    "criteria are met",
    "criteria met",
    "meets the criteria",
    "sm confirmed",
)
A4_POINTS = (595, 842)
LETTER_POINTS = (612, 792)
MM = 96 / 25.4  # CSS pixels per millimetre
SIDE_MARGIN_MM = 15  # print.css
UNBROKEN = "LAB-REF-" + "0123456789ABCDEF" * 20  # a pasted reference with no space in it


# --- helpers --------------------------------------------------------------------------------


def summary_url(workup) -> str:
    return reverse("workup_summary", args=[workup.pk])


def pdf_url(workup) -> str:
    return reverse("workup_summary_pdf", args=[workup.pk])


def words(text: str) -> str:
    """Text as a reader sees it: ligatures undone, whitespace and line breaks collapsed."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip()


def html_words(html: str) -> str:
    return words(unescape(re.sub(r"<[^>]+>", " ", html)))


def pdf_pages(content: bytes) -> list[str]:
    reader = PdfReader(io.BytesIO(content))
    return [words(page.extract_text() or "") for page in reader.pages]


def get_summary(client, workup) -> str:
    response = client.get(summary_url(workup))
    assert response.status_code == 200
    return response.content.decode()


def get_pdf(client, workup, **params):
    response = client.get(pdf_url(workup), params)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    return response


@pytest.fixture
def as_clinician(client, clinician_a):
    client.force_login(clinician_a)
    return client


def years_ago(years: int) -> date:
    return date(timezone.localdate().year - years, 1, 1)


def mark(workup, user, step_code, status, reason):
    workup.refresh_from_db()
    writes.set_mark(
        workup=workup,
        step_code=step_code,
        status=status,
        reason=reason,
        user=user,
        expected_version=workup.version,
    )


# --- the PDF ------------------------------------------------------------------------------


def test_the_pdf_holds_the_mrn_every_step_the_suggestions_and_the_disclaimer(
    as_clinician, clinician_a, workup_a, spec
):
    worked_up(workup_a, clinician_a)
    suggested = [item.step.title for item in reads.load_state(workup_a).checklist().suggested]
    assert suggested, "the example needs suggested steps"

    response = get_pdf(as_clinician, workup_a)

    assert response.content.startswith(b"%PDF-")
    text = " ".join(pdf_pages(response.content))
    assert workup_a.patient.mrn in text
    for step in spec.steps:
        assert words(step.title) in text, f"{step.title!r} is missing from the PDF"
    assert "Suggested next steps" in text
    for title in suggested:
        assert words(title) in text
    assert words(spec.disclaimer) in text
    assert 'attachment; filename="workup-' in response["Content-Disposition"]
    assert workup_a.patient.mrn not in response["Content-Disposition"]


def test_every_pdf_page_says_who_printed_it_that_it_is_not_a_diagnosis_and_page_x_of_y(
    as_clinician, clinician_a, workup_a
):
    worked_up(workup_a, clinician_a)

    pages = pdf_pages(get_pdf(as_clinician, workup_a).content)

    assert len(pages) >= 2, "the example should print on more than one page"
    printer = clinician_a.get_full_name()
    for number, text in enumerate(pages, start=1):
        assert f"Printed by {printer} on " in text
        assert "not a diagnosis" in text
        assert f"Page {number} of {len(pages)}" in text
    for text in pages[1:]:  # the first page shows the patient in full instead
        assert f"MRN {workup_a.patient.mrn}" in text


def test_the_pdf_is_a4_by_default_and_us_letter_on_request(as_clinician, workup_a):
    a4 = PdfReader(io.BytesIO(get_pdf(as_clinician, workup_a).content))
    letter = PdfReader(io.BytesIO(get_pdf(as_clinician, workup_a, paper="letter").content))

    assert tuple(round(v) for v in a4.pages[0].mediabox[2:]) == A4_POINTS
    assert tuple(round(v) for v in letter.pages[0].mediabox[2:]) == LETTER_POINTS
    assert as_clinician.get(pdf_url(workup_a), {"paper": "tabloid"}).status_code == 404


def test_a_declined_step_shows_its_reason_on_the_page_and_in_the_pdf(
    as_clinician, clinician_a, workup_a
):
    mark(workup_a, clinician_a, "medical_alert_id", "declined", "Prefers a wallet card.")

    html = get_summary(as_clinician, workup_a)
    text = " ".join(pdf_pages(get_pdf(as_clinician, workup_a).content))

    step = re.search(r'id="step-medical_alert_id">(.*?)</div>', html, re.S).group(1)
    assert "Declined by the patient" in step
    assert "Prefers a wallet card." in step
    assert "Declined by the patient. Reason: Prefers a wallet card." in text


def test_a_step_not_indicated_is_shown_with_its_reason_never_dropped(
    as_clinician, clinician_a, workup_a, spec
):
    mark(workup_a, clinician_a, "dexa", "not_indicated", "DEXA done last month elsewhere.")

    html = get_summary(as_clinician, workup_a)

    step = re.search(r'id="step-dexa">(.*?)</div>', html, re.S).group(1)
    assert escape(spec.step("dexa").title) in step
    assert "Not indicated" in step
    assert "DEXA done last month elsewhere." in step


def test_a_step_not_indicated_by_a_rule_shows_the_rule(as_clinician, clinician_a, site_a, spec):
    child = writes.open_workup(
        patient=PatientFactory(site=site_a, birth_date=years_ago(6)), user=clinician_a
    )
    checklist = reads.load_state(child).checklist()
    ruled_out = [i for i in checklist.items if i.state == "not_indicated" and i.not_indicated]
    assert ruled_out, "a child's workup has steps that rules mark not indicated"

    html = get_summary(as_clinician, child)

    for item in ruled_out:
        step = re.search(rf'id="step-{item.code}">(.*?)</div>', html, re.S).group(1)
        assert "Not indicated" in step
        for reason in item.not_indicated:
            assert f"{reason.code}: " in step
            assert escape(reason.rationale) in step


def save(workup, user, step_code, values, *, note="", days_ago=0):
    workup.refresh_from_db()
    writes.record_step(
        workup=workup,
        step_code=step_code,
        values=values,
        performed_on=timezone.localdate() - timedelta(days=days_ago),
        note=note,
        user=user,
        expected_version=workup.version,
    )


def long_workup(workup, user):
    """Enough results and notes for several pages, with long free text."""
    worked_up(workup, user)
    for days in range(1, 13):
        save(
            workup,
            user,
            "serum_tryptase",
            {"value_ng_ml": 20.0 + days, "is_baseline": days % 3 != 0},
            days_ago=days * 20,
            note="Drawn at the outside laboratory; see their report. " * (days % 4),
        )
    note = ("Long clinical note about the sample and its handling. " * 12) + UNBROKEN
    save(workup, user, "bone_marrow_biopsy", {"mc_aggregates_ge15": True}, note=note)
    save(workup, user, "physical_exam", _no_organomegaly(), note=UNBROKEN)
    return workup


def _no_organomegaly():
    return {"hepatomegaly": False, "splenomegaly": False, "lymphadenopathy": False}


def pdf_layout(workup, user, paper):
    """The laid-out PDF pages of a workup's summary."""
    request = RequestFactory().get("/")
    request.user = user
    html = render_to_string(
        printing.SUMMARY_TEMPLATE,
        printing.summary_context(request, workup, for_pdf=True),
    )
    return pdf.render_document(html, paper=paper)


def boxes(page):
    # WeasyPrint has no public box tree; its Page keeps the root box here.
    return page._page_box.descendants()


@pytest.mark.parametrize("paper", ["a4", "letter"])
def test_a_step_never_splits_across_two_pages(clinician_a, workup_a, spec, paper):
    long_workup(workup_a, clinician_a)

    document = pdf_layout(workup_a, clinician_a, paper)

    assert len(document.pages) >= 3
    pages_of_step = defaultdict(set)
    for number, page in enumerate(document.pages):
        for box in boxes(page):
            element_id = box.element.get("id", "") if box.element is not None else ""
            if element_id.startswith("step-"):
                pages_of_step[element_id].add(number)
    assert set(pages_of_step) == {f"step-{step.code}" for step in spec.steps}
    split = {step: pages for step, pages in pages_of_step.items() if len(pages) > 1}
    assert not split, f"steps split across pages: {split}"


@pytest.mark.parametrize("paper", ["a4", "letter"])
def test_long_notes_wrap_within_the_printed_width(clinician_a, workup_a, paper):
    long_workup(workup_a, clinician_a)

    document = pdf_layout(workup_a, clinician_a, paper)

    overflowing = []
    for number, page in enumerate(document.pages):
        right_edge = page.width - SIDE_MARGIN_MM * MM + 0.5
        for box in boxes(page):
            if box.element is None or box.element_tag == "html":
                continue
            if box.position_x + box.margin_width() > right_edge:
                overflowing.append((number, box.element_tag, box.element.get("class")))
    assert not overflowing, f"boxes run past the right margin: {overflowing[:5]}"


# --- the page -----------------------------------------------------------------------------


def test_the_page_shows_the_patient_the_protocol_and_every_step_in_order(
    as_clinician, clinician_a, workup_a, spec
):
    worked_up(workup_a, clinician_a)
    patient = workup_a.patient

    html = get_summary(as_clinician, workup_a)
    text = html_words(html)

    assert patient.site.name in text
    assert f"{patient.family_name}, {patient.given_name}" in text
    assert f"MRN {patient.mrn}" in text
    assert f"Born {patient.birth_date:%d %b %Y} (age {patient.age_text})" in text
    assert f"Sex: {patient.get_sex_display()}" in text
    assert f"{workup_a.protocol.title}, version {workup_a.protocol.version}" in text
    positions = [html.index(f'id="step-{step.code}"') for step in spec.steps]
    assert positions == sorted(positions), "steps are not in protocol order"
    assert f"Printed by {clinician_a.get_full_name()} on " in text
    assert words(spec.disclaimer) in text


def test_the_page_shows_who_recorded_each_result_with_its_date_and_unit(
    as_clinician, clinician_a, workup_a
):
    record(
        workup_a,
        clinician_a,
        "serum_tryptase",
        {"value_ng_ml": 12.5, "is_baseline": True},
        performed_on=date(2026, 1, 15),
    )

    html = get_summary(as_clinician, workup_a)

    step = html_words(re.search(r'id="step-serum_tryptase">(.*?)</div>', html, re.S).group(1))
    assert "15 Jan 2026" in step
    assert "Serum tryptase: 12.5 ng/mL" in step
    assert f"recorded by {clinician_a.get_full_name()}" in step


def test_dates_and_numbers_read_the_same_on_screen_and_on_paper(
    as_clinician, clinician_a, workup_a
):
    record(
        workup_a,
        clinician_a,
        "cbc_diff",
        {"hemoglobin_g_dl": 12.25, "platelets_10e9_l": 250.0, "anc_10e9_l": 3.1},
        performed_on=date(2026, 2, 3),
    )
    screen = html_words(as_clinician.get(reverse("checklist", args=[workup_a.pk])).content.decode())
    paper = html_words(get_summary(as_clinician, workup_a))

    for shown in ("03 Feb 2026", "12.25 g/dL", "250 ×10⁹/L", "3.1 ×10⁹/L"):
        assert words(shown) in screen
        assert words(shown) in paper


def test_the_tryptase_trend_is_an_inline_chart_with_a_table_of_every_value(
    as_clinician, clinician_a, workup_a
):
    today = timezone.localdate()
    for days, value in ((90, 20.0), (60, 24.5), (30, 31.0)):
        record(
            workup_a,
            clinician_a,
            "serum_tryptase",
            {"value_ng_ml": value, "is_baseline": True},
            performed_on=today - timedelta(days=days),
        )

    html = get_summary(as_clinician, workup_a)

    trend = re.search(r'<section class="trend".*?</section>', html, re.S).group(0)
    assert "<svg" in trend and '<path d="M ' in trend
    assert trend.count("<circle") == 3
    for value in ("20 ng/mL", "24.5 ng/mL", "31 ng/mL"):
        assert f"<td>{value}</td>" in trend
    assert "<img" not in trend and "http" not in trend.replace("http://www.w3.org/2000/svg", "")


def test_the_page_has_no_inline_script_or_style_and_no_navigation_bar(as_clinician, workup_a):
    html = get_summary(as_clinician, workup_a)

    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script"
    assert " style=" not in html and "<style" not in html
    assert re.search(r'<script src="[^"]*js/print\.js"', html)
    assert 'data-action="print"' in html
    assert 'class="navbar' not in html  # its own print base, not base.html


def test_the_checklist_page_offers_print_and_pdf(as_clinician, workup_a):
    html = as_clinician.get(reverse("checklist", args=[workup_a.pk])).content.decode()

    assert f'href="{summary_url(workup_a)}#print" data-action="print">Print</a>' in html
    assert f'href="{pdf_url(workup_a)}">Download PDF</a>' in html


@pytest.mark.parametrize("stage", ["just opened", "worked up"])
def test_the_summary_never_states_a_diagnosis(as_clinician, clinician_a, workup_a, stage):
    if stage == "worked up":
        worked_up(workup_a, clinician_a)
    html = get_summary(as_clinician, workup_a)
    # Citations are titles of papers ("... the diagnosis of ..."), not statements about the patient.
    html = re.sub(r'<section class="sources".*?</section>', " ", html, flags=re.S)
    text = html_words(html).lower()

    stated = [phrase for phrase in DIAGNOSTIC_PHRASES if phrase in text]
    assert not stated, f"the summary states a diagnosis: {stated}"
    assert "suggested next step" in text
    assert "documented" in text


# --- who may print ------------------------------------------------------------------------


@pytest.mark.parametrize("url", [summary_url, pdf_url])
def test_a_viewer_may_print(client, viewer_a, workup_a, url):
    client.force_login(viewer_a)

    assert client.get(url(workup_a)).status_code == 200


@pytest.mark.parametrize("url", [summary_url, pdf_url])
def test_another_sites_user_gets_404(client, clinician_b, workup_a, url):
    client.force_login(clinician_b)

    assert client.get(url(workup_a)).status_code == 404


@pytest.mark.parametrize("url", [summary_url, pdf_url])
def test_anonymous_is_sent_to_log_in(client, workup_a, url):
    response = client.get(url(workup_a))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("url", [summary_url, pdf_url])
def test_printing_is_a_read_only_get(as_clinician, workup_a, url):
    assert as_clinician.post(url(workup_a)).status_code == 405


@pytest.mark.parametrize(("url", "action"), [(summary_url, "print"), (pdf_url, "pdf")])
def test_each_print_and_pdf_is_recorded_in_the_access_log(
    as_clinician, clinician_a, workup_a, url, action
):
    as_clinician.get(url(workup_a))
    as_clinician.get(url(workup_a))

    events = AuditEvent.objects.filter(action=action, workup_id=workup_a.pk)
    assert events.count() == 2
    assert {e.user_id for e in events} == {clinician_a.pk}
    assert {e.patient_id for e in events} == {workup_a.patient_id}


def test_a_refused_print_is_not_recorded_as_a_print(client, clinician_b, workup_a):
    client.force_login(clinician_b)
    client.get(summary_url(workup_a))
    client.get(pdf_url(workup_a))

    assert not AuditEvent.objects.filter(action__in=["print", "pdf"]).exists()


# --- query counts -------------------------------------------------------------------------


def count_queries(client, url) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


@pytest.mark.parametrize("url", [summary_url, pdf_url])
def test_the_query_count_does_not_grow_with_the_records_of_a_workup(
    as_clinician, clinician_a, site_a, url
):
    small = writes.open_workup(
        patient=PatientFactory(site=site_a, birth_date=years_ago(50)), user=clinician_a
    )
    large = writes.open_workup(
        patient=PatientFactory(site=site_a, birth_date=years_ago(50)), user=clinician_a
    )
    record(small, clinician_a, "serum_tryptase", {"value_ng_ml": 9.0, "is_baseline": True})
    worked_up(large, clinician_a)
    for days in range(1, 9):
        record(
            large,
            clinician_a,
            "serum_tryptase",
            {"value_ng_ml": 20.0 + days, "is_baseline": days % 2 == 0},
            performed_on=timezone.localdate() - timedelta(days=days),
        )
    mark(large, clinician_a, "dexa", "ordered", "")
    mark(large, clinician_a, "medical_alert_id", "declined", "Not wanted.")
    count_queries(as_clinician, url(small))  # warm the protocol cache

    assert count_queries(as_clinician, url(large)) == count_queries(as_clinician, url(small))


# --- the PDF renderer touches only local files --------------------------------------------


def test_the_pdf_stylesheet_is_read_from_disk_through_the_staticfiles_finders():
    path = pdf.static_file_for(pdf.BASE_URL + "static/css/print.css")

    assert path is not None and path.name == "print.css" and path.is_file()


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org/static/css/print.css",
        "http://127.0.0.1:8000/static/css/print.css",
        "file:///etc/passwd",
        "data:text/css,body{}",
        pdf.BASE_URL + "static/../config/settings.py",
        pdf.BASE_URL + "static/css/../../manage.py",
        pdf.BASE_URL + "media/upload.png",
        pdf.BASE_URL + "static/css/does-not-exist.css",
    ],
)
def test_the_pdf_renderer_refuses_anything_but_a_local_static_file(url):
    assert pdf.static_file_for(url) is None
    with pytest.raises(pdf.RefusedURL):
        pdf.local_fetcher().fetch(url)


def test_a_page_asking_for_a_remote_file_still_renders_without_fetching_it(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the PDF renderer tried to reach the network")

    monkeypatch.setattr("urllib.request.OpenerDirector.open", no_network)
    html = (
        '<html><head><link rel="stylesheet" href="https://example.org/x.css"></head>'
        '<body><p>Hello</p><img src="http://example.org/logo.png"></body></html>'
    )

    document = pdf.render_pdf(html)

    assert "Hello" in " ".join(pdf_pages(document))
