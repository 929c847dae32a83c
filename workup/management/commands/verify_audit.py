"""Check the audit trail's hash chain: exit 0 if intact, 1 naming the first altered row."""

import sys

from django.core.management.base import BaseCommand

from workup.audit import verify_chain


class Command(BaseCommand):
    help = "Verify that no audit event was altered, removed or inserted out of order."

    def handle(self, *args, **options):
        result = verify_chain()
        if result.ok:
            self.stdout.write(self.style.SUCCESS(f"Audit trail intact: {result.checked} events."))
            return
        self.stderr.write(
            f"Audit trail broken at event {result.first_bad_id}: {result.problem} "
            f"({result.checked} events before it are intact)."
        )
        sys.exit(1)
