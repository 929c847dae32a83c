"""The access ladder, walked for every URL that takes a parameter.

The URLs come from the URL resolver, not from a list kept by hand: a new route,
whatever its converter (int, slug, str, path, or a regular expression), is covered
as soon as it is routed, and a test fails until this file knows how to fill it.
The app's pages (`id_routes`) and the admin's (`admin_routes`) have two ladders.

The app's ladder:

- anonymous: redirected to the login page (GET and POST);
- a clinician of another site, and a protocol admin: 404, the same answer as for
  an id that does not exist (never a 403 that would confirm the object exists);
- a viewer of the site: pages answer 200, writes 403 and change nothing;
- a clinician of the site: pages answer 200, writes succeed and redirect.

A method that a view does not accept answers 405 to everyone alike.

The admin's ladder (no patient data lives there; sites, users, protocols do):

- anonymous and a clinician (not staff): the admin's login page, for every object;
- a protocol admin: for what the role may not see (sites, memberships, users,
  django-axes' records), the same answer for an object as for one that does not
  exist, never the page; a POST changes nothing;
- a superuser (a site admin): every admin page answers without a server error.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from axes.models import AccessFailureLog
from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from workup.models import Patient, StepMark, StepRecord, Workup
from workup.ops import backup
from workup.protocols import versions

STEP_CODE = "serum_tryptase"
MISSING_ID = 987_654_321
LOGIN_PATH = "/accounts/login/"
# A path() parameter, <converter:name> or <name>, or a re_path() named group.
_PARAMETER = re.compile(
    r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>|\(\?P<(?P<group>\w+)>(?:[^()]|\([^()]*\))*\)"
)
ADMIN_PREFIX = "admin/"

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


def parameter_routes() -> list[tuple[str, str]]:
    """(route, url name) of every routed URL that has a parameter, whatever its kind."""
    return [
        (route, name)
        for route, name in _walk(get_resolver().url_patterns)
        if _PARAMETER.search(route)
    ]


def id_routes() -> list[tuple[str, str]]:
    """The app's own pages that take a parameter (the admin's: `admin_routes`)."""
    return [(r, n) for r, n in parameter_routes() if not r.startswith(ADMIN_PREFIX)]


def admin_routes() -> list[tuple[str, str]]:
    return [(r, n) for r, n in parameter_routes() if r.startswith(ADMIN_PREFIX)]


def _key(match: re.Match) -> tuple[str, str]:
    if match["group"]:
        return ("re", match["group"])
    return (match["converter"] or "str", match["name"])


def fill(route: str, values: dict[tuple[str, str], object]) -> str:
    def replace(match: re.Match) -> str:
        key = _key(match)
        if key not in values:
            raise AssertionError(
                f"/{route}: no value for <{key[0]}:{key[1]}>; teach this test how to fill it"
            )
        return str(values[key])

    # re_path() routes carry their anchors: "admin/^(?P<app_label>...)/$".
    return "/" + _PARAMETER.sub(replace, route).replace("^", "").replace("$", "")


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


# --- the admin ----------------------------------------------------------------------------

ADMIN_LOGIN_PATHS = ("/admin/login/", LOGIN_PATH)
_ADMIN_MODEL_ROUTE = re.compile(r"^admin/(?P<app>\w+)/(?P<model>\w+)/<")
# What a protocol admin's requests may change: their own session, and the audit trail
# (which records the refusals).
_MAY_CHANGE = {"django_session", "workup_auditevent"}


def admin_model(route: str):
    """The model an admin route is about ("admin/workup/site/<path:object_id>/..."), or None."""
    match = _ADMIN_MODEL_ROUTE.match(route)
    return apps.get_model(match["app"], match["model"]) if match else None


def admin_url(route: str, patient: Patient, *, missing: bool = False) -> str:
    model = admin_model(route)
    if model is None:  # view_on_site (a content type and an object), app list, catch-all
        object_id = MISSING_ID if missing else patient.pk
    else:
        row = model._base_manager.order_by("pk").first()
        assert row is not None, f"/{route}: no {model._meta.label} row to try it with"
        object_id = MISSING_ID if missing else row.pk
    return fill(
        route,
        {
            ("path", "object_id"): object_id,
            ("str", "id"): object_id,
            ("path", "content_type_id"): ContentType.objects.get_for_model(Patient).pk,
            ("re", "app_label"): "workup",
            ("re", "url"): "no-such-page/",
        },
    )


@pytest.fixture
def admin_rows(client, clinician_a, site_a, patient_a, workup_a):
    """A row in every table the admin shows: django-axes' come from real logins."""
    login = {"username": clinician_a.username, "password": "test-password-123"}
    assert client.post(LOGIN_PATH, login).status_code == 302  # an access log
    client.logout()
    # An attempt (under another name: signing clinician_a in again would reset it).
    client.post(LOGIN_PATH, {"username": "someone-else", "password": "wrong"})
    # Failure logs are off (AXES_ENABLE_ACCESS_FAILURE_LOG), but the admin lists the table.
    AccessFailureLog.objects.create(
        username=clinician_a.username, ip_address="127.0.0.1", user_agent="test", path_info="/"
    )
    return patient_a


