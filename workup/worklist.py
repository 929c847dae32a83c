"""The worklist query: one page of the user's patients with their open workup's snapshot.

One query per page, whatever the number of patients: scoped by site id (the list
comes from the user's memberships, already loaded), sorted and paged by keyset on
(family_name, given_name, id) with indexes for both, the open workup joined in
(at most one per patient, a database constraint), and the search a prefix range
on indexed search keys. Nothing here evaluates a rule: progress and suggestions
are the columns the service layer keeps up to date on every write.
"""

from __future__ import annotations

from django.db.models import Exists, F, FilteredRelation, OuterRef, Q, QuerySet

from . import keyset
from .models import Patient, Workup, WorkupSuggestion
from .search_keys import prefix_range, search_key

SORT_KEY = ("family_name", "given_name", "id")


def scoped_patients(site_ids: list[int] | None) -> QuerySet:
    """All patients (site_ids None: a superuser) or those of these sites."""
    patients = Patient.objects.all()
    return patients if site_ids is None else patients.filter(site_id__in=site_ids)


def matching(patients: QuerySet, search: str) -> QuerySet:
    """MRN, family name or given name starting with the term (case and accents ignored)."""
    term = search_key(search)
    if not term:
        return patients
    low, high = prefix_range(term)
    return patients.filter(
        Q(mrn_key__gte=low, mrn_key__lt=high)
        | Q(family_key__gte=low, family_key__lt=high)
        | Q(given_key__gte=low, given_key__lt=high)
    )


def with_step_in_state(
    patients: QuerySet, step_code: str, state: str = WorkupSuggestion.State.SUGGESTED
) -> QuerySet:
    """Patients whose open workup has the step suggested (or "not yet"), by the indexed rows."""
    return patients.filter(
        Exists(
            WorkupSuggestion.objects.filter(
                workup__patient=OuterRef("pk"),
                workup__status=Workup.Status.OPEN,
                step_code=step_code,
                state=state,
            )
        )
    )


def with_open_workup(patients: QuerySet) -> QuerySet:
    """Each patient with the snapshot columns of their open workup (None without one)."""
    return patients.annotate(
        open_workup=FilteredRelation("workups", condition=Q(workups__status=Workup.Status.OPEN)),
        workup_id=F("open_workup__id"),
        progress_done=F("open_workup__progress_done"),
        progress_applicable=F("open_workup__progress_applicable"),
        suggested_steps=F("open_workup__suggested_steps"),
        not_yet_steps=F("open_workup__not_yet_steps"),
        last_change_at=F("open_workup__last_change_at"),
    )


def worklist_page(
    *,
    site_ids: list[int] | None,
    search: str,
    step_code: str,
    step_state: str = WorkupSuggestion.State.SUGGESTED,
    cursor: keyset.Cursor,
    size: int,
) -> keyset.KeysetPage:
    scope = scoped_patients(site_ids)
    patients = matching(scope, search)
    if step_code:
        patients = with_step_in_state(patients, step_code, step_state)
    return keyset.page(with_open_workup(patients), cursor, key=SORT_KEY, size=size, boundary=scope)
