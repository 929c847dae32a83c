"""The one place that decides who may see and change what.

Views fetch patients and workups only through these helpers. Another site's
object is a 404 (never a 403 that would confirm it exists); a viewer who tries
to write gets a 403.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Value
from django.http import Http404

from workup.audit.trail import record_event
from workup.models import AuditEvent, Membership, Patient, Site, Workup
from workup.queries.marks import marks_json


@dataclass(frozen=True)
class SiteAccess:
    """The user's sites and role at each, from one query: enough to scope a list."""

    sites: tuple[Site, ...]
    roles: dict[int, str]
    everywhere: bool  # a superuser: every site, every patient

    @property
    def site_ids(self) -> list[int] | None:
        """The ids to scope by; None means no scope (a superuser)."""
        return None if self.everywhere else [site.pk for site in self.sites]

    @property
    def can_write_somewhere(self) -> bool:
        return self.everywhere or Membership.Role.CLINICIAN in self.roles.values()


def site_access(user) -> SiteAccess:
    if user.is_superuser:
        return SiteAccess(tuple(Site.objects.order_by("name")), {}, everywhere=True)
    memberships = list(Membership.objects.filter(user=user).select_related("site"))
    return SiteAccess(
        tuple(sorted((m.site for m in memberships), key=lambda site: site.name)),
        {m.site_id: m.role for m in memberships},
        everywhere=False,
    )


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
    patient = patients_for_user(user).select_related("site").filter(pk=patient_id).first()
    if patient is None:
        _not_found(user, Patient, patient_id)
    return patient


def get_workup_for_user(user, workup_id: int, *, with_marks: bool = False) -> Workup:
    """The workup, if the user may see it; it knows whether the user may also write to it.

    with_marks: its marks come in the same query (`workup.marks_json`, see marks_query)."""
    workups = workups_for_user(user).select_related("patient__site", "protocol")
    if with_marks:
        workups = workups.annotate(marks_json=marks_json())
    workup = workups.annotate(user_can_write=_writable_by(user)).filter(pk=workup_id).first()
    if workup is None:
        _not_found(user, Workup, workup_id)
    return workup


def _not_found(user, model, object_id: int):
    """404 either way; an attempt on another site's existing object is audited as denied."""
    if model.objects.filter(pk=object_id).exists():
        record_event(
            user=user,
            action=AuditEvent.Action.DENIED,
            object_type=model._meta.label_lower,
            object_id=object_id,
            summary=f"Denied: {model._meta.verbose_name} {object_id} is outside the user's sites",
        )
    raise Http404(f"No {model._meta.verbose_name} found.")


def _writable_by(user):
    if user.is_superuser:
        return Value(True)
    return Exists(
        Membership.objects.filter(
            user=user, site=OuterRef("patient__site"), role=Membership.Role.CLINICIAN
        )
    )


def can_write_workup(user, workup: Workup) -> bool:
    """Answered by the access query itself when the workup came from get_workup_for_user."""
    known = getattr(workup, "user_can_write", None)
    return bool(known) if known is not None else can_write(user, workup.patient.site)


def require_write_workup(user, workup: Workup) -> None:
    if not can_write_workup(user, workup):
        require_write(user, workup.patient.site)


def can_write(user, site: Site) -> bool:
    if user.is_superuser:
        return True
    return Membership.objects.filter(user=user, site=site, role=Membership.Role.CLINICIAN).exists()


def require_write(user, site: Site) -> None:
    if not can_write(user, site):
        record_event(
            user=user,
            action=AuditEvent.Action.DENIED,
            object_type="workup.site",
            object_id=site.pk,
            summary=f"Denied: write at {site} with a read-only role",
        )
        raise PermissionDenied("Your role at this site is read-only.")
