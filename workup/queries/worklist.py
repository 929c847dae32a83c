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

from workup.core.search_keys import prefix_range, search_key
from workup.models import Patient, Workup, WorkupSuggestion
from workup.queries import keyset

SORT_KEY = ("family_name", "given_name", "id")


def scoped_patients(site_ids: list[int] | None) -> QuerySet:
    """All patients (site_ids None: a superuser) or those of these sites."""
    patients = Patient.objects.all()
    return patients if site_ids is None else patients.filter(site_id__in=site_ids)


def search_q(search: str, *, through: str = "") -> Q | None:
    """MRN, family name or given name starting with the term (case and accents ignored).

    `through` reaches the patient from another model ("patient__" from a workup), so the
    worklist and the CSV export that mirrors it find exactly the same patients.
    """
    term = search_key(search)
    if not term:
        return None
    low, high = prefix_range(term)
    return (
        Q(**{f"{through}mrn_key__gte": low, f"{through}mrn_key__lt": high})
        | Q(**{f"{through}family_key__gte": low, f"{through}family_key__lt": high})
        | Q(**{f"{through}given_key__gte": low, f"{through}given_key__lt": high})
    )


def matching(patients: QuerySet, search: str) -> QuerySet:
    condition = search_q(search)
    return patients if condition is None else patients.filter(condition)


def parse_step_filter(value: str, known_steps) -> tuple[str, str]:
    """ "bone_marrow_biopsy" (suggested) or "not_yet:bone_marrow_biopsy" -> (code, state).

    Unknown codes or states give ("", ...): only known values reach a query.
    """
    state, _, code = (value or "").rpartition(":")
    state = state or WorkupSuggestion.State.SUGGESTED
    if code not in known_steps or state not in WorkupSuggestion.State.values:
        return "", WorkupSuggestion.State.SUGGESTED
    return code, state


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
