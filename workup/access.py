"""The one place that decides who may see and change what.

Views fetch patients and workups only through these helpers. Another site's
object is a 404 (never a 403 that would confirm it exists); a viewer who tries
to write gets a 403.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404

from .models import Membership, Patient, Site, Workup


def sites_for_user(user):
    if user.is_superuser:
        return Site.objects.all()
    return Site.objects.filter(memberships__user=user)


def writable_sites_for_user(user):
    if user.is_superuser:
        return Site.objects.all()
    return Site.objects.filter(memberships__user=user, memberships__role=Membership.Role.CLINICIAN)


def patients_for_user(user):
    if user.is_superuser:
        return Patient.objects.all()
    return Patient.objects.for_user(user)


def workups_for_user(user):
    if user.is_superuser:
        return Workup.objects.all()
    return Workup.objects.for_user(user)


def get_patient_for_user(user, patient_id: int) -> Patient:
    return get_object_or_404(patients_for_user(user).select_related("site"), pk=patient_id)


def get_workup_for_user(user, workup_id: int) -> Workup:
    return get_object_or_404(
        workups_for_user(user).select_related("patient__site", "protocol"), pk=workup_id
    )


def can_write(user, site: Site) -> bool:
    if user.is_superuser:
        return True
    return Membership.objects.filter(user=user, site=site, role=Membership.Role.CLINICIAN).exists()


def require_write(user, site: Site) -> None:
    if not can_write(user, site):
        raise PermissionDenied("Your role at this site is read-only.")
