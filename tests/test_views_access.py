"""The access ladder, walked for every URL that takes an object id.

The URLs come from the URL resolver, not from a list kept by hand: a new view
with an `<int:...>` id is covered as soon as it is routed. Ladder:

- anonymous: redirected to the login page (GET and POST);
- a clinician of another site, and a protocol admin: 404, the same answer as for
  an id that does not exist (never a 403 that would confirm the object exists);
- a viewer of the site: pages answer 200, writes 403 and change nothing;
- a clinician of the site: pages answer 200, writes succeed and redirect.

A method that a view does not accept answers 405 to everyone alike.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from workup.models import Patient, StepMark, StepRecord, Workup
from workup.protocols import versions

STEP_CODE = "serum_tryptase"
MISSING_ID = 987_654_321
LOGIN_PATH = "/accounts/login/"
_PARAMETER = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")

# Every view we know takes an object id; the walk must find at least these.
KNOWN_ID_VIEWS = {
    "patient_detail",
    "workup_open",
    "checklist",
    "step_form",
    "step_mark",
    "step_unmark",
}


def _walk(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.name


def id_routes() -> list[tuple[str, str]]:
    """(route, url name) of every routed URL that has an `<int:...>` parameter."""
    return [
        (route, name)
        for route, name in _walk(get_resolver().url_patterns)
        if any(m["converter"] == "int" for m in _PARAMETER.finditer(route))
    ]


def fill(route: str, values: dict[tuple[str, str], object]) -> str:
    def replace(match: re.Match) -> str:
        key = (match["converter"] or "str", match["name"])
        if key not in values:
            raise AssertionError(
                f"/{route}: no value for <{key[0]}:{key[1]}>; teach this test how to fill it"
            )
        return str(values[key])

    return "/" + _PARAMETER.sub(replace, route)


def real_url(route: str, patient: Patient, workup: Workup) -> str:
    return fill(
        route,
        {
            ("int", "patient_id"): patient.pk,
            ("int", "workup_id"): workup.pk,
            ("slug", "step_code"): STEP_CODE,
        },
    )


def missing_url(route: str) -> str:
    return fill(
        route,
        {
            ("int", "patient_id"): MISSING_ID,
            ("int", "workup_id"): MISSING_ID,
            ("slug", "step_code"): STEP_CODE,
        },
    )


def valid_value(field, index: int = 0):
    """A plausible form value for one protocol field, as a browser would send it."""
    if field.kind in ("decimal", "integer"):
        low = field.min_value if field.min_value is not None else 0
        high = field.max_value if field.max_value is not None else low + 10
        middle = low + (high - low) / 4
        return str(int(middle)) if field.kind == "integer" else f"{middle:.1f}"
    if field.kind == "boolean":
        return "yes" if index % 2 == 0 else "no"
    if field.kind == "choice":
        return field.choices[0][0]
    if field.kind == "multi_choice":
        return [c[0] for c in field.choices[:2]]
    if field.kind == "date":
        return (timezone.localdate() - timedelta(days=30)).isoformat()
    return "Free text entered in the form."


def write_payload(spec, patient: Patient, workup: Workup) -> dict:
    """One POST body that every write view of this app accepts as valid.

    Forms ignore fields they do not know, so the patient form, the step form (for
    STEP_CODE), the mark form and the unmark form are all satisfied at once. The
    workup version is read afresh, as a browser loading the page would.
    """
    workup.refresh_from_db()
    patient.refresh_from_db()
    data = {
        "site": patient.site_id,
        "mrn": patient.mrn,
        "family_name": patient.family_name,
        "given_name": patient.given_name,
        "birth_date": patient.birth_date.isoformat(),
        "sex": patient.sex,
        "performed_on": (timezone.localdate() - timedelta(days=7)).isoformat(),
        "note": "",
        "status": StepMark.Status.ORDERED,
        "reason": "Ordered today.",
        "workup_version": workup.version,
    }
    for index, field in enumerate(spec.step(STEP_CODE).entry_fields):
        data[field.code] = valid_value(field, index)
    return data


def allowed_methods(client: Client, route: str) -> set[str]:
    """Probe with an id that does not exist: 404 = method accepted, 405 = refused."""
    allowed = set()
    for method in ("get", "post"):
        status = getattr(client, method)(missing_url(route)).status_code
        assert status in (404, 405), f"{method.upper()} {missing_url(route)} gave {status}"
        if status == 404:
            allowed.add(method)
    return allowed


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _workup_version(workup: Workup) -> int:
    return Workup.objects.get(pk=workup.pk).version


def state_of(workup: Workup) -> tuple:
    workup.refresh_from_db()
    patient = Patient.objects.get(pk=workup.patient_id)
    return (
        workup.version,
        StepRecord.objects.count(),
        StepMark.objects.count(),
        Workup.objects.count(),
        Patient.objects.count(),
        (patient.mrn, patient.family_name, patient.given_name, patient.birth_date, patient.sex),
    )


def test_the_resolver_walk_finds_every_known_view_that_takes_an_id():
    names = {name for _, name in id_routes()}
    assert names >= KNOWN_ID_VIEWS, f"missing from the walk: {KNOWN_ID_VIEWS - names}"


def test_every_id_url_can_be_filled_with_real_objects(patient_a, workup_a):
    for route, _ in id_routes():
        url = real_url(route, patient_a, workup_a)
        assert "<" not in url and ">" not in url, url


def test_anonymous_is_sent_to_the_login_page_from_every_id_url(client, patient_a, workup_a):
    exercised = set()
    failures = []
    for route, _name in id_routes():
        url = real_url(route, patient_a, workup_a)
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            location = response.headers.get("Location", "")
            if response.status_code != 302 or not location.startswith(LOGIN_PATH):
                failures.append(f"{method.upper()} {url}: {response.status_code} {location}")
        exercised.add(route)
    assert not failures, "\n".join(failures)
    assert exercised == {route for route, _ in id_routes()}


@pytest.mark.parametrize("persona", ["clinician_b", "protocol_admin"])
def test_someone_without_access_to_the_site_gets_404_on_every_id_url(
    request, persona, clinician_a, patient_a, workup_a, spec
):
    outsider = logged_in(request.getfixturevalue(persona))
    owner = logged_in(clinician_a)
    before = state_of(workup_a)
    exercised = set()
    failures = []
    for route, _name in id_routes():
        url = real_url(route, patient_a, workup_a)
        allowed = allowed_methods(owner, route)
        for method in ("get", "post"):
            kwargs = {"data": write_payload(spec, patient_a, workup_a)} if method == "post" else {}
            response = getattr(outsider, method)(url, **kwargs)
            expected = 404 if method in allowed else 405
            if response.status_code != expected:
                failures.append(f"{method.upper()} {url}: {response.status_code} != {expected}")
            # The answer must not tell another site's object from one that does not exist.
            missing = getattr(outsider, method)(missing_url(route), **kwargs)
            if missing.status_code != response.status_code:
                failures.append(
                    f"{method.upper()} {url}: {response.status_code}, but "
                    f"{missing.status_code} for an id that does not exist"
                )
        exercised.add(route)
    assert not failures, "\n".join(failures)
    assert exercised == {route for route, _ in id_routes()}
    assert state_of(workup_a) == before, "an outsider's request changed the workup"


def test_a_viewer_of_the_site_can_read_every_page_but_not_write(
    viewer_a, clinician_a, patient_a, workup_a, spec
):
    viewer = logged_in(viewer_a)
    owner = logged_in(clinician_a)
    before = state_of(workup_a)
    exercised = set()
    failures = []
    for route, _name in id_routes():
        url = real_url(route, patient_a, workup_a)
        allowed = allowed_methods(owner, route)
        if "get" in allowed:
            status = viewer.get(url).status_code
            if status != 200:
                failures.append(f"GET {url}: {status} != 200")
        if "post" in allowed:
            status = viewer.post(url, write_payload(spec, patient_a, workup_a)).status_code
            if status != 403:
                failures.append(f"POST {url}: {status} != 403")
        for method in {"get", "post"} - allowed:
            status = getattr(viewer, method)(url).status_code
            if status != 405:
                failures.append(f"{method.upper()} {url}: {status} != 405")
        exercised.add(route)
    assert not failures, "\n".join(failures)
    assert exercised == {route for route, _ in id_routes()}
    assert state_of(workup_a) == before, "a viewer's POST changed something"


def test_a_clinician_of_the_site_can_read_every_page_and_write(
    clinician_a, patient_a, workup_a, spec, protocol_admin
):
    # Moving a workup to a newer protocol version (views_versions) needs one published.
    versions.publish(
        protocol=versions.new_draft(protocol=workup_a.protocol, user=protocol_admin),
        user=protocol_admin,
    )
    owner = logged_in(clinician_a)
    exercised = set()
    failures = []
    for route, _name in id_routes():
        url = real_url(route, patient_a, workup_a)
        allowed = allowed_methods(owner, route)
        assert allowed, f"{url} accepts neither GET nor POST"
        if "get" in allowed:
            status = owner.get(url).status_code
            if status != 200:
                failures.append(f"GET {url}: {status} != 200")
        if "post" in allowed:
            version = _workup_version(workup_a)
            response = owner.post(url, write_payload(spec, patient_a, workup_a))
            location = response.headers.get("Location", "")
            if response.status_code != 302 or location.startswith(LOGIN_PATH):
                failures.append(f"POST {url}: {response.status_code} {location}")
            elif "<int:workup_id>" in route and _workup_version(workup_a) != version + 1:
                # A write to a workup that went through moves its version on.
                failures.append(f"POST {url}: redirected but the workup was not changed")
        exercised.add(route)
    assert not failures, "\n".join(failures)
    assert exercised == {route for route, _ in id_routes()}


def test_healthz_answers_json_without_login(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["status"] == "ok"


def test_the_worklist_needs_a_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == f"{LOGIN_PATH}?next=/"


def test_a_protocol_admin_sees_no_patient_on_the_worklist(client, protocol_admin, patient_a):
    client.force_login(protocol_admin)
    response = client.get(reverse("worklist"))
    assert response.status_code == 200
    assert response.context["page"].rows == []
    page = response.content.decode()
    assert patient_a.mrn not in page
    assert patient_a.family_name not in page
    assert "No patients found." in page


def test_a_protocol_admin_cannot_open_a_patient_or_a_workup(
    client, protocol_admin, patient_a, workup_a
):
    client.force_login(protocol_admin)
    assert client.get(reverse("patient_detail", args=[patient_a.pk])).status_code == 404
    assert client.get(reverse("checklist", args=[workup_a.pk])).status_code == 404
    assert client.get(reverse("step_form", args=[workup_a.pk, STEP_CODE])).status_code == 404


def test_a_protocol_admin_cannot_add_a_patient(client, protocol_admin, site_a):
    client.force_login(protocol_admin)
    assert client.get(reverse("patient_new")).status_code == 403


def test_every_write_needs_a_csrf_token(clinician_a, patient_a, workup_a, spec):
    owner = logged_in(clinician_a)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(clinician_a)
    before = state_of(workup_a)
    failures = []
    for route, _name in id_routes():
        if "post" not in allowed_methods(owner, route):
            continue
        url = real_url(route, patient_a, workup_a)
        status = browser.post(url, write_payload(spec, patient_a, workup_a)).status_code
        if status != 403:
            failures.append(f"POST {url} without a CSRF token: {status} != 403")
    assert not failures, "\n".join(failures)
    assert state_of(workup_a) == before