def test_the_walk_covers_every_route_that_takes_a_parameter():
    walked = {route for route, _ in id_routes()} | {route for route, _ in admin_routes()}
    assert walked == {route for route, _ in parameter_routes()}
    converters = {_key(m)[0] for route, _ in parameter_routes() for m in _PARAMETER.finditer(route)}
    assert converters >= {"int", "slug", "str", "path", "re"}, converters


def test_every_admin_url_can_be_filled_with_real_objects(admin_rows):
    for route, _ in admin_routes():
        for missing in (False, True):
            url = admin_url(route, admin_rows, missing=missing)
            assert "<" not in url and "(" not in url, url


@pytest.mark.parametrize("persona", ["anonymous", "clinician_a"])
def test_anonymous_and_clinicians_get_the_admin_login_page_for_every_admin_url(
    request, persona, admin_rows
):
    browser = Client() if persona == "anonymous" else logged_in(request.getfixturevalue(persona))
    before = backup.table_digests()
    failures = []
    for route, _name in admin_routes():
        for missing in (False, True):
            url = admin_url(route, admin_rows, missing=missing)
            for method in ("get", "post"):
                response = getattr(browser, method)(url)
                location = response.headers.get("Location", "")
                if response.status_code != 302 or not location.startswith(ADMIN_LOGIN_PATHS):
                    failures.append(f"{method.upper()} {url}: {response.status_code} {location}")
    assert not failures, "\n".join(failures)
    assert_unchanged(before, backup.table_digests())


def test_a_protocol_admin_cannot_tell_people_records_from_ones_that_do_not_exist(
    protocol_admin, admin_rows
):
    browser = logged_in(protocol_admin)
    before = backup.table_digests()
    failures, walked = [], 0
    for route, _name in admin_routes():
        model = admin_model(route)
        if model is not None and protocol_admin.has_perm(
            f"{model._meta.app_label}.view_{model._meta.model_name}"
        ):
            status = browser.get(admin_url(route, admin_rows)).status_code
            if status >= 500:
                failures.append(f"GET {admin_url(route, admin_rows)}: {status}")
            continue  # protocol content is the role's own (and no site's)
        walked += 1
        for method in ("get", "post"):
            real = getattr(browser, method)(admin_url(route, admin_rows)).status_code
            missing = getattr(browser, method)(admin_url(route, admin_rows, missing=True))
            # (A route about no model, such as the app index, only has to answer alike.)
            if (model is not None and real == 200) or real != missing.status_code:
                failures.append(
                    f"{method.upper()} {admin_url(route, admin_rows)}: {real}, and "
                    f"{missing.status_code} for an id that does not exist"
                )
    assert not failures, "\n".join(failures)
    assert walked >= 20, "sites, memberships, users and django-axes' records were walked"
    assert_unchanged(before, backup.table_digests())


def test_a_site_admin_opens_every_admin_page_without_a_server_error(admin_user, admin_rows):
    browser = logged_in(admin_user)
    failures = []
    for route, _name in admin_routes():
        url = admin_url(route, admin_rows)
        status = browser.get(url).status_code
        if status >= 500 or (admin_model(route) is not None and status == 404):
            failures.append(f"GET {url}: {status}")
    assert not failures, "\n".join(failures)


def assert_unchanged(before: dict, after: dict) -> None:
    changed = {t for t in before.keys() | after.keys() if before.get(t) != after.get(t)}
    assert changed <= _MAY_CHANGE, f"changed: {sorted(changed - _MAY_CHANGE)}"
