"""Fuzzing every form over HTTP, and the batch command, with Hypothesis.

Properties, for arbitrary input (odd unicode, huge numbers, NaN, Infinity,
1e309, negative, empty, markup):
- the server never fails (no 500: every bad input is a validation message);
- input that is refused saves nothing: no patient, result or mark, no version
  bump, no change in the audit trail;
- whatever was typed is shown escaped: a markup payload never comes back raw,
  neither on the refused form nor on the pages that show what was saved.

Each example runs in a savepoint that is rolled back, so examples never see each
other's rows. A failure prints the falsifying example; `--hypothesis-seed=N`
replays a run.
"""

from __future__ import annotations

import json
import os
import traceback
from contextlib import contextmanager
from datetime import date, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from workup.models import AuditEvent, Patient, StepMark, StepRecord, Workup
from workup.protocols.file import read_protocol_file
from workup.records import writes

from .conftest import PROTOCOL_FIXTURE, VIGNETTES
from .factories import PatientFactory

pytestmark = pytest.mark.django_db

SPEC = read_protocol_file(PROTOCOL_FIXTURE)
STEP_CODES = [step.code for step in SPEC.steps]
TODAY = timezone.localdate()
BIRTH_DATE = date(1970, 5, 1)


# FUZZ_SCALE=20 runs twenty times as many examples (a longer hunt, off CI), and
# FUZZ_SHRINK=1 shrinks a failure to a minimal example (slow here: every try is requests).
SCALE = float(os.environ.get("FUZZ_SCALE", "1"))
PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
if os.environ.get("FUZZ_SHRINK"):
    PHASES.append(Phase.shrink)


def fuzz_settings(examples: int):
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        database=None,  # nothing written to .hypothesis/ in the project
        phases=PHASES,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# --- what is typed ----------------------------------------------------------------------------

XSS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(1)>",
    "</textarea><script>alert(2)</script>",
    '<a href="javascript:alert(3)">x</a>',
]
ODD_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\u202eevil",  # right-to-left override
    "\ufeffBOM",
    "e\u0301\u0301\u0301",
    "𝕏🙂",
    "İıẞß",
    "\r\n\t",
    "x" * 2001,
    "<" * 300,
    "%s %(x)s {0} {{ x }}",
]
ODD_NUMBERS = [
    "NaN",
    "nan",
    "-NaN",
    "sNaN",
    "Infinity",
    "-Infinity",
    "inf",
    "1e309",
    "-1e309",
    "1e-400",
    "1E+5",
    "0",
    "-0",
    "-1",
    "-0.0001",
    "12.34567",
    "1,5",
    "1.5.5",
    " 12 ",
    "0x10",
    "1_000",
    "١٢",
    "１２",
    "²",
    "12abc",
    "9" * 30,
    "9" * 400,
    "9" * 5000,
    str(2**63),
    str(-(2**63) - 1),
    str(2**64),
]

unicode_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
# What a text field accepts: no NUL character (refused, rightly), at most 2000 characters.
valid_text = st.one_of(
    st.sampled_from(XSS),
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30),
)
texts = st.one_of(
    unicode_text,
    st.sampled_from(XSS),
    st.builds(lambda a, x, b: a + x + b, unicode_text, st.sampled_from(XSS), unicode_text),
    st.sampled_from(ODD_TEXT),
)
numbers_as_text = st.one_of(
    st.sampled_from(ODD_NUMBERS),
    st.integers().map(str),
    st.floats().map(str),
    st.decimals().map(str),
)
junk = st.one_of(texts, numbers_as_text)
dates_as_text = st.one_of(
    st.dates().map(str), st.sampled_from(["0001-01-01", "9999-12-31", "2026-02-30"])
)
OMIT = object()


def valid_value(field):
    """Values a careful clinician could type for the field."""
    if field.kind in ("decimal", "integer"):
        low = field.min_value if field.min_value is not None else -1000
        high = field.max_value if field.max_value is not None else 1000
        if field.kind == "integer":
            return st.integers(int(low), int(high)).map(str)
        return st.decimals(low, high, places=2).map(str)
    if field.kind == "boolean":
        return st.sampled_from(["yes", "no"] if field.required else ["yes", "no", ""])
    if field.kind == "choice":
        return st.sampled_from([code for code, _ in field.choices])
    if field.kind == "multi_choice":
        return st.lists(st.sampled_from([code for code, _ in field.choices]), unique=True)
    if field.kind == "date":
        return st.dates(BIRTH_DATE, TODAY).map(date.isoformat)
    return valid_text


