"""Rebuild the precomputed worklist columns (progress, suggested steps) of workups.

Run after a protocol change reaches workups, and nightly: the rules depend on the
date (age, "repeat after a year"), and a snapshot is otherwise refreshed only when
someone saves the workup. It also refreshes the query planner's statistics
(ANALYZE), which SQLite needs for the worklist's index choice.
"""

import time

from django.core.management.base import BaseCommand

from workup.models import Workup
from workup.ops.refresh import refresh_in_batches, update_planner_statistics


class Command(BaseCommand):
    help = "Rebuild progress and suggested steps of open workups (or of all, with --all)."

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="Closed workups too.")
        parser.add_argument("--protocol", help="Only workups on this protocol code.")
        parser.add_argument(
            "--protocol-version", type=int, help="Only this version (with --protocol)."
        )
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, **options):
        workups = Workup.objects.all()
        if not options["all"]:
            workups = workups.filter(status=Workup.Status.OPEN)
        if options["protocol"]:
            workups = workups.filter(protocol__code=options["protocol"])
        if options["protocol_version"] is not None:
            workups = workups.filter(protocol__version=options["protocol_version"])
        started = time.perf_counter()
        done = 0
        for done in refresh_in_batches(workups, options["batch_size"]):
            if options["verbosity"] > 1:
                self.stdout.write(f"  {done} workups")
        update_planner_statistics()
        elapsed = time.perf_counter() - started
        self.stdout.write(
            f"Refreshed {done} workup{'s' if done != 1 else ''} and the planner's statistics "
            f"in {elapsed:.1f} s."
        )
