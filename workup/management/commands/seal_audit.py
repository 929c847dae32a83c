"""Seal pending access events into the audit chain. Run it every minute (cron, a timer).

With AUDIT_CHECKPOINT_DIR set it then appends the chain's head to the checkpoint file
(workup.audit.checkpoints), after the seal has committed.
"""

from django.core.management.base import BaseCommand

from workup.audit import checkpoints
from workup.audit.trail import seal_and_read_head


class Command(BaseCommand):
    help = (
        "Chain the access events written since the last seal (reads are recorded with one "
        "INSERT and sealed afterwards). Safe to run at any time, concurrently with the app."
    )

    def handle(self, *args, **options):
        sealed, position, head_hash = seal_and_read_head()
        self.stdout.write(f"Sealed {sealed} access event{'s' if sealed != 1 else ''}.")
        checkpoint = checkpoints.append(position, head_hash)
        if checkpoint is not None:
            self.stdout.write(f"Checkpoint: position {checkpoint.position}.")
