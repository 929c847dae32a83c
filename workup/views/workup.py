"""One workup: its checklist, a step's form, marks (declined, done elsewhere) and the
adult-pathway choice. Every save goes through records.writes; a refused save (someone
saved first) shows what changed and keeps what this user typed."""

from __future__ import annotations

import time

from django.contrib import messages
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from workup import reads
from workup.audit import trail
from workup.core.checklist import record_values
from workup.models import AuditEvent, StepMark
from workup.protocols.cache import get_spec
from workup.records import writes
from workup.views.audit import changes_since
from workup.web import page_cache
from workup.web.access import can_write_workup, get_workup_for_user, require_write_workup
from workup.web.forms import AdultPathwayForm, MarkForm, StepForm

# Only decides whether to offer the adult-pathway override (D14); the rules use
# the protocol's own definition of adult.
ADULT_AGE_YEARS = 18


@require_POST
def adult_pathway(request, workup_id: int):
    """D14: move a post-pubertal adolescent to the adult pathway (or back), with a reason."""
    workup = get_workup_for_user(request.user, workup_id, with_marks=True)
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
            read=reads.load_read_state(workup),
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
            read=state,
        )
    except writes.WorkupConflict:
        return _conflict_page(request, workup, step, form)
    _announce(request, step.title, result)
    return redirect(reverse("checklist", args=[workup.pk]) + f"#step-{step.code}")


def _conflict_page(request, workup, step, refused_form, *, typed_mark=None):
    """Someone saved first: show what they changed, keep what this user typed, save nothing.

    A refused result keeps the typed values in the step form; a refused mark keeps the
    chosen status and reason (`typed_mark`) and offers an empty step form.
    """
    workup.refresh_from_db()
    state = reads.load_state(workup)
    since = refused_form.cleaned_data.get("loaded_at")
    # A fresh token: saving again now is a deliberate choice made after seeing the changes.
    fresh = {"workup_version": str(workup.version), "loaded_at": str(time.time())}
    if typed_mark is None:
        data = request.POST.copy()
        for name, value in fresh.items():
            data[name] = value  # replaces; QueryDict.update would append
        form = StepForm(data, step=step, birth_date=workup.patient.birth_date)
    else:
        form = StepForm(initial=fresh, step=step, birth_date=workup.patient.birth_date)
    return _send_back(
        request,
        workup,
        state,
        step,
        form,
        status=409,
        conflict=changes_since(workup, since, state.spec),
        mark_typed=typed_mark,
    )


def _refused_mark_page(request, workup, step):
    """A mark that cannot be saved comes back on the step page with the status and the reason
    as typed (a redirect would lose them), the errors above, and nothing saved."""
    form = StepForm(
        initial={"workup_version": workup.version, "loaded_at": time.time()},
        step=step,
        birth_date=workup.patient.birth_date,
    )
    typed = {"status": request.POST.get("status", ""), "reason": request.POST.get("reason", "")}
    state = reads.load_read_state(workup)
    return _send_back(request, workup, state, step, form, status=400, mark_typed=typed)


def _send_back(request, workup, state, step, form, **page):
    """The step page again, for entries that were not saved (`page`: status, conflict, mark)."""
    return _render_step_page(
        request, workup, state, step, form, _editable_record(step, state), **page
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
            "step_references": checklist.references_for(item),
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
    workup = get_workup_for_user(request.user, workup_id, with_marks=True)
    require_write_workup(request.user, workup)
    step = _spec_step(get_spec(workup.protocol), step_code)
    form = MarkForm(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            for error in errors:
                messages.error(request, f"{step.title}: {error}" if field != "__all__" else error)
        return _refused_mark_page(request, workup, step)
    try:
        result = writes.set_mark(
            workup=workup,
            step_code=step.code,
            status=form.cleaned_data["status"],
            reason=form.cleaned_data["reason"].strip(),
            user=request.user,
            expected_version=form.cleaned_data["workup_version"],
            read=reads.load_read_state(workup),
        )
    except writes.WorkupConflict:
        return _conflict_page(request, workup, step, form, typed_mark=form.cleaned_data)
    _announce(request, step.title, result)
    return redirect(reverse("checklist", args=[workup.pk]) + f"#step-{step.code}")


@require_POST
def step_unmark(request, workup_id: int, step_code: str):
    workup = get_workup_for_user(request.user, workup_id, with_marks=True)
    require_write_workup(request.user, workup)
    step = _spec_step(get_spec(workup.protocol), step_code)
    try:
        version = int(request.POST.get("workup_version", ""))
    except ValueError:
        return HttpResponseBadRequest("Missing workup version.")
    try:
        result = writes.clear_mark(
            workup=workup,
            step_code=step.code,
            user=request.user,
            expected_version=version,
            read=reads.load_read_state(workup),
        )
    except writes.WorkupConflict as conflict:
        messages.error(request, str(conflict))
        return redirect("checklist", workup_id=workup.pk)
    _announce(request, step.title, result)
    return redirect(reverse("checklist", args=[workup.pk]) + f"#step-{step.code}")
