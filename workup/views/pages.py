"""Thin views: fetch through access helpers, call services, render."""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.db import connection, transaction
from django.http import Http404, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from workup import reads
from workup.audit import trail
from workup.core.checklist import record_values
from workup.models import AuditEvent, StepMark
from workup.protocols.cache import get_spec, newest_published
from workup.queries.keyset import Cursor
from workup.queries.worklist import parse_step_filter, worklist_page
from workup.records import writes
from workup.views.audit import changes_since
from workup.web import page_cache
from workup.web.access import (
    can_write,
    can_write_workup,
    get_patient_for_user,
    get_workup_for_user,
    require_write,
    require_write_workup,
    site_access,
    sites_for_user,
    writable_sites_for_user,
)
from workup.web.forms import AdultPathwayForm, MarkForm, PatientForm, SearchForm, StepForm

SEARCH_SESSION_KEY = "worklist_search"
# Only decides whether to offer the adult-pathway override (D14); the rules use
# the protocol's own definition of adult.
ADULT_AGE_YEARS = 18


@login_not_required
@require_GET
@never_cache
def healthz(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:  # noqa: BLE001 - any database failure means "not healthy"
        return JsonResponse({"status": "error", "database": "unavailable"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


@require_GET
def about(request):
    """What the checklist is and is not. No patient data: the lightest signed-in page."""
    return render(request, "workup/about.html")


@require_GET
def worklist(request):
    """Four queries whatever the number of patients: session, user, memberships, one page."""
    # The search term lives in the session, not in the URL: patient identifiers
    # never appear in query strings (and so never in proxy or server logs).
    search = request.session.get(SEARCH_SESSION_KEY, "")
    step_choices = _step_choices()
    step_filter = request.GET.get("step", "")
    # "bone_marrow_biopsy" filters on suggested, "not_yet:bone_marrow_biopsy" on not yet.
    step_code, step_state = parse_step_filter(step_filter, dict(step_choices))
    if not step_code:
        step_filter = ""
    access = site_access(request.user)
    page = worklist_page(
        site_ids=access.site_ids,
        search=search,
        step_code=step_code,
        step_state=step_state,
        cursor=Cursor.from_query(request.GET),
        size=settings.WORKLIST_PAGE_SIZE,
    )
    sites = {site.pk: site for site in access.sites}
    titles = dict(step_choices)
    rows = []
    for patient in page.rows:
        suggested = [titles.get(code, code) for code in patient.suggested_steps or ()]
        not_yet = [titles.get(code, code) for code in patient.not_yet_steps or ()]
        rows.append((patient, sites.get(patient.site_id), suggested, not_yet))
    return render(
        request,
        "workup/worklist.html",
        {
            "page": page,
            "rows": rows,
            "search_form": SearchForm(initial={"q": search}),
            "search": search,
            "step_filter": step_filter,
            "step_choices": step_choices,
            "can_create": access.can_write_somewhere,
            "site_access": access,
        },
    )


def _step_choices():
    protocol = newest_published(reads.DEFAULT_PROTOCOL_CODE)
    if protocol is None:
        return []
    return [(step.code, step.title) for step in get_spec(protocol).steps]


@require_POST
def worklist_search(request):
    form = SearchForm(request.POST)
    term = form.cleaned_data["q"].strip() if form.is_valid() else ""
    if "clear" in request.POST or not term:
        request.session.pop(SEARCH_SESSION_KEY, None)
    else:
        request.session[SEARCH_SESSION_KEY] = term
    return redirect("worklist")


@require_http_methods(["GET", "POST"])
def patient_new(request):
    sites = writable_sites_for_user(request.user)
    if not sites.exists():
        from django.core.exceptions import PermissionDenied

        raise PermissionDenied("You have no site where you may add patients.")
    form = PatientForm(request.POST or None, sites=sites)
    if request.method == "POST" and form.is_valid():
        patient = form.save(commit=False)
        patient.created_by = request.user
        with transaction.atomic():  # the patient and its audit row, or neither
            patient.save()
        messages.success(request, f"Patient {patient} added.")
        return redirect("patient_detail", patient_id=patient.pk)
    return render(
        request,
        "workup/patient_form.html",
        {"form": form, "patient": None},
        status=400 if form.errors else 200,
    )


@require_http_methods(["GET", "POST"])
def patient_detail(request, patient_id: int):
    patient = get_patient_for_user(request.user, patient_id)
    writable = can_write(request.user, patient.site)
    if request.method == "POST":
        require_write(request.user, patient.site)
    form = PatientForm(
        request.POST or None,
        instance=patient,
        sites=writable_sites_for_user(request.user) if writable else sites_for_user(request.user),
    )
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():  # the change and its audit row, or neither
            form.save()
        messages.success(request, "Patient details saved.")
        return redirect("patient_detail", patient_id=patient.pk)
    if not writable:
        for field in form.fields.values():
            field.disabled = True
        form.helper.inputs = []
        form.helper.layout.fields.pop()
    workups = patient.workups.select_related("protocol").order_by("-opened_at")
    if request.method == "GET":
        trail.record_access(request, AuditEvent.Action.VIEW, patient=patient)
    return render(
        request,
        "workup/patient_detail.html",
        {"form": form, "patient": patient, "workups": workups, "can_write": writable},
        status=400 if request.method == "POST" and form.errors else 200,
    )


@require_POST
def workup_open(request, patient_id: int):
    patient = get_patient_for_user(request.user, patient_id)
    require_write(request.user, patient.site)
    try:
        workup = writes.open_workup(patient=patient, user=request.user)
    except reads.NoPublishedProtocol as exc:
        messages.error(request, str(exc))
        return redirect("patient_detail", patient_id=patient.pk)
    return redirect("checklist", workup_id=workup.pk)


@require_POST
def adult_pathway(request, workup_id: int):
    """D14: move a post-pubertal adolescent to the adult pathway (or back), with a reason."""
    workup = get_workup_for_user(request.user, workup_id)
    require_write_workup(request.user, workup)
    form = AdultPathwayForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, f"Adult pathway: {error}")
        return redirect(reverse("checklist", args=[workup.pk]) + "#adult-pathway")
    try:
        result = writes.set_adult_pathway(
            workup=workup,
            enabled=form.cleaned_data["enabled"],
            reason=form.cleaned_data["reason"].strip(),
            user=request.user,
            expected_version=form.cleaned_data["workup_version"],
        )
    except writes.WorkupConflict as conflict:
        messages.error(request, str(conflict))
        return redirect("checklist", workup_id=workup.pk)
    _announce(request, "Adult pathway", result)
    return redirect("checklist", workup_id=workup.pk)


@require_GET
def checklist(request, workup_id: int):
    """Five queries (session, user, workup with marks, results, access event); four when
    this version of the workup's checklist was built before (checklist_cache)."""
    workup = get_workup_for_user(request.user, workup_id, with_marks=True)
    today = timezone.localdate()
    key = page_cache.key_for(workup, today)
    built = page_cache.get_or_build(key, lambda: reads.load_read_state(workup).checklist())
    trail.record_access(request, AuditEvent.Action.VIEW, workup)
    return render(
        request,
        "workup/checklist.html",
        {
            "workup": workup,
            "patient": workup.patient,
            "checklist": built,
            # The part of the page that is the same for everyone is rendered once per key.
            "body_cache_key": page_cache.text_key(key),
            "body_cache_seconds": page_cache.HTML_SECONDS if key else 0,
            "can_write": can_write_workup(request.user, workup),
            "is_child": workup.patient.age_years_on(today) < ADULT_AGE_YEARS,
        },
    )


def _spec_step(state_or_spec, step_code: str):
    spec = getattr(state_or_spec, "spec", state_or_spec)
    try:
        return spec.step(step_code)
    except KeyError:
        raise Http404("No such step in this protocol.") from None


def _announce(request, step_title: str, result: writes.SaveResult) -> None:
    messages.success(request, f"{step_title}: saved.")
    for change in result.changes:
        messages.info(request, change)


def _editable_record(step, state: reads.WorkupState):
    """A step recorded once is edited in place; a repeatable one gains a new record."""
    records = [r for r in state.records if r.step.code == step.code]
    return None if step.repeatable or not records else records[-1]


@require_http_methods(["GET", "POST"])
def step_form(request, workup_id: int, step_code: str):
    workup = get_workup_for_user(request.user, workup_id, with_marks=True)
    state = reads.load_read_state(workup)
    step = _spec_step(state, step_code)
    editing = _editable_record(step, state)
    if request.method == "GET":
        initial = {
            "workup_version": workup.version,
            "loaded_at": time.time(),
            "performed_on": timezone.localdate(),
        }
        if editing:
            initial.update(StepForm.initial_from(step, editing.values))
            initial.update(performed_on=editing.performed_on, note=editing.note)
        form = StepForm(initial=initial, step=step, birth_date=workup.patient.birth_date)
        trail.record_access(request, AuditEvent.Action.VIEW, workup)
        return _render_step_page(request, workup, state, step, form, editing)

    require_write_workup(request.user, workup)
    form = StepForm(request.POST, step=step, birth_date=workup.patient.birth_date)
    if not form.is_valid():
        return _render_step_page(request, workup, state, step, form, editing, status=400)
    try:
        result = writes.record_step(
            workup=workup,
            step_code=step.code,
            values=form.stored_values(),
            performed_on=form.cleaned_data["performed_on"],
            note=form.cleaned_data["note"],
            user=request.user,
            expected_version=form.cleaned_data["workup_version"],
            record=editing,
        )
    except writes.WorkupConflict:
        return _step_conflict(request, workup, step, form)
    _announce(request, step.title, result)
    return redirect(reverse("checklist", args=[workup.pk]) + f"#step-{step.code}")


def _step_conflict(request, workup, step, refused_form):
    """Someone saved first: show what they changed, keep what this user typed, save nothing."""
    workup.refresh_from_db()
    state = reads.load_state(workup)
    since = refused_form.cleaned_data.get("loaded_at")
    other_changes = changes_since(workup, since, state.spec)
    data = request.POST.copy()
    # A fresh token: saving again now is a deliberate choice made after seeing the changes.
    data["workup_version"] = str(workup.version)
    data["loaded_at"] = str(time.time())
    form = StepForm(data, step=step, birth_date=workup.patient.birth_date)
    return _render_step_page(
        request,
        workup,
        state,
        step,
        form,
        _editable_record(step, state),
        status=409,
        conflict=other_changes,
    )


def _render_step_page(
    request, workup, state, step, form, editing, status=200, conflict=None, mark_typed=None
):
    checklist = state.checklist()
    item = next(i for i in checklist.items if i.code == step.code)
    record_rows = [
        {"record": r, "values": record_values(step, r.values)} for r in reversed(item.records)
    ]
    return render(
        request,
        "workup/step_form.html",
        {
            "workup": workup,
            "patient": workup.patient,
            "step": step,
            "item": item,
            # The checklist's reference numbers, so a source reads the same on both pages.
            "checklist": checklist,
            "record_rows": record_rows,
            "form": form,
            "editing": editing,
            "can_write": can_write_workup(request.user, workup),
            "conflict": conflict,
            "mark_choices": StepMark.Status.choices,
            "mark_typed": mark_typed or {},
        },
        status=status,
    )


@require_POST
def step_mark(request, workup_id: int, step_code: str):
    workup = get_workup_for_user(request.user, workup_id)
    require_write_workup(request.user, workup)
    step = _spec_step(get_spec(workup.protocol), step_code)
    form = MarkForm(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            for error in errors:
                messages.error(request, f"{step.title}: {error}" if field != "__all__" else error)
        return redirect(reverse("step_form", args=[workup.pk, step.code]) + "#mark")
    try:
        result = writes.set_mark(
            workup=workup,
            step_code=step.code,
            status=form.cleaned_data["status"],
            reason=form.cleaned_data["reason"].strip(),
            user=request.user,
            expected_version=form.cleaned_data["workup_version"],
        )
    except writes.WorkupConflict:
        return _mark_conflict(request, workup, step, form)
    _announce(request, step.title, result)
    return redirect(reverse("checklist", args=[workup.pk]) + f"#step-{step.code}")


def _mark_conflict(request, workup, step, refused_form):
    """As for results: list what changed, keep the chosen status and the typed reason."""
    workup.refresh_from_db()
    state = reads.load_state(workup)
    since = refused_form.cleaned_data.get("loaded_at")
    form = StepForm(
        initial={"workup_version": workup.version, "loaded_at": time.time()},
        step=step,
        birth_date=workup.patient.birth_date,
    )
    return _render_step_page(
        request,
        workup,
        state,
        step,
        form,
        _editable_record(step, state),
        status=409,
        conflict=changes_since(workup, since, state.spec),
        mark_typed=refused_form.cleaned_data,
    )


@require_POST
def step_unmark(request, workup_id: int, step_code: str):
    workup = get_workup_for_user(request.user, workup_id)
    require_write_workup(request.user, workup)
    step = _spec_step(get_spec(workup.protocol), step_code)
    try:
        version = int(request.POST.get("workup_version", ""))
    except ValueError:
        return HttpResponseBadRequest("Missing workup version.")
    try:
        result = writes.clear_mark(
            workup=workup, step_code=step.code, user=request.user, expected_version=version
        )
    except writes.WorkupConflict as conflict:
        messages.error(request, str(conflict))
        return redirect("checklist", workup_id=workup.pk)
    _announce(request, step.title, result)
    return redirect(reverse("checklist", args=[workup.pk]) + f"#step-{step.code}")
