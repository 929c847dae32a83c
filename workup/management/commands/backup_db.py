"""Back up the database to a file: SQLite's online backup API, or pg_dump (custom format)."""

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from workup.ops.backup import BackupError, backup


class Command(BaseCommand):
    help = (
        "Write a consistent backup of the database to OUTPUT while the app keeps running "
        "(a SQLite file, or a pg_dump custom-format archive). The file is readable by its "
        "owner only: it holds patient data."
    )

    def add_arguments(self, parser):
        parser.add_argument("output", help="The backup file to write (replaced if it exists).")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)

    def handle(self, *args, output: str, database: str, **options):
        connection = connections[database]
        try:
            path = backup(output, connection)
        except BackupError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Backed up the {connection.vendor} database "
                f"{connection.settings_dict['NAME']} to {path} ({path.stat().st_size} bytes)."
            )
        )