def any_value(field):
    anything = st.one_of(valid_value(field), junk, st.just(OMIT))
    if field.kind == "multi_choice":
        return st.one_of(anything, st.lists(junk, max_size=3))
    return anything


ODD_DATES = [
    "",
    "today",
    "0000-00-00",
    "0001-01-01",
    "1900-02-29",
    "2024-02-30",
    "2024-13-01",
    "9999-12-31",
    "99999-01-01",
    "-2020-01-01",
    "2020-1-1",
    "01/02/2020",
    "2020-01-01T00:00",
    "２０２０-01-01",
    (BIRTH_DATE - timedelta(days=1)).isoformat(),
    (TODAY + timedelta(days=1)).isoformat(),
]
past_dates = st.dates(BIRTH_DATE, TODAY).map(date.isoformat)
any_date = st.one_of(past_dates, st.sampled_from(ODD_DATES), st.dates().map(date.isoformat), junk)

# The version token: the current one, a stale one (someone saved since), or junk.
CURRENT, STALE = "<current version>", "<stale version>"
any_version = st.one_of(st.sampled_from([CURRENT, CURRENT, STALE]), junk)
any_loaded_at = st.one_of(
    st.just(OMIT),
    st.sampled_from(["1e300", "-1e300", "1e20", "-1", "0", "NaN", "inf", "1e309"]),
    st.floats().map(str),
    junk,
)


def step_form_data(step_code: str, all_valid: bool = False):
    fields = SPEC.step(step_code).entry_fields
    value = valid_value if all_valid else any_value
    return st.fixed_dictionaries(
        {
            **{f.code: value(f) for f in fields},
            "performed_on": past_dates if all_valid else any_date,
            "note": valid_text if all_valid else texts,
            "workup_version": st.just(CURRENT) if all_valid else any_version,
            "loaded_at": st.just(OMIT) if all_valid else any_loaded_at,
        }
    )


# --- how a response is judged -----------------------------------------------------------------


@contextmanager
def rolled_back():
    """One example's database effects, undone afterwards."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def resolve(data: dict, workup: Workup) -> dict:
    """The POST body: tokens replaced by the workup's version, OMIT dropped."""
    version = Workup.objects.get(pk=workup.pk).version
    tokens = {CURRENT: str(version), STALE: str(version - 1)}
    return {
        key: tokens.get(value, value) if isinstance(value, str) else value
        for key, value in data.items()
        if value is not OMIT
    }


def assert_no_server_error(response, data) -> None:
    if response.status_code == 500:
        detail = "".join(traceback.format_exception(*response.exc_info))
        pytest.fail(f"500 for {data!r}:\n{detail}")


def strings_in(data: dict) -> list[str]:
    values = []
    for value in data.values():
        values += value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, str)]


def has_payload(data: dict) -> bool:
    return any(payload in value for value in strings_in(data) for payload in XSS)


def assert_escaped(response, data: dict) -> None:
    body = response.content.decode()
    for value in strings_in(data):
        for payload in XSS:
            if payload in value:
                assert payload not in body, f"{payload!r} is shown unescaped"


def clinical_state(workup: Workup | None = None):
    """Everything a refused form must leave unchanged."""
    return {
        "patients": list(Patient.objects.order_by("pk").values()),
        "records": list(StepRecord.objects.order_by("pk").values()),
        "marks": list(StepMark.objects.order_by("pk").values()),
        "workups": list(
            Workup.objects.order_by("pk").values(
                "pk", "version", "adult_pathway", "adult_pathway_reason", "suggested_steps"
            )
        ),
        "changes": AuditEvent.objects.filter(
            action__in=[AuditEvent.Action.CREATE, AuditEvent.Action.UPDATE, "delete"]
        ).count(),
    }


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def browser(clinician_a):
    client = Client(raise_request_exception=False)
    client.force_login(clinician_a)
    return client


