"""Check the audit trail's hash chain: exit 0 if intact, 1 naming the first altered row.

Pending access events are sealed first (unless --no-seal), so the check covers every row.
"""

import sys

from django.core.management.base import BaseCommand

from workup.audit.trail import seal_pending, verify_chain


class Command(BaseCommand):
    help = "Verify that no audit event was altered, removed or inserted out of order."

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-seal",
            action="store_true",
            help="Check only what is sealed already; write nothing (e.g. on a read-only copy).",
        )

    def handle(self, *args, **options):
        if not options["no_seal"]:
            seal_pending()
        result = verify_chain()
        if result.ok:
            pending = f" ({result.pending} access events not yet sealed)" if result.pending else ""
            self.stdout.write(
                self.style.SUCCESS(f"Audit trail intact: {result.checked} events{pending}.")
            )
            return
        self.stderr.write(
            f"Audit trail broken at event {result.first_bad_id}: {result.problem} "
            f"({result.checked} events before it are intact)."
        )
        sys.exit(1)
