"""Moving a workup from version 1 (reference v0.2) to version 2 (v0.3), as a clinician does.

The preview names the differences (which suggestions change, which values carry over to a
renamed field) before anything is written; the move converts the urine PGD2-metabolite value
to the v2 field in pg/mg creatinine and is recorded in the workup's history.
"""

from __future__ import annotations

import re
from datetime import date
from html import unescape

from django.core.management import call_command
from django.urls import reverse

from workup.models import Protocol
from workup.records import writes

from .conftest import PROTOCOL_V2_FIXTURE, record
from .factories import PatientFactory


def text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def test_a_v1_workup_moves_to_v2_with_its_values_converted(client, clinician_a, site_a):
    patient = PatientFactory(site=site_a, birth_date=date(2010, 1, 1), created_by=clinician_a)
    workup = writes.open_workup(patient=patient, user=clinician_a)
    assert workup.protocol.version == 1
    record(workup, clinician_a, "history", {"mediator_symptoms": True, "anaphylaxis": False})
    record(
        workup,
        clinician_a,
        "urine_mediators",
        {"pgd2_metabolite_ng_mg_creat": 1.25, "any_elevated": True},
    )
    record(workup, clinician_a, "skin_exam", {"typical_lesions": False})
    call_command("load_protocol", str(PROTOCOL_V2_FIXTURE), verbosity=0)
    v2 = Protocol.objects.get(code="mastocytosis", version=2)

    client.force_login(clinician_a)
    url = reverse("workup_move_version", args=[workup.pk])
    preview = text(client.get(url).content.decode())
    assert "Move from version 1 to version 2?" in preview
    assert "2,3-dinor-11β-PGF2α: 1.25 ng/mg creatinine becomes 1250 pg/mg creatinine" in preview
    assert "pgd2_metabolite_ng_mg_creat" not in preview  # not listed as a lost value
    # A teenager without skin lesions: v2 puts her on the adult path, so her blood KIT and
    # marrow read differently; the preview says so before anything moves.
    assert "Bone marrow aspirate and biopsy" in preview and "not yet" in preview

    workup.refresh_from_db()
    response = client.post(url, {"workup_version": workup.version, "target": v2.pk})
    assert response.status_code == 302
    workup.refresh_from_db()
    assert workup.protocol == v2
    urine = workup.records.get(step__code="urine_mediators")
    assert urine.values == {"pgf2a_metabolite_pg_mg_creat": 1250.0, "any_elevated": True}
    assert urine.history.latest().history_change_reason == "moved from v1 to v2"
    assert "bone_marrow_biopsy" in workup.not_yet_steps
