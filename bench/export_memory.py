"""Peak memory and time of `export_workups` over N synthetic workups (not part of the tests).

    .venv/bin/python bench/export_memory.py 100000
    .venv/bin/python bench/export_memory.py 100000 --format fhir-ndjson --write
    .venv/bin/python bench/export_memory.py 100000 --format refresh --write   # refresh_workups
    .venv/bin/python bench/export_memory.py 1000 --db /tmp/export-bench-1k.sqlite3

Builds a scratch SQLite database (migrate + load_protocol), seeds N clearly
synthetic patients ("Synthetic", "Bench000001", MRN BENCH-000001) with one
workup each and a realistic mix of results via bulk_create, then runs the
export in a child process and reports the child's peak RSS
(VmHWM of /proc/self/status, read in the child), its time, and the
rows written. Re-running with the same --db and N reuses the seeded data.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SITE_CODE = "bench"
PROTOCOL_FIXTURE = ROOT / "fixtures" / "mastocytosis.json"
REFRESH = "refresh"


def scratch_environment(db: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"sqlite:///{db}",
        SECRET_KEY="bench-only-secret-key",
        DEBUG="false",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    return env


def _manage(env, *args) -> None:
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, check=True)


def _findings(rng: random.Random, index: int) -> dict[str, dict]:
    """A plausible mix of results; every workup differs a little."""
    adult = index % 7 != 0
    findings = {
        "history": {
            "mediator_symptoms": rng.random() < 0.7,
            "anaphylaxis": rng.random() < 0.3,
            "anaphylaxis_trigger": rng.choice(["hymenoptera", "idiopathic", "none"]),
            "episode_urticaria_angioedema_pruritus": rng.random() < 0.5,
            "episode_presyncope_syncope": rng.random() < 0.3,
            "episode_flushing": rng.random() < 0.5,
            "unexplained_osteoporosis": rng.random() < 0.1,
        },
        "skin_exam": {
            "typical_lesions": rng.random() < 0.5,
            "darier_sign": rng.choice(["positive", "negative", "not_tested"]),
        },
        "serum_tryptase": {"value_ng_ml": round(rng.uniform(2, 80), 1), "is_baseline": True},
    }
    if index % 2 == 0:
        findings["physical_exam"] = {
            "hepatomegaly": False,
            "splenomegaly": rng.random() < 0.05,
            "lymphadenopathy": False,
        }
        findings["cbc_diff"] = {
            "hemoglobin_g_dl": round(rng.uniform(9, 16), 1),
            "platelets_10e9_l": rng.randint(90, 400),
            "anc_10e9_l": round(rng.uniform(0.9, 7), 1),
            "unexplained_abnormality": False,
        }
    if adult and index % 3 == 0:
        findings["kit_d816v_peripheral_blood"] = {
            "result": rng.choice(["positive", "negative"]),
            "method": "ddpcr",
            "high_sensitivity": True,
        }
    if index % 5 == 0:
        findings["acute_tryptase"] = {
            "value_ng_ml": round(rng.uniform(5, 120), 1),
            "hours_after_onset": 2,
        }
    return findings, adult


def seed(db: Path, count: int) -> float:
    """Seed `count` synthetic workups unless the database already holds them; seconds taken."""
    env = scratch_environment(db)
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from workup import reads
    from workup.models import Patient, Site, StepRecord, Workup

    site, _ = Site.objects.get_or_create(code=SITE_CODE, defaults={"name": "Bench (synthetic)"})
    existing = Workup.objects.filter(patient__site=site).count()
    if existing == count:
        return 0.0
    if existing:
        raise SystemExit(f"{db} holds {existing} bench workups, not {count}: use another --db.")
    started = time.perf_counter()
    user, _ = get_user_model().objects.get_or_create(username="bench-synthetic")
    protocol = reads.current_protocol()
    steps = {s.code: s for s in protocol.stepdefinition_set.all()}
    rng = random.Random(20260101)
    today = timezone.localdate()
    now = timezone.now()
    batch = 5000
    for start in range(0, count, batch):
        size = min(batch, count - start)
        plans = [_findings(rng, start + i) for i in range(size)]
        patients = Patient.objects.bulk_create(
            [
                Patient(
                    site=site,
                    mrn=f"BENCH-{start + i + 1:06d}",
                    family_name="Synthetic",
                    given_name=f"Bench{start + i + 1:06d}",
                    birth_date=date(1950, 1, 1) + timedelta(days=rng.randint(0, 365 * 45))
                    if plans[i][1]
                    else today - timedelta(days=rng.randint(365, 365 * 16)),
                    sex=rng.choice(["female", "male", "other", "unknown"]),
                    created_by=user,
                )
                for i in range(size)
            ]
        )
        workups = Workup.objects.bulk_create(
            [
                Workup(patient=p, protocol=protocol, opened_by=user, last_change_at=now)
                for p in patients
            ]
        )
        records = []
        for workup, (findings, _adult) in zip(workups, plans, strict=True):
            for offset, (code, values) in enumerate(findings.items()):
                records.append(
                    StepRecord(
                        workup=workup,
                        step=steps[code],
                        values=values,
                        performed_on=today - timedelta(days=30 - offset),
                        recorded_by=user,
                    )
                )
        StepRecord.objects.bulk_create(records)
    return time.perf_counter() - started


def child(db: Path, output: Path, chunk_size: int, output_format: str) -> None:
    """Run the export in this (child) process; print its peak RSS as JSON."""
    os.environ.update(scratch_environment(db))
    import django

    django.setup()
    from django.core.management import call_command

    started = time.perf_counter()
    with open(output, "w", encoding="utf-8", newline="") as handle:
        if output_format == REFRESH:  # the other batch job over every workup
            call_command("refresh_workups", all=True, batch_size=chunk_size, stdout=handle)
        else:
            call_command(
                "export_workups",
                site=SITE_CODE,
                chunk_size=chunk_size,
                format=output_format,
                stdout=handle,
            )
    elapsed = time.perf_counter() - started
    peak_kib = _peak_rss_kib()
    print(json.dumps({"seconds": round(elapsed, 1), "peak_rss_mib": round(peak_kib / 1024, 1)}))


def _peak_rss_kib() -> int:
    """This process's peak resident set, from the kernel's high-water mark. Not ru_maxrss:
    Linux carries that across fork and exec, so a child started by a parent that has just
    seeded 100,000 workups would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status (not Linux?)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, nargs="?", default=100_000)
    parser.add_argument("--db", type=Path)
    parser.add_argument("--chunk-size", type=int, default=500)
    parser.add_argument("--format", default="csv", choices=["csv", "fhir-ndjson", REFRESH])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--write", action="store_true", help="add the figures to results.md")
    args = parser.parse_args()
    db = args.db or Path(f"/tmp/export-bench-{args.count}.sqlite3")
    suffix = {"csv": ".csv", "fhir-ndjson": ".ndjson"}.get(args.format, ".txt")
    output = args.output or db.with_suffix(suffix)
    if args.child:
        child(db, output, args.chunk_size, args.format)
        return

    env = scratch_environment(db)
    started = time.perf_counter()
    _manage(env, "migrate", "--noinput", "-v0")
    _manage(env, "load_protocol", str(PROTOCOL_FIXTURE), "-v0")
    setup_seconds = time.perf_counter() - started
    seed_seconds = seed(db, args.count)
    result = subprocess.run(
        [
            sys.executable,
            __file__,
            str(args.count),
            "--db",
            str(db),
            "--output",
            str(output),
            "--chunk-size",
            str(args.chunk_size),
            "--format",
            args.format,
            "--child",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    with open(output, encoding="utf-8") as handle:
        if args.format == REFRESH:  # "Refreshed 100000 workups and ..."
            rows = int(handle.read().split()[1])
        else:
            rows = sum(1 for _ in handle) - (args.format == "csv")  # the CSV has a header line
    if args.write:
        args.output = output
        write_results(args, rows, measured, seed_seconds)
    print(
        json.dumps(
            {
                "workups": args.count,
                "format": args.format,
                "rows_written": rows,
                "output_mib": round(output.stat().st_size / 2**20, 1),
                "migrate_and_load_seconds": round(setup_seconds, 1),
                "seed_seconds": round(seed_seconds, 1),
                "export_seconds": measured["seconds"],
                "export_peak_rss_mib": measured["peak_rss_mib"],
                "chunk_size": args.chunk_size,
            },
            indent=1,
        )
    )


def write_results(args, rows: int, measured: dict, seed_seconds: float) -> None:
    """This format and size's line in the export section of bench/results.md (others kept)."""
    from datetime import UTC, datetime

    sys.path.insert(0, str(ROOT / "bench"))
    from run import RESULTS, write_section

    text = RESULTS.read_text() if RESULTS.exists() else ""
    begin, end = "<!-- begin export -->", "<!-- end export -->"
    rows_before = []
    if begin in text and end in text:
        section = text[text.index(begin) + len(begin) : text.index(end)]
        rows_before = [
            line
            for line in section.splitlines()
            if line.startswith(("| csv ", "| fhir-ndjson ", f"| {REFRESH} "))
            and not line.startswith(f"| {args.format} | {args.count:,} ")
        ]
    load = os.getloadavg()[0]
    size = args.output.stat().st_size
    row = (
        f"| {args.format} | {args.count:,} | {rows:,} | {measured['seconds']:.1f} | "
        f"{measured['peak_rss_mib']:.1f} | {size / 2**20:,.0f} | {args.chunk_size} | "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {load:.1f} |"
    )

    def order(line: str):
        cells = line.split("|")
        return cells[1].strip(), int(cells[2].replace(",", ""))

    write_section(
        "export",
        [
            "## Batch work over every workup: CSV and FHIR NDJSON export, refresh_workups",
            "",
            "`bench/export_memory.py N [--format fhir-ndjson|refresh] --write`: SQLite, N",
            "synthetic workups with a realistic mix of results, `export_workups` (or",
            "`refresh_workups --all`) in a child process (its own peak RSS), writing to a",
            "file. FHIR: one Bundle per line, not validated (`--validate` adds about 6 ms a",
            "Bundle). refresh: every workup's snapshot rebuilt and written, then ANALYZE.",
            "",
            "| work | workups | rows | seconds | peak RSS, MiB | output, MiB | chunk | measured |",
            "|---|--:|--:|--:|--:|--:|--:|---|",
            *sorted([*rows_before, row], key=order),
        ],
    )


if __name__ == "__main__":
    main()
