"""How long the workup summary PDF takes for a complete workup.

    .venv/bin/python bench/pdf_bench.py [--runs 7] [--keep DIR]

Builds a throwaway SQLite database (migrations, the mastocytosis protocol, one
patient whose every step is documented or marked, eight tryptase values and
long notes), then times GET /workups/<id>/summary.pdf through Django's test
client, i.e. everything a user waits for: access check, queries, the
view-model, the template and WeasyPrint. The first request is reported
separately (it imports WeasyPrint and Pango); the figure that counts is the
median of the runs after it (wall clock, and the CPU time of this process, which a
busy machine inflates less), with the cycle collector as is and after gc.freeze()
(as the gunicorn workers run), and the split between the page, WeasyPrint's layout
and its PDF writing. Target: a median of 0.3 s on the 2-core machine.

Not part of the test run. --keep DIR writes the PDF, the print page and the HTML
given to WeasyPrint there.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import os
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from pypdf import PdfReader

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 0.3  # issue 15: median, one at a time

# A complete workup: an adult with typical skin lesions, worked up to the marrow.
RESULTS: list[tuple[str, int, dict]] = [
    (
        "history",
        200,
        {
            "mediator_symptoms": True,
            "anaphylaxis": True,
            "anaphylaxis_trigger": "hymenoptera",
            "episode_urticaria_angioedema_pruritus": False,
            "episode_presyncope_syncope": True,
            "episode_flushing": True,
            "unexplained_osteoporosis": False,
            "osteoporosis_other_cause": False,
        },
    ),
    (
        "skin_exam",
        199,
        {
            "typical_lesions": True,
            "lesion_pattern": "mpcm_monomorphic",
            "lesion_count": 40,
            "darier_sign": "positive",
            "extensive_involvement": False,
        },
    ),
    (
        "physical_exam",
        199,
        {"hepatomegaly": False, "splenomegaly": False, "lymphadenopathy": False},
    ),
    ("acute_tryptase", 150, {"value_ng_ml": 61.5, "hours_after_onset": 2.0}),
    ("acute_tryptase", 40, {"value_ng_ml": 48.0, "hours_after_onset": 1.5}),
    (
        "urine_mediators",
        170,
        {
            "n_methylhistamine_ug_g_creat": 210.0,
            "collected_during_symptoms": False,
            "any_elevated": True,
        },
    ),
    ("cbc_diff", 170, {"hemoglobin_g_dl": 13.1, "platelets_10e9_l": 240.0, "anc_10e9_l": 3.9}),
    ("cbc_diff", 30, {"hemoglobin_g_dl": 12.8, "platelets_10e9_l": 232.0, "anc_10e9_l": 4.1}),
    (
        "chemistry_liver",
        170,
        {"alp_u_l": 88.0, "alt_u_l": 24.0, "albumin_g_dl": 4.2, "liver_dysfunction": False},
    ),
    ("skin_biopsy", 160, {"mc_infiltrate_increased": True, "kit_d816v_lesional": "positive"}),
    (
        "kit_d816v_peripheral_blood",
        150,
        {"result": "positive", "method": "ddpcr", "high_sensitivity": True, "vaf_percent": 0.8},
    ),
    ("hat_genotyping", 140, {"extra_alpha_copies": 0, "hat_present": False}),
    (
        "bone_marrow_biopsy",
        100,
        {
            "mc_aggregates_ge15": True,
            "atypical_morphology_gt25pct": True,
            "kit_d816v_bm": "positive",
            "cd25_cd2_cd30_aberrant": True,
            "mc_infiltration_pct": 15.0,
            "associated_myeloid_neoplasm": False,
            "tk_fusion_detected": False,
        },
    ),
    ("dexa", 90, {"lowest_t_score": -1.8, "site": "lumbar spine L1-L4"}),
    (
        "abdominal_imaging",
        90,
        {
            "modality": "ultrasound",
            "hepatomegaly": False,
            "splenomegaly": False,
            "lymphadenopathy_gt2cm": False,
            "ascites": False,
        },
    ),
    ("epinephrine_autoinjector", 60, {"prescribed": True, "count": 2, "trained": True}),
    (
        "trigger_counseling",
        60,
        {"completed": True, "topics": "Hymenoptera, heat, alcohol, NSAIDs, opioids, anaesthesia"},
    ),
    ("anesthesia_alert", 60, {"documented": True}),
]
# Baseline tryptase every few months, one not at baseline.
TRYPTASE = [(200, 38.0, True), (180, 41.5, True), (120, 52.0, False), (90, 36.0, True)]
TRYPTASE += [(60, 34.5, True), (30, 33.0, True), (10, 35.5, True), (1, 31.0, True)]
LONG_NOTE = (
    "Discussed with the patient and her partner; questions answered. "
    "Reference: outside laboratory report 2026-0001234567890-ABCDEFGHIJKLMNOPQRSTUVWXYZ "
    "scanned into the chart. " * 3
)


def setup_django(database: Path) -> None:
    os.environ["DATABASE_URL"] = f"sqlite:///{database}"
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-not-for-production")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings

    # Production settings (DEBUG off) but static files straight from the finders, as in
    # the tests: no collectstatic needed.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def complete_workup():
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from workup.models import Membership, Patient, Site
    from workup.records import writes

    call_command("migrate", verbosity=0)
    with contextlib.redirect_stdout(io.StringIO()):
        call_command("load_protocol", str(ROOT / "fixtures" / "mastocytosis.json"), verbosity=0)
    site = Site.objects.create(code="bench", name="Bench Clinic")
    user = get_user_model().objects.create_user(
        "bench", password="bench-password-123", first_name="Ada", last_name="Bench"
    )
    Membership.objects.create(user=user, site=site, role=Membership.Role.CLINICIAN)
    patient = Patient.objects.create(
        site=site,
        mrn="B-000042",
        family_name="Benchmark",
        given_name="Beatrice",
        birth_date=date(1968, 3, 14),
        sex="female",
    )
    workup = writes.open_workup(patient=patient, user=user)
    today = date.today()

    def save(step_code, days_ago, values, note=""):
        workup.refresh_from_db()
        writes.record_step(
            workup=workup,
            step_code=step_code,
            values=values,
            performed_on=today - timedelta(days=days_ago),
            note=note,
            user=user,
            expected_version=workup.version,
        )

    for days_ago, value, baseline in TRYPTASE:
        save("serum_tryptase", days_ago, {"value_ng_ml": value, "is_baseline": baseline})
    for step_code, days_ago, values in RESULTS:
        save(
            step_code, days_ago, values, note=LONG_NOTE if step_code == "bone_marrow_biopsy" else ""
        )
    workup.refresh_from_db()
    writes.set_mark(
        workup=workup,
        step_code="medical_alert_id",
        status="declined",
        reason="Patient prefers a wallet card to a bracelet; card given.",
        user=user,
        expected_version=workup.version,
    )
    return workup, user


def pdf_html(workup, user) -> str:
    """The HTML that WeasyPrint lays out, for profiling it on its own."""
    from django.template.loader import render_to_string
    from django.test import RequestFactory

    from workup.views import printing

    request = RequestFactory().get("/")
    request.user = user
    context = printing.summary_context(request, workup, for_pdf=True)
    return render_to_string(printing.SUMMARY_TEMPLATE, context)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="write the PDF and the print page here")
    parser.add_argument("--write", action="store_true", help="write its section of results.md")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        setup_django(Path(tmp) / "bench.sqlite3")
        from django.test import Client
        from django.urls import reverse

        from workup.printing import pdf

        workup, user = complete_workup()
        client = Client()
        client.force_login(user)
        url = reverse("workup_summary_pdf", args=[workup.pk])

        def timed_get(path):
            started, cpu_started = time.perf_counter(), time.process_time()
            response = client.get(path, secure=True)
            elapsed = time.perf_counter() - started, time.process_time() - cpu_started
            assert response.status_code == 200, response.status_code
            return elapsed, response

        (first, _), response = timed_get(url)
        unfrozen = [timed_get(url)[0] for _ in range(args.runs)]
        # As a gunicorn worker does once it has started (config/gunicorn.conf.py).
        gc.freeze()
        frozen = [timed_get(url)[0] for _ in range(args.runs)]
        pages = len(PdfReader(io.BytesIO(response.content)).pages)

        # Where the time goes: the page (queries, view-model, template), WeasyPrint's
        # parse + CSS + layout, and its drawing + PDF writing (fonts, compression).
        html = pdf_html(workup, user)
        phases = {"page": [], "layout": [], "write": []}
        for _ in range(args.runs):
            started = time.perf_counter()
            pdf_html(workup, user)
            laid_out = time.perf_counter()
            document = pdf.render_document(html)
            written = time.perf_counter()
            document.write_pdf()
            done = time.perf_counter()
            phases["page"].append(laid_out - started)
            phases["layout"].append(written - laid_out)
            phases["write"].append(done - written)

        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            (args.keep / "summary.pdf").write_bytes(response.content)
            page = client.get(reverse("workup_summary", args=[workup.pk]), secure=True)
            (args.keep / "summary.html").write_bytes(page.content)
            (args.keep / "summary-pdf.html").write_text(html)

    medians = {
        name: statistics.median(w for w, _ in runs)
        for name, runs in (("unfrozen", unfrozen), ("frozen", frozen))
    }
    cpu = statistics.median(c for _, c in frozen)
    phase = {name: statistics.median(times) for name, times in phases.items()}
    load = os.getloadavg()[0]
    lines = [
        f"complete workup: {len(RESULTS) + len(TRYPTASE) + 1} entries, PDF of {pages} pages",
        f"first request (imports WeasyPrint): {first:.3f} s",
        f"runs, collector as is (wall): {', '.join(f'{w:.3f}' for w, _ in unfrozen)}",
        f"runs after gc.freeze() (wall): {', '.join(f'{w:.3f}' for w, _ in frozen)}",
        f"median of {args.runs}: {medians['unfrozen']:.3f} s as is, {medians['frozen']:.3f} s "
        f"frozen ({cpu:.3f} s CPU; target <= {TARGET_SECONDS} s)",
        f"phases (frozen, median): page {phase['page']:.3f} s, WeasyPrint parse + CSS + layout "
        f"{phase['layout']:.3f} s, drawing + writing the PDF {phase['write']:.3f} s",
        f"load average (1 min) {load:.1f} on {os.cpu_count()} cores",
    ]
    print("\n".join(lines))
    if args.write:
        sys.path.insert(0, str(ROOT / "bench"))
        from run import write_section

        write_section(
            "pdf",
            [
                "## Summary PDF of a complete workup, one at a time",
                "",
                f"`bench/pdf_bench.py --write`, {time.strftime('%Y-%m-%d %H:%M', time.gmtime())}"
                " UTC: GET /workups/<id>/summary.pdf through Django's test client (access,"
                ' queries, template, WeasyPrint), the first request left out. "As is": the'
                ' cycle collector untouched; "frozen": after `gc.freeze()`, as every gunicorn'
                " worker now does once started.",
                "",
                *[f"- {line}" for line in lines],
            ],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