@pytest.fixture
def workup(site_a, clinician_a):
    """A 55-year-old with a history and one tryptase recorded, and a mark."""
    patient = PatientFactory(site=site_a, birth_date=BIRTH_DATE, sex="male")
    workup = writes.open_workup(patient=patient, user=clinician_a)
    for code, values in [
        ("history", {"mediator_symptoms": True, "anaphylaxis": False}),
        ("serum_tryptase", {"value_ng_ml": 14.0, "is_baseline": True}),
    ]:
        workup.refresh_from_db()
        writes.record_step(
            workup=workup,
            step_code=code,
            values=values,
            performed_on=TODAY - timedelta(days=30),
            note="<b>earlier</b>",
            user=clinician_a,
            expected_version=workup.version,
        )
    workup.refresh_from_db()
    writes.set_mark(
        workup=workup,
        step_code="dexa",
        status="ordered",
        reason="",
        user=clinician_a,
        expected_version=workup.version,
    )
    workup.refresh_from_db()
    return workup


def post_step(browser, workup, step_code, data):
    url = reverse("step_form", args=[workup.pk, step_code])
    with rolled_back():
        before = clinical_state()
        body = resolve(data, workup)
        response = browser.post(url, body)
        assert_no_server_error(response, body)
        saved = response.status_code == 302
        if saved:
            expected = reverse("checklist", args=[workup.pk]) + f"#step-{step_code}"
            assert response.headers["Location"] == expected
            if has_payload(body):
                page = browser.get(url)  # lists the results, notes included
                assert_no_server_error(page, body)
                assert_escaped(page, body)
        else:
            assert response.status_code in (400, 409), response.status_code
            assert clinical_state() == before, f"refused ({response.status_code}) yet saved"
            assert_escaped(response, body)
    return response.status_code


# --- the step forms ---------------------------------------------------------------------------


@pytest.mark.parametrize("step_code", STEP_CODES)
@fuzz_settings(examples=8)
@given(data=st.data())
def test_every_step_form_survives_arbitrary_input(browser, workup, step_code, data):
    all_valid = data.draw(st.booleans(), label="all valid")
    form = data.draw(step_form_data(step_code, all_valid=all_valid), label="form")

    status = post_step(browser, workup, step_code, form)

    if all_valid:
        assert status == 302, "a valid form was refused"


@fuzz_settings(examples=30)
@given(data=st.data())
def test_the_version_token_and_load_time_never_break_the_form(browser, workup, data):
    """Stale and junk tokens: a 400 or the 409 conflict page, never a 500."""
    step_code = data.draw(st.sampled_from(STEP_CODES), label="step")
    form = data.draw(step_form_data(step_code, all_valid=True), label="valid form")
    form["workup_version"] = data.draw(any_version, label="workup_version")
    form["loaded_at"] = data.draw(any_loaded_at, label="loaded_at")

    post_step(browser, workup, step_code, form)


# --- the patient forms ------------------------------------------------------------------------

ODD_BIRTH_DATES = [
    TODAY.isoformat(),
    (TODAY - timedelta(days=1)).isoformat(),
    (TODAY - timedelta(days=365 * 121)).isoformat(),
    "2000-02-29",
    "2001-02-29",
]


@st.composite
def patient_form_data(draw, sites):
    site = draw(st.one_of(st.sampled_from([str(s.pk) for s in sites]), junk, st.just(OMIT)))
    return {
        "site": site,
        "mrn": draw(st.one_of(texts, st.sampled_from([DUPLICATE_MRN, DUPLICATE_MRN.upper()]))),
        "family_name": draw(texts),
        "given_name": draw(st.one_of(valid_text, texts)),
        "birth_date": draw(st.one_of(past_dates, st.sampled_from(ODD_BIRTH_DATES), any_date)),
        "sex": draw(st.one_of(st.sampled_from([s for s, _ in Patient.Sex.choices]), junk)),
    }


# An MRN already taken at the site: the "already exists" message repeats it.
DUPLICATE_MRN = '"><img src=x onerror=alert(1)>'


@pytest.fixture
def other_patient(site_a):
    return PatientFactory(site=site_a, mrn=DUPLICATE_MRN, family_name="<script>alert(1)</script>")


def post_patient(browser, url, data):
    with rolled_back():
        before = clinical_state()
        response = browser.post(url, data)
        assert_no_server_error(response, data)
        if response.status_code == 302 and has_payload(data):
            for page_url in (response.headers["Location"], reverse("worklist")):
                page = browser.get(page_url)
                assert_no_server_error(page, data)
                assert_escaped(page, data)
        else:
            assert response.status_code in (200, 400), response.status_code
            assert clinical_state() == before, "a refused patient form saved something"
            assert_escaped(response, data)


