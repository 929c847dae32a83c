"""A second, unrelated protocol runs with no code change: the core knows no disease.

The fixture (tests/fixtures/second-protocol.json) has three steps, its own rules,
criterion group and trend series, and no export-code file. Loaded like any
protocol, it goes through the checklist, the step form, the print (HTML and PDF),
the CSV export and the FHIR export.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse
from fhir.resources.R4B.bundle import Bundle

from workup.models import Protocol, Workup

from .conftest import record

pytestmark = pytest.mark.django_db

SECOND_PROTOCOL = Path(__file__).resolve().parent / "fixtures" / "second-protocol.json"


@pytest.fixture
def second_protocol(settings):
    call_command("load_protocol", str(SECOND_PROTOCOL), verbosity=0)
    settings.WORKUP_DEFAULT_PROTOCOL = "anaemia-workup"
    settings.WORKUP_APP_TITLE = "Iron deficiency workup"
    return Protocol.objects.get(code="anaemia-workup", version=1)


@pytest.fixture
def workup(client, clinician_a, patient_a, second_protocol):
    client.force_login(clinician_a)
    response = client.post(reverse("workup_open", args=[patient_a.pk]))
    opened = Workup.objects.get(patient=patient_a)
    assert response.status_code == 302 and response.url == reverse("checklist", args=[opened.pk])
    return opened


def page(client, name, workup) -> str:
    response = client.get(reverse(name, args=[workup.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_a_new_workup_opens_on_the_protocol_the_setting_names(workup, second_protocol):
    assert workup.protocol == second_protocol


def test_the_checklist_shows_the_protocols_own_steps_reasons_and_counts(
    client, clinician_a, workup
):
    first = page(client, "checklist", workup)
    assert "Fatigue history" in first and "Record the fatigue history first." in first
    assert "Test checklist: it states no diagnosis" in first
    assert "Test guideline for iron deficiency, 2026." in first
    assert "Mastocytosis" not in first and "tryptase" not in first.lower()

    record(workup, clinician_a, "history", {"fatigue": True})
    assert "Fatigue is reported: measure serum ferritin." in page(client, "checklist", workup)
    record(workup, clinician_a, "ferritin", {"value_ug_l": 12.5})
    after = page(client, "checklist", workup)
    assert "Low ferritin in an adult: refer for endoscopy." in after
    assert "Documented laboratory items: WHO column, major 0, minor 1 of 1" in after


def test_the_step_form_saves_a_value_with_the_protocols_unit(client, workup):
    url = reverse("step_form", args=[workup.pk, "ferritin"])
    form = client.get(url)
    assert form.status_code == 200 and "µg/L" in form.content.decode()
    response = client.post(
        url,
        {
            "value_ug_l": "8",
            "performed_on": "2026-11-02",
            "note": "",
            **{
                name: form.context["form"][name].value() for name in ("workup_version", "loaded_at")
            },
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert workup.records.get(step__code="ferritin").values == {"value_ug_l": 8.0}


def test_the_print_draws_the_protocols_trend(client, clinician_a, workup):
    record(workup, clinician_a, "history", {"fatigue": True})
    record(workup, clinician_a, "ferritin", {"value_ug_l": 45}, performed_on=date(2026, 3, 1))
    record(workup, clinician_a, "ferritin", {"value_ug_l": 18}, performed_on=date(2026, 6, 1))
    summary = page(client, "workup_summary", workup)
    assert "Ferritin over time" in summary and "Test checklist: it states no diagnosis" in summary
    assert "Iron deficiency workup (test protocol)" in summary
    assert "18 µg/L" in summary or "18 µg/l" in summary.lower()
    pdf = client.get(reverse("workup_summary_pdf", args=[workup.pk]))
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")


def test_the_csv_export_has_the_protocols_columns(client, clinician_a, workup):
    record(workup, clinician_a, "history", {"fatigue": True})
    record(workup, clinician_a, "ferritin", {"value_ug_l": 12.5})
    response = client.get("/workups/export.csv", {"protocol": "anaemia-workup"})
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    [row] = list(csv.DictReader(io.StringIO(text)))
    assert row["protocol.code"] == "anaemia-workup"
    assert row["ferritin.value_ug_l"] == "12.5" and row["ferritin.records"] == "1"
    assert row["history.fatigue"] == "true"
    assert row["endoscopy_referral.state"] == "suggested"


def test_the_fhir_export_uses_local_codes_for_a_protocol_without_a_code_file(
    client, clinician_a, workup
):
    record(workup, clinician_a, "ferritin", {"value_ug_l": 12.5})
    response = client.get(reverse("workup_fhir", args=[workup.pk]))
    assert response.status_code == 200
    bundle = json.loads(response.content)
    Bundle.model_validate(bundle)
    observations = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
    ]
    [ferritin] = [
        o for o in observations if o["code"]["coding"][-1]["code"] == "ferritin.value_ug_l"
    ]
    assert ferritin["code"]["coding"][-1]["system"].startswith("urn:workup:protocol")
    assert ferritin["valueQuantity"]["value"] == 12.5
    assert ferritin["valueQuantity"]["unit"] == "µg/L"
