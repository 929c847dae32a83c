"""Every query budget of the app in one place (issues 6 and 14); other tests import them.

The table REQUEST_BUDGETS counts each page and each save of one worked-up workup.
The seeded test below measures the pages at two sizes and requires the counts equal:

- worklist <= 4 (first page, last page, a search, a step filter): 10 and 1,010 patients
- checklist <= 5 (built) and 4 (built before), step form <= 5, summary <= 5:
  1 and 50 step records, among 10 and 1,010 patients

Patients come from `seed_demo` (bulk, every workup stage); the counted requests run
through the test client after one warm-up request, as a running server has its
protocol cache. The checklist is also counted with its cache emptied (a first view).
"""

from datetime import date, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from workup.models import Patient, Site, Workup
from workup.records import writes
from workup.web import page_cache

from .conftest import record, worked_up
from .factories import PatientFactory

WORKLIST_BUDGET = 4
CHECKLIST_BUDGET = 5
CHECKLIST_BUILT_BEFORE_BUDGET = 4
STEP_FORM_BUDGET = 5
SUMMARY_BUDGET = 5
# Saves, counting the test transaction's savepoints (a server's BEGIN and COMMIT); each
# is what SQLite measures, plus one for PostgreSQL (the audit chain's advisory lock):
# a step 11, a mark 12, an unmark 13 (the mark is read for its history row), the adult
# pathway 12, a birth-date edit 23 (its form checks, then each open workup's snapshot).
STEP_SAVE_BUDGET = 12
MARK_SAVE_BUDGET = 13
UNMARK_BUDGET = 14
ADULT_PATHWAY_BUDGET = 13
PATIENT_EDIT_BUDGET = 24
# A version move re-pins every result, each with its history row and audit event: it grows
# with them (SQLite 25 + 5 a result, measured 45 with 4; PostgreSQL one more an event).
VERSION_MOVE_BASE, VERSION_MOVE_PER_RESULT = 26, 6

pytestmark = pytest.mark.django_db


def seed(patients: int, username: str) -> None:
    call_command("seed_demo", "--patients", str(patients), "--member", username, stdout=StringIO())


def queries(client, url: str, *, fresh_checklist: bool = False, **params) -> int:
    """Queries of one GET after a warm-up GET of the same page."""
    assert client.get(url, params).status_code == 200
    if fresh_checklist:
        page_cache.clear()
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params)
    assert response.status_code == 200, url
    return len(captured)


def workup_with_results(site: Site, user, results: int) -> Workup:
    """A workup with `results` step records: history, then repeated tryptase values."""
    patient = PatientFactory(site=site, birth_date=date(1970, 3, 1))
    workup = writes.open_workup(patient=patient, user=user)
    day = date(2025, 1, 1)
    record(workup, user, "history", {"anaphylaxis": True}, day)
    for n in range(results - 1):
        value = {"value_ng_ml": 10.0 + n % 30, "is_baseline": n == 0}
        record(workup, user, "serum_tryptase", value, day + timedelta(days=n + 1))
    workup.refresh_from_db()
    assert workup.records.count() == results
    return workup


def page_counts(client, small: Workup, large: Workup) -> dict[str, tuple[int, int]]:
    """(count for the small workup, count for the large one) per page."""
    counts = {}
    for name, route in (
        ("checklist", "checklist"),
        ("summary", "workup_summary"),
    ):
        counts[name] = tuple(queries(client, reverse(route, args=[w.pk])) for w in (small, large))
    counts["checklist, first view"] = tuple(
        queries(client, reverse("checklist", args=[w.pk]), fresh_checklist=True)
        for w in (small, large)
    )
    counts["step form"] = tuple(
        queries(client, reverse("step_form", args=[w.pk, "serum_tryptase"])) for w in (small, large)
    )
    return counts


