"""The workup's History page and the audit report for admins."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db.models import Q
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from workup.audit import trail
from workup.audit.display import change_lines
from workup.exports.csv_export import stream_rows
from workup.models import AuditEvent, StepMark, StepRecord
from workup.protocols.cache import get_spec
from workup.web.access import get_workup_for_user

CHANGE_ACTIONS = (AuditEvent.Action.CREATE, AuditEvent.Action.UPDATE, AuditEvent.Action.DELETE)
HISTORY_PAGE_SIZE = 50
REPORT_PAGE_SIZE = 100


@require_GET
def workup_history(request, workup_id: int):
    """Who changed what and when, old and new values; readable by the site's users."""
    workup = get_workup_for_user(request.user, workup_id)
    events = (
        AuditEvent.objects.filter(action__in=CHANGE_ACTIONS)
        .filter(
            Q(workup_id=workup.pk) | Q(object_type="workup.patient", patient_id=workup.patient_id)
        )
        .order_by("-id")
    )
    page = Paginator(events, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    spec = get_spec(workup.protocol)
    steps = _step_codes(page.object_list)
    rows = [
        (event, change_lines(event.changes, spec, steps.get((event.object_type, event.object_id))))
        for event in page.object_list
    ]
    trail.record_access(request, AuditEvent.Action.VIEW, workup, summary="Viewed workup history")
    return render(
        request,
        "workup/history.html",
        {"workup": workup, "patient": workup.patient, "page": page, "rows": rows},
    )


def _step_codes(events) -> dict[tuple[str, str], str]:
    """Which step each result or mark event is about (two queries for a whole page)."""
    ids = {"workup.steprecord": set(), "workup.stepmark": set()}
    for event in events:
        if event.object_type in ids:
            ids[event.object_type].add(int(event.object_id))
    codes = {}
    for object_id, code in StepRecord.objects.filter(pk__in=ids["workup.steprecord"]).values_list(
        "pk", "step__code"
    ):
        codes[("workup.steprecord", str(object_id))] = code
    # Marks are deleted when undone: their history still names the step.
    for object_id, code in StepMark.history.filter(id__in=ids["workup.stepmark"]).values_list(
        "id", "step__code"
    ):
        codes[("workup.stepmark", str(object_id))] = code
    return codes


def changes_since(workup, since: float | None, spec, limit: int = 50):
    """Changes to a workup after `since` (epoch seconds), in words, oldest first."""
    events = AuditEvent.objects.filter(workup_id=workup.pk, action__in=CHANGE_ACTIONS)
    if since:
        events = events.filter(at__gt=datetime.fromtimestamp(since, tz=UTC))
    events = list(events.order_by("-id")[:limit])[::-1]
    steps = _step_codes(events)
    return [
        (event, change_lines(event.changes, spec, steps.get((event.object_type, event.object_id))))
        for event in events
    ]


EARLIEST = date(1900, 1, 1)
LATEST = date(2999, 12, 31)


class AuditFilterForm(forms.Form):
    user = forms.CharField(label="Username", required=False, max_length=150)
    patient = forms.IntegerField(label="Patient id", required=False, min_value=1)
    # Bounded: a date near year 1 or 9999 overflows when moved to UTC.
    start = forms.DateField(
        label="From",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=[MinValueValidator(EARLIEST), MaxValueValidator(LATEST)],
    )
    end = forms.DateField(
        label="To",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=[MinValueValidator(EARLIEST), MaxValueValidator(LATEST)],
    )
    action = forms.ChoiceField(
        label="Action", required=False, choices=[("", "Any"), *AuditEvent.Action.choices]
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("start") and cleaned.get("end") and cleaned["start"] > cleaned["end"]:
            self.add_error("end", "The end date is before the start date.")
        return cleaned

    def filter(self, events):
        data = self.cleaned_data
        if data.get("user"):
            events = events.filter(username=data["user"])
        if data.get("patient"):
            events = events.filter(patient_id=data["patient"])
        if data.get("action"):
            events = events.filter(action=data["action"])
        zone = timezone.get_current_timezone()
        if data.get("start"):
            events = events.filter(at__gte=datetime.combine(data["start"], time.min, zone))
        if data.get("end"):
            events = events.filter(at__lte=datetime.combine(data["end"], time.max, zone))
        return events


def _require_auditor(request) -> None:
    if not request.user.has_perm("workup.view_auditevent"):
        trail.record_denied(
            request, f"Denied: the audit report {request.path} (needs the audit permission)"
        )
        raise PermissionDenied("The audit report is for administrators.")


@require_GET
def audit_report(request):
    _require_auditor(request)
    form = AuditFilterForm(request.GET or None)
    events = AuditEvent.objects.order_by("-id")
    if form.is_bound and form.is_valid():
        events = form.filter(events)
    elif form.is_bound:
        events = events.none()
    page = Paginator(events, REPORT_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "workup/audit_report.html",
        {
            "form": form,
            "page": page,
            "query": query.urlencode(),
            "usernames": get_user_model()
            .objects.order_by("username")
            .values_list("username", flat=True),
        },
    )


@require_GET
def audit_report_csv(request):
    _require_auditor(request)
    form = AuditFilterForm(request.GET or None)
    events = AuditEvent.objects.order_by("id")
    if form.is_bound:
        events = form.filter(events) if form.is_valid() else events.none()
    trail.record_event(
        user=request.user, action=AuditEvent.Action.EXPORT, summary="Exported the audit report"
    )
    header = [
        "id",
        "at_utc",
        "username",
        "action",
        "object_type",
        "object_id",
        "patient_id",
        "workup_id",
        "summary",
        "changes",
        "hash",
    ]

    # stream_rows neutralises every cell: anyone can type a username at the login page.
    rows = (
        [
            e.pk,
            e.at.isoformat(),
            e.username,
            e.action,
            e.object_type,
            e.object_id,
            e.patient_id or "",
            e.workup_id or "",
            e.summary,
            json.dumps(e.changes, ensure_ascii=False, sort_keys=True),
            e.hash or "",
        ]
        for e in events.iterator(chunk_size=2000)
    )
    response = StreamingHttpResponse(
        stream_rows(header, rows), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = 'attachment; filename="audit-report.csv"'
    return response
