"""A patient's details (add, view, edit) and opening a workup for them."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from workup import reads
from workup.audit import trail
from workup.models import AuditEvent
from workup.records import writes
from workup.web.access import (
    can_write,
    get_patient_for_user,
    require_write,
    sites_for_user,
    writable_sites_for_user,
)
from workup.web.forms import PatientForm


@require_http_methods(["GET", "POST"])
def patient_new(request):
    sites = writable_sites_for_user(request.user)
    if not sites.exists():
        trail.record_denied(request, "Denied: adding a patient (no site with a clinician role)")
        raise PermissionDenied("You have no site where you may add patients.")
    form = PatientForm(request.POST or None, sites=sites)
    if request.method == "POST" and form.is_valid():
        patient = form.save(commit=False)
        patient.created_by = request.user
        with transaction.atomic():  # the patient and its audit row, or neither
            patient.save()
        messages.success(request, "Patient added.")  # no name: messages travel in a cookie
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
    if request.method == "POST":
        require_write(request.user, patient.site)  # a read-only role: 403, and audited
        writable = True
    else:
        writable = can_write(request.user, patient.site)
    form = PatientForm(
        request.POST or None,
        instance=patient,
        sites=writable_sites_for_user(request.user) if writable else sites_for_user(request.user),
    )
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():  # the change, its audit row and the checklists, or none
            form.save()
            writes.patient_changed(
                patient=patient, fields=set(form.changed_data), user=request.user
            )
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
