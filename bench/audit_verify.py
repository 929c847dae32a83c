"""How long `verify_audit` takes on a long audit chain (not part of the tests).

    .venv/bin/python bench/audit_verify.py 1000000 [--db /tmp/audit-bench.sqlite3]

Builds a scratch SQLite database (migrate), appends N chained synthetic audit
events (views of synthetic workup ids, with a small `changes` payload, hashed as
the app hashes them) through bulk_create, then times `manage.py verify_audit
--no-seal` in a child process: the whole walk, SHA-256 of every row, the
append-only guard check and the checkpoint comparison. Re-running with the same
--db and N reuses the chain.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from export_memory import scratch_environment  # the same scratch SQLite settings

ROOT = Path(__file__).resolve().parent.parent


def environment(db: Path) -> dict[str, str]:
    return {**scratch_environment(db), "ALLOWED_HOSTS": "localhost"}


def seed(count: int, batch: int = 5000) -> None:
    import django

    sys.path.insert(0, str(ROOT))
    django.setup()
    from django.core.management import call_command

    from workup.audit.trail import GENESIS_HASH, _link
    from workup.models import AuditEvent

    call_command("migrate", verbosity=0)
    if AuditEvent.objects.count() == count:
        return
    start = datetime(2026, 1, 1, tzinfo=UTC)
    previous = GENESIS_HASH
    for first in range(0, count, batch):
        events = []
        for n in range(first, min(count, first + batch)):
            event = AuditEvent(
                at=start + timedelta(seconds=n),
                username=f"bench{n % 50}",
                action="view",
                object_type="workup",
                object_id=str(n % 100_000),
                workup_id=n % 100_000,
                patient_id=n % 100_000,
                summary=f"Viewed /workups/{n % 100_000}/",
                changes={"values": [{"value_ng_ml": n % 97}, {"value_ng_ml": n % 89}]},
            )
            _link(event, n + 1, previous)
            previous = event.hash
            events.append(event)
        AuditEvent.objects.bulk_create(events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int)
    parser.add_argument("--db", type=Path, default=None)
    args = parser.parse_args()
    db = args.db or Path(f"/tmp/audit-bench-{args.count}.sqlite3")
    env = environment(db)
    os.environ.update(env)
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, __file__, "--seed-only", str(args.count), str(db)], env=env, check=True
    )
    seeded = time.perf_counter() - began
    began = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "verify_audit", "--no-seal"],
        env=env,
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - began
    load = os.getloadavg()[0]
    print(
        f"{args.count:,} events: seeded in {seeded:.1f} s; verify_audit {took:.1f} s "
        f"({took / args.count * 1e6:.1f} µs an event), exit {result.returncode}; "
        f"load average {load:.1f} on {os.cpu_count()} cores"
    )
    print(result.stdout.strip(), result.stderr.strip())


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--seed-only":
        seed(int(sys.argv[2]))
    else:
        main()
