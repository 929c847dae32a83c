"""`workup_suggest` per case, this checkout against an earlier commit, side by side.

    .venv/bin/python bench/suggest_bench.py                 # against 0d1ecdc, 3 rounds
    .venv/bin/python bench/suggest_bench.py --base 0d1ecdc --cases 2000 --rounds 5

Checks the base commit out (git worktree, in a temporary folder, removed after),
gives each tree its own scratch SQLite database (migrate + load_protocol) and runs
`manage.py workup_suggest` on the public example vignettes repeated to --cases
cases, and on one case, in this same Python: the two trees taking turns, round by
round. Per-case time is the whole path (reading, validating, evaluating, writing
JSON): (time for N cases - time for 1 case) / (N - 1), so the process start-up is
left out. Reports the medians, their ratio and the load average; writes its
section of bench/results.md unless --no-write.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
# The public examples E01-E10, as given, are the first cases of the v2 case library.
EXAMPLES = ROOT / "fixtures" / "cases" / "mastocytosis-v2-vignettes.json"
PROTOCOL_FIXTURE = "fixtures/mastocytosis.json"

from export_memory import scratch_environment  # noqa: E402 - after the path above
from run import ratio_table, write_section  # noqa: E402


def prepare(tree: Path, db: Path) -> dict[str, str]:
    env = scratch_environment(db)
    for command in (["migrate", "-v", "0"], ["load_protocol", PROTOCOL_FIXTURE]):
        subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=tree,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return env


def timed_suggest(tree: Path, env: dict[str, str], cases: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "manage.py", "workup_suggest", str(cases)],
        cwd=tree,
        env=env,
        capture_output=True,
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{tree}: workup_suggest failed: {result.stderr.decode()[-500:]}")
    json.loads(result.stdout)  # the output is the JSON it promises
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="0d1ecdc")
    parser.add_argument("--cases", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    vignettes = [c for c in json.loads(EXAMPLES.read_text(encoding="utf-8")) if c["id"][0] == "E"]
    with tempfile.TemporaryDirectory(prefix="suggest-bench-") as scratch:
        scratch = Path(scratch)
        many, one = scratch / "cases.json", scratch / "one.json"
        many.write_text(json.dumps((vignettes * (args.cases // len(vignettes) + 1))[: args.cases]))
        one.write_text(json.dumps(vignettes[:1]))
        base_tree = scratch / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(base_tree), args.base],
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            trees = {"base": base_tree, "now": ROOT}
            envs = {
                name: prepare(tree, scratch / f"{name}.sqlite3") for name, tree in trees.items()
            }
            per_case = {name: [] for name in trees}
            loads = [os.getloadavg()[0]]
            for _ in range(args.rounds):
                for name, tree in trees.items():
                    total = timed_suggest(tree, envs[name], many)
                    start_up = timed_suggest(tree, envs[name], one)
                    per_case[name].append((total - start_up) / (args.cases - 1) * 1000)
                loads.append(os.getloadavg()[0])
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(base_tree)],
                cwd=ROOT,
                check=False,
            )
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    lines = [
        "## workup_suggest: per case, against an earlier commit",
        "",
        f"`bench/suggest_bench.py`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {args.cases:,} "
        f"cases (the {len(vignettes)} public examples repeated), the whole command (read, "
        f"validate, evaluate, write JSON) less its start-up; {args.base} and {head} taking "
        f"turns, {args.rounds} rounds. Load average (1 min) {min(loads):.1f} to "
        f"{max(loads):.1f} on {os.cpu_count()} cores.",
        "",
        *ratio_table(
            f"{args.base}, ms per case",
            f"{head}, ms per case",
            list(zip(per_case["base"], per_case["now"], strict=True)),
        ),
    ]
    print("\n".join(lines))
    if not args.no_write:
        write_section("suggest", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