def worklist_counts(client) -> dict[str, int]:
    counts = {
        "first page": queries(client, reverse("worklist")),
        "last page": queries(client, reverse("worklist"), page="last"),
        "step filter": queries(client, reverse("worklist"), step="serum_tryptase"),
    }
    first = Patient.objects.order_by("family_name", "given_name", "id").first()
    counts["next page"] = queries(client, reverse("worklist"), after=first.pk)
    client.post(reverse("worklist_search"), {"q": first.family_name[:3]})
    counts["search"] = queries(client, reverse("worklist"))
    client.post(reverse("worklist_search"), {"clear": "1"})
    return counts


def test_page_queries_are_within_budget_and_do_not_grow_with_data(client, clinician_a, site_a):
    client.force_login(clinician_a)
    small_workup = workup_with_results(site_a, clinician_a, results=1)
    large_workup = workup_with_results(site_a, clinician_a, results=50)
    seed(8, clinician_a.username)
    assert Patient.objects.count() == 10

    pages_at_10 = page_counts(client, small_workup, large_workup)
    worklist_at_10 = worklist_counts(client)

    seed(1_000, clinician_a.username)
    assert Patient.objects.count() == 1_010

    pages_at_1010 = page_counts(client, small_workup, large_workup)
    worklist_at_1010 = worklist_counts(client)

    print(f"\nqueries: worklist {worklist_at_10}; pages (1 result, 50 results) {pages_at_10}")
    # Equal at both sizes, and (for workup pages) at 1 and 50 results.
    assert worklist_at_1010 == worklist_at_10
    assert pages_at_1010 == pages_at_10
    for name, (one_result, fifty_results) in pages_at_10.items():
        assert one_result == fifty_results, name
    # Within budget.
    assert max(worklist_at_10.values()) <= WORKLIST_BUDGET, worklist_at_10
    assert pages_at_10["checklist, first view"][0] <= CHECKLIST_BUDGET
    assert pages_at_10["checklist"][0] <= CHECKLIST_BUILT_BEFORE_BUDGET
    assert pages_at_10["step form"][0] <= STEP_FORM_BUDGET
    assert pages_at_10["summary"][0] <= SUMMARY_BUDGET


# --- one table: every page and every save of a worked-up workup ----------------------------
#
# (name, method, route, step code or None, budget). The counted request runs after one
# warm-up request, as a running server has its protocol cache; a save is counted on its
# own, without following the redirect to the checklist (itself counted above).
REQUEST_BUDGETS = [
    ("worklist", "get", "worklist", None, WORKLIST_BUDGET),
    ("checklist", "get", "checklist", None, CHECKLIST_BUILT_BEFORE_BUDGET),
    ("step form", "get", "step_form", "serum_tryptase", STEP_FORM_BUDGET),
    ("summary", "get", "workup_summary", None, SUMMARY_BUDGET),
    ("summary PDF", "get", "workup_summary_pdf", None, SUMMARY_BUDGET),
    ("step save", "post", "step_form", "serum_tryptase", STEP_SAVE_BUDGET),
    ("mark save", "post", "step_mark", "urine_mediators", MARK_SAVE_BUDGET),
    ("unmark", "post", "step_unmark", "urine_mediators", UNMARK_BUDGET),
    ("adult pathway", "post", "adult_pathway", None, ADULT_PATHWAY_BUDGET),
    ("patient edit", "post", "patient_detail", None, PATIENT_EDIT_BUDGET),
]


def worked_up_workup(site: Site, user) -> Workup:
    patient = PatientFactory(site=site, birth_date=date(1970, 3, 1))
    workup = worked_up(writes.open_workup(patient=patient, user=user), user)
    workup.refresh_from_db()
    return workup


