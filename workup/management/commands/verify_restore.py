"""Restore a backup into a scratch database and compare every workup with the live database."""

from django.core.management.base import BaseCommand, CommandError

from workup.ops.backup import BackupError, verify_restore


class Command(BaseCommand):
    help = (
        "Restore BACKUP into a scratch database (a temporary SQLite file, or a temporary "
        "PostgreSQL database that is dropped afterwards) and compare, for every workup, the "
        "checklist (each step's state, the suggested steps), the numbers of results and marks, "
        "and the audit chain with the live database. Exit status 1 on any difference. Run it "
        "right after backup_db: changes saved since the backup show as differences."
    )

    def add_arguments(self, parser):
        parser.add_argument("backup", help="A backup file made by backup_db.")

    def handle(self, *args, backup: str, **options):
        try:
            problems = verify_restore(backup)
        except BackupError as error:
            raise CommandError(str(error)) from None
        if problems:
            for problem in problems:
                self.stderr.write(problem)
            raise CommandError(
                f"The restored backup differs from the live database ({len(problems)} "
                "difference(s), listed above).",
                returncode=1,
            )
        self.stdout.write(
            self.style.SUCCESS(f"{backup} restores to the same checklists as the live database.")
        )
