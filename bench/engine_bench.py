"""Compiled rules against the JSONLogic interpreter, per evaluation (not part of the tests).

    .venv/bin/python bench/engine_bench.py            # 3 rounds, writes bench/results.md
    .venv/bin/python bench/engine_bench.py --rounds 5 --no-write

Evaluates the shipped protocol (fixtures/mastocytosis.json) on the public example
vignettes, the case library and 1,000 seeded workups (bench/export_memory.py's
mix of results), once compiled and once interpreted, the two taking turns case
by case so that the machine's load falls on both alike. Reports the median time
per evaluation of each round, the median of the rounds and their ratio, the
one-off cost of compiling the protocol, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

# The public examples E01-E10, as given, are the first cases of the v2 case library.
EXAMPLES = ROOT / "fixtures" / "cases" / "mastocytosis-v2-vignettes.json"
LIBRARY = ROOT / "fixtures" / "cases" / "mastocytosis-vignettes.json"


def setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
    import django

    django.setup()


def inputs(spec, seeded: int):
    """(facts, label) for every case: the vignettes, the library, the seeded workups."""
    from export_memory import _findings

    from workup.core.engine import PatientInput, RecordInput, build_facts

    def facts_of(patient: dict, findings: dict):
        records = [
            RecordInput(code, values, date(2026, 1, 1))
            for code, values in findings.items()
            if code in spec.steps_by_code
        ]
        return build_facts(
            spec,
            patient=PatientInput(patient["age_years"], patient["sex"], False),
            records=records,
        )

    cases = []
    examples = [c for c in json.loads(EXAMPLES.read_text(encoding="utf-8")) if c["id"][0] == "E"]
    for case in examples + json.loads(LIBRARY.read_text(encoding="utf-8")):
        cases.append((facts_of(case["patient"], case.get("findings", {})), case["id"]))
    rng = random.Random(20261207)
    for index in range(seeded):
        findings, adult = _findings(rng, index)
        patient = {
            "age_years": rng.randint(19, 85) if adult else rng.randint(1, 16),
            "sex": "female",
        }
        cases.append((facts_of(patient, findings), "seeded"))
    return cases


def one_round(spec, cases) -> tuple[list[float], list[float]]:
    from workup.core.engine import evaluate

    compiled, interpreted = [], []
    for facts, _ in cases:
        start = time.perf_counter()
        evaluate(spec, facts)
        compiled.append(time.perf_counter() - start)
        start = time.perf_counter()
        evaluate(spec, facts, interpreted=True)
        interpreted.append(time.perf_counter() - start)
    return compiled, interpreted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seeded", type=int, default=1_000)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    setup()
    from run import ratio_table, write_section

    from workup.core.spec import ProtocolSpec
    from workup.protocols.file import read_protocol_file

    spec: ProtocolSpec = read_protocol_file(ROOT / "fixtures" / "mastocytosis.json")
    start = time.perf_counter()
    spec.compiled  # noqa: B018 - the one-off compile, timed
    compile_ms = (time.perf_counter() - start) * 1000
    expressions = sum(1 for _ in spec.expressions())
    cases = inputs(spec, args.seeded)
    loads = [os.getloadavg()[0]]
    rounds = []
    for _ in range(args.rounds):
        compiled, interpreted = one_round(spec, cases)
        rounds.append((statistics.median(compiled) * 1000, statistics.median(interpreted) * 1000))
        loads.append(os.getloadavg()[0])
    lines = [
        "## Rules engine: compiled against interpreted",
        "",
        f"`bench/engine_bench.py`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: protocol "
        f"{spec.code} v{spec.version} ({expressions} expressions, compiled once in "
        f"{compile_ms:.0f} ms); {len(cases):,} cases per round (public vignettes, case "
        f"library, {args.seeded:,} seeded workups), compiled and interpreted taking turns case "
        f"by case; {args.rounds} rounds. Load average (1 min) {min(loads):.1f} to "
        f"{max(loads):.1f} on {os.cpu_count()} cores.",
        "",
        *ratio_table(
            "interpreted, ms per evaluation (median)",
            "compiled",
            [(interpreted, compiled) for compiled, interpreted in rounds],
        ),
    ]
    print("\n".join(lines))
    if not args.no_write:
        write_section("engine", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
