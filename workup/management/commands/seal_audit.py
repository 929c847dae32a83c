"""Seal pending access events into the audit chain. Run it every minute (cron, a timer)."""

from django.core.management.base import BaseCommand

from workup.audit.trail import seal_pending


class Command(BaseCommand):
    help = (
        "Chain the access events written since the last seal (reads are recorded with one "
        "INSERT and sealed afterwards). Safe to run at any time, concurrently with the app."
    )

    def handle(self, *args, **options):
        sealed = seal_pending()
        self.stdout.write(f"Sealed {sealed} access event{'s' if sealed != 1 else ''}.")