@fuzz_settings(examples=30)
@given(data=st.data())
def test_the_new_patient_form_survives_arbitrary_input(
    browser, site_a, site_b, other_patient, data
):
    form = data.draw(patient_form_data([site_a, site_b]), label="form")

    post_patient(browser, reverse("patient_new"), resolve_patient(form))


@fuzz_settings(examples=30)
@given(data=st.data())
def test_the_patient_edit_form_survives_arbitrary_input(
    browser, workup, site_a, site_b, other_patient, data
):
    form = data.draw(patient_form_data([site_a, site_b]), label="form")

    post_patient(
        browser, reverse("patient_detail", args=[workup.patient_id]), resolve_patient(form)
    )


def resolve_patient(data: dict) -> dict:
    return {key: value for key, value in data.items() if value is not OMIT}


# --- marks and the adult pathway --------------------------------------------------------------


@fuzz_settings(examples=40)
@given(
    step_code=st.sampled_from(STEP_CODES),
    action=st.sampled_from(["step_mark", "step_mark", "step_unmark"]),
    status=st.one_of(st.sampled_from([s for s, _ in StepMark.Status.choices]), junk, st.just(OMIT)),
    reason=st.one_of(valid_text, texts, st.just(OMIT)),
    version=any_version,
    loaded_at=any_loaded_at,
)
def test_the_mark_forms_survive_arbitrary_input(
    browser, workup, step_code, action, status, reason, version, loaded_at
):
    """Refused: a redirect to the form with the message, or the 409 conflict page."""
    url = reverse(action, args=[workup.pk, step_code])
    success = reverse("checklist", args=[workup.pk]) + f"#step-{step_code}"
    data = {"status": status, "reason": reason, "workup_version": version, "loaded_at": loaded_at}
    with rolled_back():
        before = clinical_state()
        body = resolve(data, workup)
        response = browser.post(url, body)
        assert_no_server_error(response, body)
        assert response.status_code in (302, 400, 409), response.status_code
        if response.headers.get("Location") != success:
            assert clinical_state() == before, "a refused mark changed something"
        if response.status_code != 302:
            assert_escaped(response, body)
        elif has_payload(body):
            page = browser.get(response.headers["Location"])
            assert_no_server_error(page, body)
            assert_escaped(page, body)


@fuzz_settings(examples=25)
@given(
    enabled=st.one_of(st.sampled_from(["on", "true", "1", "", "false", "0"]), junk, st.just(OMIT)),
    reason=st.one_of(valid_text, texts, st.just(OMIT)),
    version=any_version,
)
def test_the_adult_pathway_form_survives_arbitrary_input(browser, workup, enabled, reason, version):
    url = reverse("adult_pathway", args=[workup.pk])
    with rolled_back():
        before = clinical_state()
        body = resolve({"enabled": enabled, "reason": reason, "workup_version": version}, workup)
        response = browser.post(url, body)
        assert_no_server_error(response, body)
        assert response.status_code == 302, response.status_code
        location = response.headers["Location"]
        if location.endswith("#adult-pathway") or body.get("workup_version") != str(
            Workup.objects.get(pk=workup.pk).version - 1
        ):
            assert clinical_state() == before, "a refused change of pathway saved something"
        if has_payload(body):
            page = browser.get(location)
            assert_no_server_error(page, body)
            assert_escaped(page, body)


# --- the worklist -----------------------------------------------------------------------------


@fuzz_settings(examples=25)
@given(
    q=st.one_of(texts, st.sampled_from(["MRN", "Testpatient", "%", "_", "\\", "'", "*"])),
    clear=st.booleans(),
    step=st.one_of(st.just(OMIT), st.sampled_from(STEP_CODES), junk),
    page=st.one_of(st.just(OMIT), numbers_as_text, junk),
    after=st.one_of(st.just(OMIT), numbers_as_text, junk),
    before=st.one_of(st.just(OMIT), numbers_as_text, junk),
)
def test_the_worklist_search_survives_arbitrary_input(
    browser, workup, other_patient, q, clear, step, page, after, before
):
    with rolled_back():
        before = clinical_state()
        body = {"q": q, **({"clear": "1"} if clear else {})}
        response = browser.post(reverse("worklist_search"), body)
        assert_no_server_error(response, body)
        assert response.status_code == 302
        query = {
            k: v
            for k, v in {"step": step, "page": page, "after": after, "before": before}.items()
            if v is not OMIT
        }
        listing = browser.get(reverse("worklist"), query)
        assert_no_server_error(listing, {**body, **query})
        assert listing.status_code == 200
        assert_escaped(listing, {**body, **query})
        assert clinical_state() == before


