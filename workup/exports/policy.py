"""Who may export identifiers, and the export settings (all optional).

| setting | meaning | default |
|---|---|---|
| `EXPORT_VIEWER_IDENTIFIERS` | viewers may export MRN, name and birth date | `False` |
| `EXPORT_PSEUDONYM_SECRET` | the secret behind pseudonyms (pseudonym.py) | `SECRET_KEY` |
| `EXPORT_FHIR_SYSTEM_BASE` | base of our identifier and app code systems | `urn:workup` |
| `EXPORT_MRN_SYSTEMS` | {site code: the hospital's MRN identifier system} | `{}` |

Identifiers: a superuser may; a clinician of the site may; a viewer of the site
only if `EXPORT_VIEWER_IDENTIFIERS` is on. Without them, exports carry the
per-site pseudonym instead.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings

from workup.exports.coding import join_system
from workup.exports.fhir import Systems
from workup.models import Membership, Site

DEFAULT_SYSTEM_BASE = "urn:workup"


def viewer_identifiers_allowed() -> bool:
    return bool(getattr(settings, "EXPORT_VIEWER_IDENTIFIERS", False))


def pseudonym_secret() -> str:
    return getattr(settings, "EXPORT_PSEUDONYM_SECRET", "") or settings.SECRET_KEY


def system_base() -> str:
    return getattr(settings, "EXPORT_FHIR_SYSTEM_BASE", "") or DEFAULT_SYSTEM_BASE


def mrn_system(site_code: str) -> str:
    configured = getattr(settings, "EXPORT_MRN_SYSTEMS", {}) or {}
    return configured.get(site_code) or join_system(system_base(), "site", site_code, "mrn")


def identifier_sites(
    user, sites: Iterable[Site], roles: dict[int, str] | None = None
) -> dict[int, bool]:
    """For each site: may this user export identifiers of its patients? One query, none
    when the user's `roles` (site id -> role) are known already."""
    sites = list(sites)
    if user.is_superuser:
        return {site.pk: True for site in sites}
    if roles is None:
        roles = dict(
            Membership.objects.filter(user=user, site__in=sites).values_list("site_id", "role")
        )
    viewers_may = viewer_identifiers_allowed()
    return {
        site.pk: roles.get(site.pk) == Membership.Role.CLINICIAN
        or (roles.get(site.pk) == Membership.Role.VIEWER and viewers_may)
        for site in sites
    }


def may_export_identifiers(
    user, sites: Iterable[Site], roles: dict[int, str] | None = None
) -> bool:
    """True if the user may export identifiers at every one of these sites (and there is one)."""
    allowed = identifier_sites(user, sites, roles)
    return bool(allowed) and all(allowed.values())


def fhir_systems(site_code: str) -> Systems:
    return Systems(
        mrn=mrn_system(site_code),
        patient_pseudonym=join_system(system_base(), "site", site_code, "patient-pseudonym"),
        workup_id=join_system(system_base(), "site", site_code, "workup"),
        workup_pseudonym=join_system(system_base(), "site", site_code, "workup-pseudonym"),
        checklist_state=join_system(system_base(), "checklist-state"),
    )