def save_data(method: str, route: str, workup: Workup, turn: int = 0) -> dict | None:
    """A valid save with the workup's current version token (a fresh one per request);
    `turn` alternates what a save changes, so that each one changes something."""
    if method == "get":
        return None
    workup.refresh_from_db()
    common = {"workup_version": workup.version, "loaded_at": "0"}
    if route == "step_mark":
        return common | {"status": "declined", "reason": "Declined in clinic."}
    if route == "step_unmark":
        return common
    if route == "adult_pathway":
        return common | {"enabled": "on", "reason": "Post-pubertal."} if turn else common
    if route == "patient_detail":  # the birth date: what the rules read, so the checklist follows
        patient = workup.patient
        return {
            "site": patient.site_id,
            "mrn": patient.mrn,
            "family_name": patient.family_name,
            "given_name": patient.given_name,
            "birth_date": "1971-03-01" if turn else "1970-03-01",
            "sex": patient.sex,
        }
    return common | {"value_ng_ml": "21.5", "is_baseline": "no", "performed_on": "2025-06-01"}


def prepare(client, route: str, workup: Workup) -> None:
    """What the counted save needs in place: no mark before a mark, one before an unmark."""
    workup.refresh_from_db()
    if route == "step_mark":  # a second mark is refused; clear it so the counted one saves
        client.post(
            reverse("step_unmark", args=[workup.pk, "urine_mediators"]),
            {"workup_version": workup.version},
        )
    elif route == "step_unmark":
        client.post(
            reverse("step_mark", args=[workup.pk, "urine_mediators"]),
            {"workup_version": workup.version, "status": "ordered", "reason": ""},
        )


def count_request(client, method: str, url: str, workup: Workup, route: str) -> int:
    send = getattr(client, method)
    expected = 200 if method == "get" else 302
    # Warm-up: the protocol cache and the session, as a running server has them.
    prepare(client, route, workup)
    assert send(url, save_data(method, route, workup)).status_code == expected, url
    prepare(client, route, workup)
    data = save_data(method, route, workup, turn=1)
    with CaptureQueriesContext(connection) as captured:
        response = send(url, data)
    assert response.status_code == expected, (url, response.status_code)
    return len(captured)


@pytest.mark.parametrize(
    ("name", "method", "route", "step_code", "budget"),
    REQUEST_BUDGETS,
    ids=[row[0] for row in REQUEST_BUDGETS],
)
def test_every_request_of_a_worked_up_workup_is_within_its_budget(
    client, clinician_a, site_a, name, method, route, step_code, budget
):
    client.force_login(clinician_a)
    workup = worked_up_workup(site_a, clinician_a)
    if route == "worklist":
        url = reverse(route)
    elif route == "patient_detail":
        url = reverse(route, args=[workup.patient_id])
    elif step_code:
        url = reverse(route, args=[workup.pk, step_code])
    else:
        url = reverse(route, args=[workup.pk])

    used = count_request(client, method, url, workup, route)

    print(f"\nqueries: {name} {used} (budget {budget})")
    assert used <= budget, f"{name}: {used} queries, budget {budget}"


def test_a_version_move_is_within_its_budget(client, clinician_a, site_a, request):
    """Moving a worked-up workup to the next version: every record and mark re-pinned."""
    client.force_login(clinician_a)
    warm_up, counted = (worked_up_workup(site_a, clinician_a) for _ in range(2))
    target = request.getfixturevalue("protocol_v2")  # published after the workups opened

    def move_data(workup: Workup) -> dict:
        workup.refresh_from_db()
        return {"workup_version": workup.version, "target": target.pk}

    url = reverse("workup_move_version", args=[warm_up.pk])
    assert client.post(url, move_data(warm_up)).status_code == 302
    data = move_data(counted)
    with CaptureQueriesContext(connection) as captured:
        response = client.post(reverse("workup_move_version", args=[counted.pk]), data)
    assert response.status_code == 302
    counted.refresh_from_db()
    assert counted.protocol_id == target.pk  # it moved: the count is of a real move
    budget = VERSION_MOVE_BASE + VERSION_MOVE_PER_RESULT * counted.records.count()
    print(f"\nqueries: version move {len(captured)} (budget {budget})")
    assert len(captured) <= budget
