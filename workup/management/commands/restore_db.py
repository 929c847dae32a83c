"""Restore a backup made by backup_db; refuses a database that is not empty unless --force."""

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from workup.ops.backup import BackupError, restore


class Command(BaseCommand):
    help = (
        "Restore INPUT (made by backup_db) into the database. The database must be empty "
        "(no tables): --force replaces what is there."
    )

    def add_arguments(self, parser):
        parser.add_argument("source", metavar="INPUT", help="A backup file made by backup_db.")
        parser.add_argument(
            "--force",
            action="store_true",
            help="Replace the contents of a database that is not empty.",
        )
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)

    def handle(self, *args, source: str, force: bool, database: str, **options):
        connection = connections[database]
        try:
            restore(source, connection, force=force)
        except BackupError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored {source} into the {connection.vendor} database "
                f"{connection.settings_dict['NAME']}. Check it with: manage.py verify_audit"
            )
        )
