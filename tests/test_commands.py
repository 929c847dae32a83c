"""Management commands: load_protocol and load_demo."""

import json
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from workup.models import Membership, Patient, Protocol, Rule, Site, StepRecord, Workup

from .conftest import PROTOCOL_FIXTURE, ROOT

pytestmark = pytest.mark.django_db
DEMO = ROOT / "fixtures" / "demo.json"


def load(path) -> str:
    out = StringIO()
    call_command("load_protocol", str(path), stdout=out)
    return out.getvalue()


def broken_copy(tmp_path, mutate) -> str:
    rows = json.loads(PROTOCOL_FIXTURE.read_text())
    mutate(rows)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(rows))
    return str(path)


def rule_row(rows, code):
    return next(r for r in rows if r["model"] == "workup.rule" and r["fields"]["code"] == code)


def test_loading_the_shipped_protocol_again_changes_nothing():
    assert "already loaded" in load(PROTOCOL_FIXTURE)
    assert Protocol.objects.filter(code="mastocytosis").count() == 1


def test_a_rule_naming_an_unknown_field_is_refused_and_nothing_is_loaded(tmp_path):
    def typo(rows):
        for row in rows:
            if row["model"] == "workup.protocol":
                row["fields"]["version"] = 99
            for key in ("protocol", "step", "target_step"):
                value = row["fields"].get(key)
                if isinstance(value, list) and value[:2] == ["mastocytosis", 1]:
                    row["fields"][key] = ["mastocytosis", 99, *value[2:]]
        rule_row(rows, "R12")["fields"]["condition"] = {">": [{"var": "serum_tryptase.basal"}, 20]}

    with pytest.raises(CommandError) as error:
        load(broken_copy(tmp_path, typo))
    assert "rule R12" in str(error.value) and "serum_tryptase.basal" in str(error.value)
    assert not Protocol.objects.filter(version=99).exists()


def test_a_changed_version_with_workups_is_refused(tmp_path, workup_a):
    def change_threshold(rows):
        rule_row(rows, "R12")["fields"]["condition"] = {">": [{"var": "calc.bst_adj"}, 25]}

    with pytest.raises(CommandError) as error:
        load(broken_copy(tmp_path, change_threshold))
    assert "workup(s) are pinned" in str(error.value)
    condition = Rule.objects.get(code="R12", protocol__version=1).condition
    assert "25" not in json.dumps(condition)


def test_invalid_json_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("[{")
    with pytest.raises(CommandError, match="not valid JSON"):
        load(path)


def test_load_demo_creates_sites_users_and_patients_once(protocol_v2):
    call_command("load_demo", str(DEMO), stdout=StringIO())
    counts = (
        Site.objects.count(),
        get_user_model().objects.count(),
        Membership.objects.count(),
        Patient.objects.count(),
        Workup.objects.count(),
        StepRecord.objects.count(),
    )
    call_command("load_demo", str(DEMO), stdout=StringIO())
    assert counts == (
        Site.objects.count(),
        get_user_model().objects.count(),
        Membership.objects.count(),
        Patient.objects.count(),
        Workup.objects.count(),
        StepRecord.objects.count(),
    )
    assert set(Site.objects.values_list("name", flat=True)) == {"North Clinic", "South Clinic"}
    clinician = get_user_model().objects.get(username="clinician")
    assert clinician.check_password("demo-password")
    assert Membership.objects.get(user=clinician).role == "clinician"
    assert get_user_model().objects.get(username="admin").is_superuser
    assert (
        get_user_model()
        .objects.get(username="protocoladmin")
        .groups.filter(name="Protocol admins")
        .exists()
    )
    # The vignettes are demo patients, with their workup state precomputed.
    e03 = Workup.objects.get(patient__mrn="N-1003")
    assert "bone_marrow_biopsy" in e03.suggested_steps
    assert e03.suggestions.filter(step_code="bone_marrow_biopsy").exists()
    assert Patient.objects.filter(site__code="south").count() >= 3
