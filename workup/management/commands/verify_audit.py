"""Check the audit trail: exit 0 if intact, 1 naming the first altered row or missing guard.

Pending access events are sealed first (unless --no-seal), so the check covers every row.
It also checks that the database still refuses UPDATE and DELETE on the audit tables
(workup.audit.append_only): without that guard an intact chain proves less.
"""

import argparse
import sys
from datetime import UTC, date, datetime, time

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import connection

from workup.audit import append_only, checkpoints
from workup.audit.trail import ChainCheck, first_position_since, seal_pending, verify_chain


def _day(text: str) -> datetime:
    try:
        return datetime.combine(date.fromisoformat(text), time.min, tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day as YYYY-MM-DD: {text!r}") from None


class Command(BaseCommand):
    help = "Verify that no audit event was altered, removed or inserted out of order."

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-seal",
            action="store_true",
            help="Check only what is sealed already; write nothing (e.g. on a read-only copy).",
        )
        parser.add_argument(
            "--since",
            type=_day,
            metavar="YYYY-MM-DD",
            help="Check only the events from this day (UTC) on, linked to the one before: "
            "fast on a long chain. Run the full check regularly too.",
        )

    def handle(self, *args, **options):
        if not options["no_seal"]:
            seal_pending()
        start = 1
        if options["since"] is not None:
            start = first_position_since(options["since"])
        if start is None:
            self.stdout.write(f"No sealed events since {options['since']:%Y-%m-%d}.")
            result = ChainCheck(True, 0)
        else:
            result = verify_chain(from_position=start)
        if start and start > 1:
            self.stdout.write(f"Checked from position {start} on; earlier events not checked.")
        tables = append_only.guarded_tables(apps.get_models())
        missing = append_only.missing_guards(connection, tables)
        if result.ok:
            pending = f" ({result.pending} access events not yet sealed)" if result.pending else ""
            self.stdout.write(
                self.style.SUCCESS(f"Audit trail intact: {result.checked} events{pending}.")
            )
        else:
            self.stderr.write(
                f"Audit trail broken at event {result.first_bad_id}: {result.problem} "
                f"({result.checked} events before it are intact)."
            )
        if missing:
            self.stderr.write(
                "The database does not refuse rewrites: not append-only without the "
                f"triggers {', '.join(missing)}. Run manage.py migrate, and find out who "
                "removed them."
            )
        else:
            self.stdout.write(f"Database append-only guard in place on {len(tables)} tables.")
        anchored = self._check_checkpoint()
        if missing or not result.ok or not anchored:
            sys.exit(1)

    def _check_checkpoint(self) -> bool:
        if checkpoints.checkpoint_file() is None:
            self.stdout.write("No checkpoint file configured (AUDIT_CHECKPOINT_DIR).")
            return True
        try:
            checkpoint = checkpoints.newest()
        except checkpoints.CheckpointError as error:
            self.stderr.write(str(error))
            return False
        if checkpoint is None:
            self.stdout.write("No checkpoint written yet (seal_audit writes them).")
            return True
        problem = checkpoints.disagreement(checkpoint)
        if problem:
            self.stderr.write(f"Audit trail does not match its newest checkpoint: {problem}.")
            return False
        self.stdout.write(
            f"Newest checkpoint ({checkpoint.at}, position {checkpoint.position}) matches."
        )
        return True