# --- the audit report -------------------------------------------------------------------------


@fuzz_settings(examples=25)
@given(
    user=st.one_of(st.just(OMIT), texts),
    patient=st.one_of(st.just(OMIT), numbers_as_text, junk),
    start=st.one_of(st.just(OMIT), dates_as_text, junk),
    end=st.one_of(st.just(OMIT), dates_as_text, junk),
    action=st.one_of(st.just(OMIT), st.sampled_from([a for a, _ in AuditEvent.Action.choices])),
)
def test_the_audit_report_filters_survive_arbitrary_input(
    admin_client, user, patient, start, end, action
):
    query = {
        k: v
        for k, v in {
            "user": user,
            "patient": patient,
            "start": start,
            "end": end,
            "action": action,
        }.items()
        if v is not OMIT
    }
    for name in ("audit_report", "audit_report_csv"):
        response = admin_client.get(reverse(name), query)
        if response.streaming:
            b"".join(response.streaming_content)  # a CSV fails, if at all, while written
        assert_no_server_error(response, query)
        if name == "audit_report":
            assert_escaped(response, query)


# --- the batch command ------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),
    st.floats(),  # NaN and Infinity too: Python's json reads and writes them
    texts,
)
any_json = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)


def valid_field_json(field):
    low, high = field.min_value, field.max_value
    if field.kind == "decimal":
        return st.floats(low, high, allow_nan=False, allow_infinity=False)
    if field.kind == "integer":
        return st.integers(
            int(low) if low is not None else None, int(high) if high is not None else None
        )
    if field.kind == "boolean":
        return st.booleans()
    if field.kind == "choice":
        return st.sampled_from([c for c, _ in field.choices])
    if field.kind == "multi_choice":
        return st.lists(st.sampled_from([c for c, _ in field.choices]), unique=True)
    if field.kind == "date":
        return st.dates(BIRTH_DATE, TODAY).map(date.isoformat)
    return texts


def field_json(field):
    """A JSON value for a field: usually of the right kind, sometimes anything at all."""
    odd_numbers = st.one_of(
        st.floats(), st.integers(), st.integers(10**300, 10**400), st.sampled_from([-0.0, 1e308])
    )
    return st.one_of(valid_field_json(field), odd_numbers, any_json)


@st.composite
def findings_json(draw):
    findings = {}
    for step in draw(st.lists(st.sampled_from(SPEC.steps), max_size=4, unique_by=lambda s: s.code)):
        values = {f.code: draw(valid_field_json(f)) for f in step.entry_fields if f.required}
        for field in draw(st.lists(st.sampled_from(step.fields), unique_by=lambda f: f.code)):
            values[field.code] = draw(field_json(field))
        findings[step.code] = values
    if draw(st.integers(0, 9)) == 0:
        findings[draw(texts)] = draw(any_json)  # an unknown step
    return findings


valid_patient_json = st.fixed_dictionaries(
    {
        "age_years": st.one_of(st.integers(0, 120), st.floats(0, 120)),
        "sex": st.sampled_from(["male", "female", "other", "unknown"]),
    },
    optional={"adult_pathway": st.one_of(st.booleans(), any_json)},
)


@st.composite
def case_json(draw):
    """A case in the vignette shape: mostly well formed, any part of it possibly wrong."""
    case = {
        "id": draw(st.one_of(texts, any_json)),
        "patient": draw(st.one_of(valid_patient_json, valid_patient_json, any_json)),
        "findings": draw(findings_json()),
    }
    if draw(st.integers(0, 4)) == 0:
        case[draw(st.sampled_from(sorted(case)))] = draw(any_json)  # one part of the wrong shape
    return case


VIGNETTE_CASES = json.loads(VIGNETTES.read_text())


@fuzz_settings(examples=100)
@given(
    cases=st.one_of(
        any_json,
        st.lists(case_json(), min_size=1, max_size=3),
        st.lists(st.sampled_from(VIGNETTE_CASES), max_size=2).flatmap(
            lambda valid: st.lists(case_json(), max_size=1).map(lambda bad: valid + bad)
        ),
    )
)
def test_workup_suggest_refuses_or_answers_but_never_crashes(tmp_path_factory, cases):
    path = tmp_path_factory.mktemp("cases") / "cases.json"
    path.write_text(json.dumps(cases), encoding="utf-8")
    out = StringIO()
    try:
        call_command("workup_suggest", str(path), stdout=out, stderr=StringIO())
    except CommandError as error:
        assert error.returncode == 2, f"exit status {error.returncode}: {error}"
        event("refused (exit status 2)")
        return
    event("answered")
    results = json.loads(out.getvalue(), parse_constant=_no_nan)
    assert isinstance(results, list) and len(results) == len(cases)


