"""Every rule of the mastocytosis protocol (R1-R30, R23b), through the engine API.

Pure unit tests: the protocol is read from fixtures/mastocytosis.json, no database.
Clinical reference: /work/shared/docs/workup-protocol.md (rules in section c).
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import pytest

from workup.core.engine import PatientInput, RecordInput, build_facts, evaluate
from workup.protocols.file import read_protocol_file

ROOT = Path(__file__).resolve().parent.parent
SPEC = read_protocol_file(ROOT / "fixtures" / "mastocytosis.json")
DAY = date(2026, 1, 15)

BMB = "bone_marrow_biopsy"
KIT_PB = "kit_d816v_peripheral_blood"


# ---------------------------------------------------------------- helpers
def run(age=50.0, sex="male", adult_pathway=False, **steps):
    """Evaluate a workup. Each keyword is a step code with a dict of values, or a list
    of dicts for several records of a repeatable step (oldest first)."""
    records = []
    for code, values in steps.items():
        if values is None:
            continue
        for i, vals in enumerate(values if isinstance(values, list) else [values]):
            records.append(
                RecordInput(step_code=code, values=vals, performed_on=DAY + timedelta(days=i))
            )
    patient = PatientInput(age_years=age, sex=sex, adult_pathway=adult_pathway)
    ev = evaluate(SPEC, build_facts(SPEC, patient=patient, records=records))
    assert ev.errors == []
    return ev


def history(**over):
    values = {
        "mediator_symptoms": True,
        "anaphylaxis": False,
        "anaphylaxis_trigger": "none",
        "episode_urticaria_angioedema_pruritus": False,
        "episode_presyncope_syncope": False,
        "episode_flushing": False,
        "unexplained_osteoporosis": False,
        "osteoporosis_other_cause": False,
        "ckd_or_dialysis": False,
    }
    values.update(over)
    return values


NO_SKIN = {"typical_lesions": False, "lesion_pattern": "none", "darier_sign": "not_tested"}
SKIN = {
    "typical_lesions": True,
    "lesion_pattern": "mpcm_monomorphic",
    "darier_sign": "positive",
    "extensive_involvement": False,
}
EXAM = {"hepatomegaly": False, "splenomegaly": False, "lymphadenopathy": False}


def cbc(**over):
    values = {
        "hemoglobin_g_dl": 13.5,
        "platelets_10e9_l": 250,
        "anc_10e9_l": 4.0,
        "eosinophils_10e9_l": 0.2,
        "unexplained_abnormality": False,
    }
    values.update(over)
    return values


def bst(value):
    return {"value_ng_ml": value, "is_baseline": True}


def adult_no_lesions(bst_value=10.0, **over):
    """A typical adult without skin lesions: history, skin, exam, baseline tryptase, count."""
    steps = {
        "history": history(),
        "skin_exam": NO_SKIN,
        "physical_exam": EXAM,
        "serum_tryptase": bst(bst_value),
        "cbc_diff": cbc(),
    }
    steps.update(over)
    return steps


def reasons(ev, step, kind="suggest"):
    outcome = ev.steps[step]
    chosen = {
        "suggest": outcome.suggest_reasons,
        "not_indicated": outcome.not_indicated_reasons,
        "note": outcome.notes,
        "suppressed": outcome.suppressed_reasons,
    }[kind]
    return {o.code: o.label for o in chosen}


def state(ev, step):
    return ev.steps[step].state


# ---------------------------------------------------------------- the fixture
def test_fixture_has_every_rule_and_step_in_order():
    codes = [r.code for r in SPEC.rules]
    expected = [f"R{i}" for i in range(1, 24)] + ["R23b"] + [f"R{i}" for i in range(24, 31)]
    assert codes == expected
    assert [s.code for s in SPEC.steps][:7] == [
        "history",
        "skin_exam",
        "physical_exam",
        "serum_tryptase",
        "acute_tryptase",
        "urine_mediators",
        "cbc_diff",
    ]
    assert [s.code for s in SPEC.steps if s.is_safety_item] == [
        "epinephrine_autoinjector",
        "trigger_counseling",
        "anesthesia_alert",
        "medical_alert_id",
    ]
    rules = SPEC.rules_by_code
    assert [c for c, r in rules.items() if not r.enabled] == ["R16"]
    assert sorted(c for c, r in rules.items() if r.repeat_when_done) == ["R13", "R5"]
    assert rules["R28"].action == "housekeeping" and rules["R28"].target_step is None
    assert {c for c, r in rules.items() if r.action == "note"} == {"R20", "R21", "R29"}
    assert {c for c, r in rules.items() if r.action == "not_indicated"} == {"R10", "R18"}
    assert [d.code for d in SPEC.disagreements] == [f"D{i}" for i in range(1, 16)]
    rema = SPEC.step("history").field("rema_score")
    assert (rema.kind, rema.min_value, rema.max_value, rema.calculation) == (
        "integer",
        -4,
        7,
        "rema_score",
    )


def test_every_source_key_cited_exists():
    keys = set()
    for r in SPEC.rules:
        keys.update(re.findall(r"\[([A-Za-z0-9-]+)", r.source))
    for s in SPEC.steps:
        keys.update(re.findall(r"\[([A-Za-z0-9-]+)", s.source))
    for c in SPEC.criteria:
        keys.update(re.findall(r"\[([A-Za-z0-9-]+)", c.source))
    assert keys <= set(SPEC.sources)


VIGNETTES = json.loads((ROOT / "fixtures" / "cases" / "mastocytosis-vignettes.json").read_text())


@pytest.mark.parametrize("case", VIGNETTES, ids=[case["id"] for case in VIGNETTES])
def test_vignettes(case):
    # The rema_score some vignettes carry is ignored: the engine computes it.
    ev = run(age=case["patient"]["age_years"], sex=case["patient"]["sex"], **case["findings"])
    for step in case["expected_suggested"]:
        assert state(ev, step) == "suggested", (case["id"], step)
    for step in case["expected_not_suggested"]:
        assert state(ev, step) != "suggested", (case["id"], step)
    typed_rema = case["findings"]["history"].get("rema_score")
    if typed_rema is not None:  # the vignette's own REMA agrees with the engine's
        assert ev.derived["rema_score"] == typed_rema


# ---------------------------------------------------------------- conventions
def test_adult_at_exactly_18_and_child_at_17_99():
    assert run(age=18.0).derived["adult"] is True
    assert run(age=18.0).derived["child"] is False
    ev = run(age=17.99)
    assert ev.derived["adult"] is False and ev.derived["child"] is True


def test_adult_pathway_override_makes_an_adolescent_adult():
    ev = run(age=16.0, adult_pathway=True)
    assert ev.derived["adult"] is True and ev.derived["child"] is False
    assert "R7" in reasons(ev, "chemistry_liver")
    assert "D14" in ev.disagreements  # still shown: the override is for use from puberty


def test_unknown_age_is_neither_adult_nor_child():
    ev = run(age=None)
    assert ev.derived["adult"] is False and ev.derived["child"] is False


def test_unexamined_skin_is_neither_lesions_nor_no_lesions():
    ev = run()
    assert ev.derived["lesions"] is False and ev.derived["no_lesions"] is False


def test_acute_value_never_counts_as_bst():
    ev = run(serum_tryptase={"value_ng_ml": 50.0, "is_baseline": False})
    assert ev.derived["bst"] is None
    assert "R12" not in reasons(ev, BMB)


def test_latest_baseline_counts_even_after_a_later_acute_sample():
    ev = run(serum_tryptase=[bst(25.0), {"value_ng_ml": 60.0, "is_baseline": False}])
    assert ev.derived["bst"] == 25.0
    assert "R5" not in reasons(ev, "serum_tryptase")


# ---------------------------------------------------------------- base workup
def test_r1_to_r4_and_r6_suggest_the_base_steps_on_an_empty_workup():
    ev = run()
    assert "R1" in reasons(ev, "history")
    assert reasons(ev, "skin_exam")["R2"] == "including Darier's sign"
    assert reasons(ev, "physical_exam")["R3"] == "liver, spleen, lymph nodes"
    assert "baseline" in reasons(ev, "serum_tryptase")["R4"]
    assert reasons(ev, "cbc_diff")["R6"] == "all ages"


def test_r2_label_for_children_mentions_gentle_darier():
    label = reasons(run(age=1.5), "skin_exam")["R2"]
    assert "gently" in label and "DCM" in label


def test_base_steps_done_are_not_suggested_again():
    ev = run(**adult_no_lesions())
    for step in ("history", "skin_exam", "physical_exam", "serum_tryptase", "cbc_diff"):
        assert state(ev, step) == "done"


def test_r5_non_baseline_tryptase_is_suggested_again():
    ev = run(serum_tryptase={"value_ng_ml": 9.0, "is_baseline": False})
    assert state(ev, "serum_tryptase") == "suggested"
    assert list(reasons(ev, "serum_tryptase")) == ["R5"]
    assert "24 h" in reasons(ev, "serum_tryptase")["R5"]


def test_r7_chemistry_in_adults_only():
    assert "R7" in reasons(run(age=40), "chemistry_liver")
    assert state(run(age=10), "chemistry_liver") == "not_suggested"
    done = run(age=40, chemistry_liver={"liver_dysfunction": False})
    assert state(done, "chemistry_liver") == "done"
    assert "R7" in reasons(done, "chemistry_liver", "suppressed")


def test_r30_urine_mediators_with_mediator_symptoms():
    assert "R30" in reasons(run(history=history(mediator_symptoms=True)), "urine_mediators")
    assert (
        state(run(history=history(mediator_symptoms=False)), "urine_mediators") == "not_suggested"
    )
    done = run(history=history(), urine_mediators={"any_elevated": True})
    assert state(done, "urine_mediators") == "done"


# ---------------------------------------------------------------- skin lesions
def test_r8_skin_biopsy_labels():
    assert reasons(run(age=40, skin_exam=SKIN), "skin_biopsy")["R8"] == "histology ± lesional KIT"
    assert reasons(run(age=6, skin_exam=SKIN), "skin_biopsy")["R8"].startswith("confirmatory")
    assert state(run(age=40, skin_exam=NO_SKIN), "skin_biopsy") == "not_suggested"


def test_r9_marrow_in_adults_with_lesions_whatever_the_tryptase():
    ev = run(age=40, skin_exam=SKIN, serum_tryptase=bst(5.0))
    assert reasons(ev, BMB)["R9"] == "recommended/consider"
    assert "R9" not in reasons(run(age=17.99, skin_exam=SKIN), BMB)


def test_r10_pediatric_guard_even_with_raised_tryptase():
    ev = run(age=8, skin_exam=SKIN, physical_exam=EXAM, serum_tryptase=bst(40.0), cbc_diff=cbc())
    assert state(ev, BMB) == "not_indicated"
    assert reasons(ev, BMB, "not_indicated") == {"R10": "follow-up: tryptase and blood count"}


@pytest.mark.parametrize(
    "steps",
    [
        {"physical_exam": {**EXAM, "splenomegaly": True}},
        {
            "physical_exam": EXAM,
            "abdominal_imaging": {"modality": "ultrasound", "hepatomegaly": True},
        },
        {"physical_exam": EXAM, "cbc_diff": cbc(hemoglobin_g_dl=9.5)},
        {"physical_exam": EXAM, "cbc_diff": cbc(unexplained_abnormality=True)},
    ],
)
def test_r11_child_with_organomegaly_or_blood_abnormality(steps):
    ev = run(age=8, skin_exam=SKIN, **steps)
    label = reasons(ev, BMB)["R11"]
    assert label.startswith("refer to pediatric hematology")
    assert "repeat count" in label
    assert "R10" not in reasons(ev, BMB, "not_indicated")


# ---------------------------------------------------------------- adults without lesions
def test_r12_threshold_20_0_does_not_fire_20_1_does():
    assert "R12" not in reasons(run(**adult_no_lesions(20.0)), BMB)
    ev = run(**adult_no_lesions(20.1))
    assert "R12" in reasons(ev, BMB)
    assert reasons(ev, BMB)["R12"] is None  # no kidney caveat
    assert "D5" in ev.disagreements
    assert "D5" not in run(**adult_no_lesions(20.0)).disagreements


def test_r12_kidney_caveat_only_with_ckd():
    ev = run(**adult_no_lesions(32.0, history=history(ckd_or_dialysis=True)))
    assert "kidney failure/dialysis" in reasons(ev, BMB)["R12"]


def test_r12_uses_hat_adjusted_tryptase_and_adults_only():
    one_copy = {"extra_alpha_copies": 1, "hat_present": True}
    ev = run(**adult_no_lesions(30.0, hat_genotyping=one_copy))
    assert ev.derived["bst_adj"] == 15.0
    assert "R12" not in reasons(ev, BMB)
    no_copy = run(**adult_no_lesions(30.0, hat_genotyping={"extra_alpha_copies": 0}))
    assert "R12" in reasons(no_copy, BMB)
    assert "R12" not in reasons(run(age=17.99, **adult_no_lesions(30.0)), BMB)


def test_r13_blood_kit_in_adults_without_lesions():
    ev = run(**adult_no_lesions())
    assert "high-sensitivity" in reasons(ev, KIT_PB)["R13"]
    assert "clinician to confirm" not in reasons(ev, KIT_PB)["R13"]
    # needs a reason: symptoms, anaphylaxis or osteoporosis
    quiet = run(**adult_no_lesions(history=history(mediator_symptoms=False)))
    assert state(quiet, KIT_PB) == "not_suggested"
    osteo = run(
        **adult_no_lesions(history=history(mediator_symptoms=False, unexplained_osteoporosis=True))
    )
    assert "R13" in reasons(osteo, KIT_PB)
    # not with skin lesions, not once the marrow is done, not in children
    assert "R13" not in reasons(run(age=40, history=history(), skin_exam=SKIN), KIT_PB)
    marrow = run(**adult_no_lesions(bone_marrow_biopsy={"mc_aggregates_ge15": False}))
    assert "R13" not in reasons(marrow, KIT_PB)
    assert "R13" not in reasons(run(age=17.99, **adult_no_lesions()), KIT_PB)


@pytest.mark.parametrize("trigger", ["food", "drug"])
def test_r13_clinician_to_confirm_when_food_or_drug_anaphylaxis_is_the_only_reason(trigger):
    only = history(mediator_symptoms=False, anaphylaxis=True, anaphylaxis_trigger=trigger)
    ev = run(**adult_no_lesions(history=only))
    assert "clinician to confirm" in reasons(ev, KIT_PB)["R13"]
    assert "D13" in ev.disagreements
    also_symptoms = history(mediator_symptoms=True, anaphylaxis=True, anaphylaxis_trigger=trigger)
    ev = run(**adult_no_lesions(history=also_symptoms))
    assert "clinician to confirm" not in reasons(ev, KIT_PB)["R13"]


def test_r13_venom_anaphylaxis_is_not_flagged():
    venom = history(mediator_symptoms=False, anaphylaxis=True, anaphylaxis_trigger="hymenoptera")
    assert (
        "clinician to confirm" not in reasons(run(**adult_no_lesions(history=venom)), KIT_PB)["R13"]
    )


def test_r13_repeats_after_a_low_sensitivity_negative_only():
    ngs = {"result": "negative", "method": "ngs", "high_sensitivity": False}
    ev = run(**adult_no_lesions(**{KIT_PB: ngs}))
    assert state(ev, KIT_PB) == "suggested"
    assert "low-sensitivity" in reasons(ev, KIT_PB)["R13"]
    hs = {"result": "negative", "method": "ddpcr", "high_sensitivity": True}
    assert state(run(**adult_no_lesions(**{KIT_PB: hs})), KIT_PB) == "done"
    pos = {"result": "positive", "method": "asqpcr", "high_sensitivity": True}
    assert state(run(**adult_no_lesions(**{KIT_PB: pos})), KIT_PB) == "done"
    # the latest blood KIT result counts: NGS negative, then ddPCR negative
    later = run(**adult_no_lesions(**{KIT_PB: [ngs, hs]}))
    assert state(later, KIT_PB) == "done"


def test_r14_positive_blood_kit():
    pos = {"result": "positive", "method": "asqpcr", "high_sensitivity": True}
    ev = run(**adult_no_lesions(**{KIT_PB: pos}))
    assert "R14" in reasons(ev, BMB)
    assert "R14" not in reasons(run(age=17.99, **adult_no_lesions(**{KIT_PB: pos})), BMB)


def anaphylaxis_history(urticaria, syncope):
    return history(
        anaphylaxis=True,
        anaphylaxis_trigger="hymenoptera",
        episode_urticaria_angioedema_pruritus=urticaria,
        episode_presyncope_syncope=syncope,
    )


def test_r15_rema_exactly_2_fires_with_consider_below_11_5():
    # female -1, no urticaria +1, syncope +3, BST 10 (< 15) -1 = 2
    ev = run(sex="female", **adult_no_lesions(10.0, history=anaphylaxis_history(False, True)))
    assert ev.derived["rema_score"] == 2
    assert ev.facts["history"]["rema_score"] == 2
    assert reasons(ev, BMB)["R15"] == "consider"
    assert "D11" in ev.disagreements


def test_r15_rema_1_does_not_fire():
    # male +1, urticaria -2, syncope +3, BST 10 -1 = 1
    ev = run(sex="male", **adult_no_lesions(10.0, history=anaphylaxis_history(True, True)))
    assert ev.derived["rema_score"] == 1
    assert "R15" not in reasons(ev, BMB)
    assert state(ev, BMB) == "not_indicated"


def test_r15_no_consider_label_from_11_5_and_negative_kit_does_not_cancel():
    hs_neg = {"result": "negative", "method": "asqpcr", "high_sensitivity": True}
    ev = run(**adult_no_lesions(11.5, history=anaphylaxis_history(False, True), **{KIT_PB: hs_neg}))
    assert ev.derived["rema_score"] == 4
    assert reasons(ev, BMB)["R15"] is None
    assert state(ev, BMB) == "suggested"


def test_r15_needs_anaphylaxis_no_lesions_and_marrow_not_done():
    no_ana = history(episode_presyncope_syncope=True)  # REMA 4 but no anaphylaxis
    ev = run(**adult_no_lesions(10.0, history=no_ana))
    assert ev.derived["rema_score"] == 4
    assert "R15" not in reasons(ev, BMB)
    lesions = run(age=50, history=anaphylaxis_history(False, True), skin_exam=SKIN)
    assert lesions.derived["rema_score"] is None
    assert "R15" not in reasons(lesions, BMB)


@pytest.mark.parametrize(
    "bst_value, points", [(14.9, -1), (15.0, 0), (20.0, 0), (25.0, 0), (25.1, 2)]
)
def test_rema_bst_points_15_and_25_score_0(bst_value, points):
    # male +1, no urticaria +1, no syncope 0
    ev = run(sex="male", **adult_no_lesions(bst_value, history=anaphylaxis_history(False, False)))
    assert ev.derived["rema_score"] == 2 + points


def test_rema_range_extremes():
    top = run(sex="male", **adult_no_lesions(30.0, history=anaphylaxis_history(False, True)))
    assert top.derived["rema_score"] == 7
    low = run(sex="female", **adult_no_lesions(5.0, history=anaphylaxis_history(True, False)))
    assert low.derived["rema_score"] == -4


def test_rema_not_computed_without_an_episode_item_or_bst():
    partial = history(anaphylaxis=True)
    del partial["episode_presyncope_syncope"]
    assert run(**adult_no_lesions(history=partial)).derived["rema_score"] is None
    steps = adult_no_lesions(history=anaphylaxis_history(False, True))
    steps["serum_tryptase"] = {"value_ng_ml": 10.0, "is_baseline": False}
    assert run(**steps).derived["rema_score"] is None


@pytest.mark.parametrize("sex", ["other", "unknown", None])
def test_r15_non_binary_sex_fires_when_both_totals_are_at_least_2(sex):
    # no urticaria +1, syncope +3, BST 10 -1 = 3: male-scored 4, female-scored 2
    ev = run(sex=sex, **adult_no_lesions(10.0, history=anaphylaxis_history(False, True)))
    assert ev.derived["rema_score"] is None
    assert (ev.derived["rema_score_male"], ev.derived["rema_score_female"]) == (4, 2)
    assert "REMA not computable: sex" in ev.derived["rema_note"]
    assert "R15" in reasons(ev, BMB)


def test_r15_non_binary_sex_only_male_total_at_least_2_suggests_nothing():
    # no urticaria +1, no syncope 0, BST 20 (15-25) 0 = 1: male-scored 2, female-scored 0
    ev = run(sex="other", **adult_no_lesions(20.0, history=anaphylaxis_history(False, False)))
    assert (ev.derived["rema_score_male"], ev.derived["rema_score_female"]) == (2, 0)
    assert "R15" not in reasons(ev, BMB)
    assert "clinician to decide" in ev.derived["rema_note"]
    assert ev.derived["rema_high"] is False


def test_binary_sex_has_no_sex_scored_totals():
    ev = run(sex="male", **adult_no_lesions(10.0, history=anaphylaxis_history(False, True)))
    assert ev.derived["rema_score_male"] is None and ev.derived["rema_note"] is None


def test_r16_nicas_is_disabled():
    idio = history(anaphylaxis=True, anaphylaxis_trigger="idiopathic", nicas_score=5)
    ev = run(**adult_no_lesions(5.0, history=idio))
    assert "R16" not in reasons(ev, BMB)
    assert "D9" in ev.disagreements


@pytest.mark.parametrize(
    "over",
    [
        {"physical_exam": {**EXAM, "hepatomegaly": True}},
        {"physical_exam": {**EXAM, "lymphadenopathy": True}},
        {"abdominal_imaging": {"modality": "ct", "lymphadenopathy_gt2cm": True}},
        {"cbc_diff": cbc(hemoglobin_g_dl=9.9)},
        {"cbc_diff": cbc(platelets_10e9_l=99)},
        {"cbc_diff": cbc(anc_10e9_l=0.9)},
        {"history": history(unexplained_osteoporosis=True)},
    ],
)
def test_r17_organomegaly_blood_abnormality_or_osteoporosis(over):
    assert "R17" in reasons(run(**adult_no_lesions(5.0, **over)), BMB)


@pytest.mark.parametrize(
    "over",
    [
        {"cbc_diff": cbc(hemoglobin_g_dl=10.0)},
        {"cbc_diff": cbc(platelets_10e9_l=100)},
        {"cbc_diff": cbc(anc_10e9_l=1.0)},
    ],
)
def test_r17_c_finding_cut_offs_are_strict(over):
    assert "R17" not in reasons(run(**adult_no_lesions(5.0, **over)), BMB)


def test_r17_osteoporosis_by_dexa_needs_other_cause_recorded_as_no():
    dexa = {"lowest_t_score": -2.5}
    ev = run(**adult_no_lesions(5.0, history=history(osteoporosis_other_cause=False), dexa=dexa))
    assert "men and premenopausal women" in reasons(ev, BMB)["R17"]
    other = run(**adult_no_lesions(5.0, history=history(osteoporosis_other_cause=True), dexa=dexa))
    assert "R17" not in reasons(other, BMB)
    unknown = history()
    del unknown["osteoporosis_other_cause"]
    assert "R17" not in reasons(run(**adult_no_lesions(5.0, history=unknown, dexa=dexa)), BMB)
    mild = {"lowest_t_score": -2.4}
    assert "R17" not in reasons(run(**adult_no_lesions(5.0, dexa=mild)), BMB)


def test_r18_no_marrow_indication_and_its_labels():
    ev = run(**adult_no_lesions(5.0))
    assert state(ev, BMB) == "not_indicated"
    assert reasons(ev, BMB, "not_indicated") == {"R18": None}
    hs = {"result": "negative", "method": "ddpcr", "high_sensitivity": True}
    ev = run(**adult_no_lesions(5.0, **{KIT_PB: hs}))
    assert reasons(ev, BMB, "not_indicated")["R18"] == "follow-up: tryptase and blood count"
    ngs = {"result": "negative", "method": "sanger", "high_sensitivity": False}
    ev = run(**adult_no_lesions(5.0, **{KIT_PB: ngs}))
    assert "not informative" in reasons(ev, BMB, "not_indicated")["R18"]


def test_r18_suggestions_win_and_done_marrow_is_done():
    ev = run(**adult_no_lesions(25.0))
    assert state(ev, BMB) == "suggested"
    assert "R12" in reasons(ev, BMB)
    done = run(**adult_no_lesions(25.0, bone_marrow_biopsy={"mc_aggregates_ge15": False}))
    assert state(done, BMB) == "done"
    assert "R18" not in reasons(done, BMB, "not_indicated")


def test_r19_hat_genotyping_from_bst_8_with_consider_below_11_5():
    ev = run(**adult_no_lesions(8.0))
    assert reasons(ev, "hat_genotyping")["R19"] == "consider"
    assert state(run(**adult_no_lesions(7.9)), "hat_genotyping") == "not_suggested"
    assert reasons(run(**adult_no_lesions(11.4)), "hat_genotyping")["R19"] == "consider"
    assert reasons(run(**adult_no_lesions(11.5)), "hat_genotyping")["R19"] is None
    assert "D7" in ev.disagreements


def test_r19_needs_symptoms_anaphylaxis_or_sm_suspect():
    quiet = history(mediator_symptoms=False)
    assert state(run(**adult_no_lesions(9.0, history=quiet)), "hat_genotyping") == "not_suggested"
    staged = run(**adult_no_lesions(9.0, history=quiet, cbc_diff=cbc(platelets_10e9_l=80)))
    assert "R19" in reasons(staged, "hat_genotyping")
    assert state(run(age=17.99, **adult_no_lesions(9.0)), "hat_genotyping") == "not_suggested"


def test_r20_raw_and_adjusted_bst_side_by_side():
    hat = {"extra_alpha_copies": 2, "hat_present": True}
    ev = run(**adult_no_lesions(30.0, hat_genotyping=hat))
    label = reasons(ev, "serum_tryptase", "note")["R20"]
    assert "30" in label and "BST_ADJ 10" in label
    assert ev.derived["bst_adj"] == 10.0
    assert "D2" in ev.disagreements
    none = run(**adult_no_lesions(30.0, hat_genotyping={"extra_alpha_copies": 0}))
    assert "R20" not in reasons(none, "serum_tryptase", "note")


def acute(value):
    return {"value_ng_ml": value, "hours_after_onset": 1.5}


@pytest.mark.parametrize(
    "acute_value, ecnm",
    [(8.1, "above"), (8.0, "at boundary"), (7.9, "not above")],
)
def test_r21_ecnm_20_percent_plus_2_with_boundary(acute_value, ecnm):
    ev = run(**adult_no_lesions(5.0, acute_tryptase=acute(acute_value)))
    assert ev.derived["ecnm_threshold"] == 8.0
    assert ev.derived["acute_rise_ecnm"] == ecnm
    assert f": {ecnm}" in reasons(ev, "acute_tryptase", "note")["R21"]
    assert "D6" in ev.disagreements


@pytest.mark.parametrize(
    "acute_value, nih",
    [(16.9, "above"), (16.85, "at boundary"), (16.8, "not above")],
)
def test_r21_nih_ratio_1_685_with_boundary(acute_value, nih):
    ev = run(**adult_no_lesions(10.0, acute_tryptase=acute(acute_value)))
    assert ev.derived["acute_rise_nih"] == nih
    assert ev.derived["acute_bst_ratio"] == pytest.approx(acute_value / 10.0)


def test_r21_ecnm_boundary_with_a_decimal_baseline():
    # 1.2 x 3.3 + 2 = 5.96 exactly (floating point gives 5.959999...)
    ev = run(**adult_no_lesions(3.3, acute_tryptase=acute(5.96)))
    assert ev.derived["acute_rise_ecnm"] == "at boundary"


def test_r21_needs_a_baseline_and_acute_values_never_feed_r12_or_rema():
    ev = run(
        **adult_no_lesions(
            history=anaphylaxis_history(False, True),
            serum_tryptase={"value_ng_ml": 60.0, "is_baseline": False},
            acute_tryptase=acute(80.0),
        )
    )
    assert "R21" not in reasons(ev, "acute_tryptase", "note")
    assert ev.derived["acute_rise_ecnm"] is None and ev.derived["acute_rise_nih"] is None
    assert "R12" not in reasons(ev, BMB) and ev.derived["rema_score"] is None
    assert "R5" in reasons(ev, "serum_tryptase")


# ---------------------------------------------------------------- staging and imaging
@pytest.mark.parametrize(
    "steps",
    [
        {"history": history(), "skin_exam": SKIN},
        adult_no_lesions(20.1),
        adult_no_lesions(
            5.0, **{KIT_PB: {"result": "positive", "method": "ddpcr", "high_sensitivity": True}}
        ),
        adult_no_lesions(5.0, physical_exam={**EXAM, "splenomegaly": True}),
        adult_no_lesions(5.0, cbc_diff=cbc(anc_10e9_l=0.5)),
        adult_no_lesions(
            5.0, bone_marrow_biopsy={"mc_aggregates_ge15": False, "kit_d816v_bm": "positive"}
        ),
    ],
)
def test_r22_r23_staging(steps):
    ev = run(age=45, **steps)
    assert ev.derived["staging"] is True
    assert "R22" in reasons(ev, "dexa")
    assert reasons(ev, "abdominal_imaging")["R23"].startswith("ultrasound first")


def test_r22_r23_not_without_staging_or_in_children():
    ev = run(**adult_no_lesions(20.0))
    assert ev.derived["staging"] is False
    assert (
        state(ev, "dexa") == "not_suggested" and state(ev, "abdominal_imaging") == "not_suggested"
    )
    child = run(age=10, skin_exam=SKIN)
    assert (
        state(child, "dexa") == "not_suggested"
        and state(child, "abdominal_imaging") == "not_suggested"
    )


def test_r23b_child_with_organomegaly_on_exam():
    ev = run(age=4, physical_exam={**EXAM, "hepatomegaly": True})
    assert reasons(ev, "abdominal_imaging") == {"R23b": "ultrasound, to confirm organomegaly"}
    assert state(run(age=4, physical_exam=EXAM), "abdominal_imaging") == "not_suggested"


# ---------------------------------------------------------------- safety items
def test_r24_epinephrine():
    ana = run(
        **adult_no_lesions(5.0, history=history(anaphylaxis=True, anaphylaxis_trigger="food"))
    )
    assert "R24" in reasons(ana, "epinephrine_autoinjector")
    assert reasons(ana, "epinephrine_autoinjector")["R24"] is None
    staged = run(**adult_no_lesions(25.0, history=history()))
    assert "R24" in reasons(staged, "epinephrine_autoinjector")
    dcm = run(age=1, skin_exam={**SKIN, "lesion_pattern": "dcm"})
    assert "R24" in reasons(dcm, "epinephrine_autoinjector")
    extensive = run(age=3, skin_exam={**SKIN, "extensive_involvement": True})
    assert "R24" in reasons(extensive, "epinephrine_autoinjector")
    plain = run(age=3, skin_exam=SKIN, history=history())
    assert state(plain, "epinephrine_autoinjector") == "not_suggested"
    quiet_adult = run(**adult_no_lesions(5.0))
    assert state(quiet_adult, "epinephrine_autoinjector") == "not_suggested"


def test_r24_three_devices_for_venom_allergy_with_clonal_disease():
    venom = history(anaphylaxis=True, anaphylaxis_trigger="hymenoptera")
    ev = run(age=40, history=venom, skin_exam=SKIN)
    assert "≥3 devices" in reasons(ev, "epinephrine_autoinjector")["R24"]
    no_clonal = run(**adult_no_lesions(5.0, history=venom))
    assert reasons(no_clonal, "epinephrine_autoinjector")["R24"] is None


def test_r25_r26_r27_safety_items():
    child_lesions = run(age=5, skin_exam=SKIN, history=history())
    assert "R25" in reasons(child_lesions, "trigger_counseling")
    assert "R26" in reasons(child_lesions, "anesthesia_alert")
    assert state(child_lesions, "medical_alert_id") == "not_suggested"
    ana = run(
        **adult_no_lesions(5.0, history=history(anaphylaxis=True, anaphylaxis_trigger="drug"))
    )
    assert "R25" in reasons(ana, "trigger_counseling")
    assert "R27" in reasons(ana, "medical_alert_id")
    assert state(ana, "anesthesia_alert") == "not_suggested"
    staged = run(**adult_no_lesions(25.0))
    for step, code in (
        ("trigger_counseling", "R25"),
        ("anesthesia_alert", "R26"),
        ("medical_alert_id", "R27"),
    ):
        assert code in reasons(staged, step)
    quiet = run(**adult_no_lesions(5.0))
    for step in ("trigger_counseling", "anesthesia_alert", "medical_alert_id"):
        assert state(quiet, step) == "not_suggested"


def test_safety_items_for_rema_high_adults():
    ev = run(sex="female", **adult_no_lesions(10.0, history=anaphylaxis_history(False, True)))
    assert ev.derived["staging"] is False and ev.derived["sm_suspect"] is True
    assert "R26" in reasons(ev, "anesthesia_alert")


# ---------------------------------------------------------------- housekeeping and marrow
def test_r28_done_step_lists_its_suggestions_as_already_done():
    marrow = {"mc_aggregates_ge15": True, "kit_d816v_bm": "positive"}
    ev = run(age=40, history=history(), skin_exam=SKIN, bone_marrow_biopsy=marrow)
    assert state(ev, BMB) == "done"
    assert "R9" in reasons(ev, BMB, "suppressed")
    assert "R28" in SPEC.rules_by_code


def test_r29_who_icc_items_once_the_marrow_is_done():
    marrow = {
        "mc_aggregates_ge15": True,
        "atypical_morphology_gt25pct": False,
        "kit_d816v_bm": "positive",
        "cd25_cd2_cd30_aberrant": True,
        "associated_myeloid_neoplasm": False,
        "tk_fusion_detected": False,
    }
    ev = run(**adult_no_lesions(30.0, bone_marrow_biopsy=marrow))
    assert "R29" in reasons(ev, BMB, "note")
    crit = ev.criteria
    assert (crit["sm_major"].who, crit["sm_major"].icc) == ("documented", "documented")
    assert crit["sm_minor_1_morphology"].who == "not_documented"
    assert crit["sm_minor_2_kit"].who == "documented"
    assert crit["sm_minor_3_cd"].icc == "documented"
    assert crit["sm_minor_4_tryptase"].who == "documented"
    assert (crit["sm_exclusion_tk_fusion"].who, crit["sm_exclusion_tk_fusion"].icc) == (
        None,
        "not_documented",
    )
    assert crit["b2_lineages"].who == "not_assessed"


def test_r29_associated_myeloid_neoplasm_makes_tryptase_item_not_applicable():
    marrow = {"mc_aggregates_ge15": True, "associated_myeloid_neoplasm": True}
    ev = run(**adult_no_lesions(30.0, bone_marrow_biopsy=marrow))
    assert "not applicable" in reasons(ev, BMB, "note")["R29"]
    item = ev.criteria["sm_minor_4_tryptase"]
    assert (item.who, item.icc) == ("not_applicable", "not_applicable")


def test_marrow_items_not_assessed_before_the_marrow():
    ev = run(**adult_no_lesions(30.0))
    assert "R29" not in reasons(ev, BMB, "note")
    for code in ("sm_major", "sm_minor_1_morphology", "sm_minor_3_cd"):
        assert (ev.criteria[code].who, ev.criteria[code].icc) == ("not_assessed", "not_assessed")


def test_tryptase_item_who_uses_bst_adj_icc_raw():
    hat = {"extra_alpha_copies": 1, "hat_present": True}
    ev = run(**adult_no_lesions(30.0, hat_genotyping=hat))
    item = ev.criteria["sm_minor_4_tryptase"]
    assert (item.who, item.icc) == ("not_documented", "documented")


def test_kit_item_ignores_low_sensitivity_negative():
    ngs = {"result": "negative", "method": "ngs", "high_sensitivity": False}
    assert run(**adult_no_lesions(**{KIT_PB: ngs})).criteria["sm_minor_2_kit"].who == "not_assessed"
    hs = {"result": "negative", "method": "ddpcr", "high_sensitivity": True}
    assert (
        run(**adult_no_lesions(**{KIT_PB: hs})).criteria["sm_minor_2_kit"].who == "not_documented"
    )


def test_d12_rema_caveat_when_bst_15_or_more_and_hat_not_excluded():
    steps = adult_no_lesions(18.0, history=anaphylaxis_history(False, True))
    assert "D12" in run(**steps).disagreements
    excluded = {**steps, "hat_genotyping": {"extra_alpha_copies": 0, "hat_present": False}}
    assert "D12" not in run(**excluded).disagreements
    assert (
        "D12"
        not in run(**adult_no_lesions(14.9, history=anaphylaxis_history(False, True))).disagreements
    )
