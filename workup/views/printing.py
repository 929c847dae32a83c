"""The printed workup summary: a print-ready page and the same page as a PDF.

Both are built from the checklist view-model that the checklist page uses, so
screen and paper never disagree, and both are recorded in the access log.
"""

from __future__ import annotations

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from workup import reads
from workup.audit import trail
from workup.core.checklist import key_results
from workup.core.formatting import format_date, format_datetime
from workup.models import Workup
from workup.printing import pdf, trend
from workup.web.access import get_workup_for_user

SUMMARY_TEMPLATE = "workup/print/summary.html"


@require_GET
@never_cache
def summary(request, workup_id: int):
    workup = get_workup_for_user(request.user, workup_id, with_marks=True)
    response = render(request, SUMMARY_TEMPLATE, summary_context(request, workup, for_pdf=False))
    # Opening the print page counts as printing it: the browser does not say whether
    # the print dialog was confirmed.
    trail.record_access(request, "print", workup)
    return response


@require_GET
@never_cache
def summary_pdf(request, workup_id: int):
    workup = get_workup_for_user(request.user, workup_id, with_marks=True)
    paper = request.GET.get("paper", pdf.DEFAULT_PAPER).lower()
    if paper not in pdf.PAPER_SIZES:
        raise Http404("Unknown paper size.")
    html = render_to_string(
        SUMMARY_TEMPLATE, summary_context(request, workup, for_pdf=True), request=request
    )
    document = pdf.render_pdf(html, paper=paper)
    trail.record_access(request, "pdf", workup)
    response = HttpResponse(document, content_type="application/pdf")
    # No patient identifier in the file name: downloads folders and logs keep it.
    filename = f"workup-{workup.pk}-summary-{timezone.localdate():%Y-%m-%d}.pdf"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def summary_context(request, workup: Workup, *, for_pdf: bool) -> dict:
    state = reads.load_read_state(workup)
    checklist = state.checklist()
    records = [record for item in checklist.items for record in item.records]
    patient = workup.patient
    birth_date = format_date(patient.birth_date)
    return {
        "workup": workup,
        "patient": patient,
        "checklist": checklist,
        "sections": [
            (section.title, [_step_view(item) for item in section.items])
            for section in checklist.sections
        ],
        "trend": trend.trend_chart(state.spec, records),
        # Steps name their disagreements; the texts are printed once, at the end.
        "disagreements": [d for item in checklist.items for d in item.disagreements]
        + checklist.general_disagreements,
        "birth_date": birth_date,
        # Identifies the patient at the top of every printed page.
        "identity_line": f"{patient.family_name}, {patient.given_name} · MRN {patient.mrn}"
        f" · born {birth_date} · {patient.site.name}",
        "opened_on": format_date(timezone.localdate(workup.opened_at)),
        "printed_by": request.user.get_full_name() or request.user.get_username(),
        "printed_at": format_datetime(timezone.localtime()),
        "for_pdf": for_pdf,
    }


def _step_view(item) -> dict:
    """A step with every one of its results, each with its key values (as on the checklist)."""
    return {
        "item": item,
        "results": [
            {"record": record, "values": key_results(item.step, record.values)}
            for record in item.records
        ],
    }