def _no_nan(constant):
    raise AssertionError(f"the output is not strict JSON: it holds {constant}")


def suggest_exit_status(path) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("workup_suggest", str(path), stdout=out, stderr=StringIO())
    except CommandError as error:
        return error.returncode, str(error)
    return 0, out.getvalue()


@pytest.mark.parametrize(
    "raw", ["", "[", "{}", "null", "[1]", "[[]]", '[{"patient": []}]', "\ufeff[]"]
)
def test_workup_suggest_refuses_raw_files_that_are_not_cases(tmp_path, raw):
    path = tmp_path / "cases.json"
    path.write_text(raw, encoding="utf-8")

    assert suggest_exit_status(path)[0] == 2


# --- what fuzzing found, pinned ---------------------------------------------------------------


def test_an_out_of_range_percentage_is_refused_not_a_server_error(browser, workup):
    """The unit '%' ended up in a validator message, which Django %-formats: it was a 500."""
    data = {
        "result": "positive",
        "method": "ddpcr",
        "high_sensitivity": "yes",
        "vaf_percent": "150",
        "performed_on": TODAY.isoformat(),
        "workup_version": CURRENT,
    }

    response = browser.post(
        reverse("step_form", args=[workup.pk, "kit_d816v_peripheral_blood"]),
        resolve(data, workup),
    )

    assert_no_server_error(response, data)
    assert response.status_code == 400
    assert "Enter a plausible value between 0 and 100 %." in response.content.decode()


@pytest.mark.parametrize("loaded_at", ["-1e300", "1e300", "1e12", "-1e12"])
def test_a_stale_form_with_a_tampered_load_time_is_not_a_server_error(browser, workup, loaded_at):
    """The conflict page turned loaded_at into a datetime unchecked: these were a 500."""
    data = {
        "value_ng_ml": "12",
        "is_baseline": "yes",
        "performed_on": TODAY.isoformat(),
        "workup_version": STALE,
        "loaded_at": loaded_at,
    }

    response = browser.post(
        reverse("step_form", args=[workup.pk, "serum_tryptase"]), resolve(data, workup)
    )

    assert_no_server_error(response, data)
    assert response.status_code in (400, 409)


@pytest.mark.parametrize(
    "raw",
    ["[" + "9" * 5000 + "]", "[" * 100_000 + "]" * 100_000],
    ids=["an integer of 5000 digits", "arrays nested 100000 deep"],
)
def test_workup_suggest_refuses_json_python_cannot_read(tmp_path, raw):
    """json.load raises ValueError / RecursionError here; _read used to let them out: exit 1."""
    path = tmp_path / "cases.json"
    path.write_text(raw, encoding="utf-8")

    assert suggest_exit_status(path)[0] == 2


def one_case(findings: dict) -> list:
    return [{"id": "odd", "patient": {"age_years": 40, "sex": "male"}, "findings": findings}]


@pytest.mark.parametrize(
    "findings",
    [
        {"serum_tryptase": {"value_ng_ml": float("nan"), "is_baseline": True}},
        {"history": {"mediator_symptoms": True, "anaphylaxis": False, "nicas_score": 10**400}},
    ],
    ids=["NaN tryptase", "integer beyond a float"],
)
def test_workup_suggest_refuses_nan_and_huge_numbers(tmp_path, findings):
    """NaN used to pass the plausible-range check (every comparison with NaN is false), the
    case was evaluated and NaN printed (not JSON); an integer above 1e308 raised OverflowError."""
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(one_case(findings)), encoding="utf-8")

    status, output = suggest_exit_status(path)

    assert status == 2, output


def test_a_nul_in_the_worklist_step_filter_is_not_a_server_error(browser, workup):
    """The step filter went into the query unchecked; PostgreSQL text cannot hold NUL."""
    response = browser.get(reverse("worklist"), {"step": "dexa\x00"})

    assert_no_server_error(response, {"step": "dexa\x00"})
