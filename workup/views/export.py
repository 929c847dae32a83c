"""Exports: the worklist's CSV and data dictionary, and one workup's FHIR Bundle.

Thin: the workups come from `access` (the user's sites only), the files from the
pure builders in `workup/exports/`, and every export is written to the audit trail
before a byte leaves. See docs/exports.md.
"""

from __future__ import annotations

import json
import re

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from workup import reads
from workup.audit import trail
from workup.exports import csv_export, fhir, policy
from workup.exports.coding import coding_for
from workup.exports.loading import iter_exports, load_export
from workup.models import AuditEvent, Protocol, Workup
from workup.protocols.cache import get_spec
from workup.queries.worklist import parse_step_filter, search_q
from workup.views.worklist import SEARCH_SESSION_KEY
from workup.web.access import get_workup_for_user, sites_for_user, workups_for_user

TRUE_VALUES = ("1", "true", "yes", "on")
# Site and protocol codes are slugs: anything else is not one (and never reaches a query).
_SLUG = re.compile(r"[-a-zA-Z0-9_]+")


def _slug_param(request, name: str, default: str = "") -> str:
    value = request.GET.get(name, "") or default
    if value and not _SLUG.fullmatch(value):
        raise Http404(f"No such {name}.")
    return value


def wants_identifiers(request) -> bool:
    return request.GET.get("identifiers", "").lower() in TRUE_VALUES


def _protocol(request) -> Protocol:
    """`?protocol=CODE&version=N`; by default the current published version."""
    code = _slug_param(request, "protocol", reads.default_protocol_code())
    version = request.GET.get("version", "")
    if not version:
        try:
            return reads.current_protocol(code)
        except reads.NoPublishedProtocol:
            raise Http404("No published version of this protocol.") from None
    if not version.isdecimal() or len(version) > 9:  # never an out-of-range integer in SQL
        raise Http404("No such protocol version.")
    try:
        return Protocol.objects.get(code=code, version=int(version))
    except Protocol.DoesNotExist:
        raise Http404("No such protocol version.") from None


def _sites(request):
    sites = sites_for_user(request.user)
    site_code = _slug_param(request, "site")
    if site_code:
        sites = sites.filter(code=site_code)
        if not sites.exists():
            raise Http404("No such site among yours.")
    return list(sites)


def _require_identifier_permission(request, sites, what: str) -> None:
    if not policy.may_export_identifiers(request.user, sites):
        trail.record_denied(request, f"Denied: {what} with identifiers (role does not allow it)")
        raise PermissionDenied(
            "Your role may export only pseudonymised data: untick 'include identifiers'."
        )


def worklist_workups(request, protocol: Protocol, sites, step: str = ""):
    """The workups the worklist shows, with its filters: step (query string), search (session)."""
    workups = workups_for_user(request.user).filter(
        protocol=protocol, patient__site__in=[s.pk for s in sites]
    )
    # The worklist's own search: accent-folded keys, the same patients found.
    condition = search_q(request.session.get(SEARCH_SESSION_KEY, ""), through="patient__")
    if condition is not None:
        workups = workups.filter(condition)
    code, state = parse_step_filter(step, get_spec(protocol).steps_by_code)
    if code:
        workups = workups.filter(
            status=Workup.Status.OPEN, suggestions__step_code=code, suggestions__state=state
        )
    return workups


def _filename(protocol: Protocol, kind: str) -> str:
    # No patient identifier in a file name: downloads folders and logs keep it.
    return f"workups-{protocol.code}-v{protocol.version}-{kind}-{timezone.localdate():%Y-%m-%d}.csv"


@require_GET
def workups_csv(request):
    protocol = _protocol(request)
    sites = _sites(request)
    identifiers = wants_identifiers(request)
    if identifiers:
        _require_identifier_permission(request, sites, "CSV export")
    spec = get_spec(protocol)
    step = request.GET.get("step", "")
    if step and not parse_step_filter(step, spec.steps_by_code)[0]:
        # Unlike the worklist, which then lists everyone, an export must not widen silently.
        return HttpResponseBadRequest("Unknown step filter.")
    cols = csv_export.columns(spec, coding_for(spec), identifiers=identifiers)
    workups = worklist_workups(request, protocol, sites, step)
    count = workups.count()
    search = request.session.get(SEARCH_SESSION_KEY, "")
    trail.record_event(
        user=request.user,
        action=AuditEvent.Action.EXPORT,
        object_type="workup",
        summary=(
            f"Exported {count} workup(s) as CSV, {protocol.code} v{protocol.version}, "
            f"{'with identifiers' if identifiers else 'pseudonymised'}"
        ),
        changes={
            "format": "csv",
            "protocol": protocol.code,
            "version": protocol.version,
            "sites": [s.code for s in sites],
            "identifiers": identifiers,
            "step_filter": step,
            "search": search,
            "workups": count,
        },
    )
    tz_date = timezone.localdate
    lines = csv_export.stream_workups(
        spec,
        cols,
        iter_exports(workups, spec),
        identifiers=identifiers,
        local_date=tz_date,
    )
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{_filename(protocol, "data")}"'
    return response


@require_GET
def workups_dictionary(request):
    protocol = _protocol(request)
    identifiers = wants_identifiers(request)
    spec = get_spec(protocol)
    cols = csv_export.columns(spec, coding_for(spec), identifiers=identifiers)
    trail.record_event(
        user=request.user,
        action=AuditEvent.Action.EXPORT,
        object_type="workup.protocol",
        object_id=protocol.pk,
        summary=f"Exported the CSV data dictionary of {protocol.code} v{protocol.version}",
        changes={"format": "csv-dictionary", "identifiers": identifiers},
    )
    response = HttpResponse(
        "".join(csv_export.stream_dictionary(cols)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{_filename(protocol, "dictionary")}"'
    return response


@require_GET
def workup_fhir(request, workup_id: int):
    workup = get_workup_for_user(request.user, workup_id)
    identifiers = wants_identifiers(request)
    if identifiers:
        _require_identifier_permission(request, [workup.patient.site], "FHIR export")
    spec = get_spec(workup.protocol)
    item = load_export(workup, spec, with_notes=identifiers)
    bundle = fhir.build_bundle(
        spec,
        coding_for(spec),
        item,
        identifiers=identifiers,
        systems=policy.fhir_systems(workup.patient.site.code),
        generated_at=timezone.now(),
    )
    # Never send an invalid Bundle to a health record: a bug here is a 500, not bad data.
    fhir.validate_bundle(bundle)
    trail.record_access(
        request,
        AuditEvent.Action.EXPORT,
        workup,
        summary=(
            "Exported the FHIR bundle "
            f"({'with identifiers' if identifiers else 'pseudonymised'}) {request.path}"
        ),
    )
    return HttpResponse(
        json.dumps(bundle, ensure_ascii=False), content_type=f"{fhir.FHIR_JSON}; charset=utf-8"
    )
