"""Load a protocol fixture, refusing it (and loading nothing) if it is invalid."""

import dataclasses

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from workup.models import Protocol
from workup.protocol_cache import build_spec, clear_cache
from workup.protocol_file import ProtocolFileError, read_protocol_file
from workup.validation import validate_protocol


class Command(BaseCommand):
    help = "Validate and load a protocol fixture (natural keys). Safe to run again."

    def add_arguments(self, parser):
        parser.add_argument("fixture", help="Path to the protocol fixture (JSON).")

    def handle(self, *args, fixture: str, **options):
        try:
            spec = read_protocol_file(fixture)
        except ProtocolFileError as error:
            raise CommandError(str(error)) from None

        existing = Protocol.objects.filter(code=spec.code, version=spec.version).first()
        if existing is not None:
            loaded = dataclasses.replace(build_spec(existing), id=None)
            if loaded == spec:
                self.stdout.write(f"Protocol {spec.code} v{spec.version} is already loaded.")
                return
            in_use = existing.workups.count()
            if in_use:
                raise CommandError(
                    f"Protocol {spec.code} v{spec.version} differs from the loaded one and "
                    f"{in_use} workup(s) are pinned to it. Nothing was loaded: publish the "
                    "change as a new version instead."
                )

        with transaction.atomic():
            call_command("loaddata", fixture, verbosity=0)
            protocol = Protocol.objects.get(code=spec.code, version=spec.version)
            problems = validate_protocol(build_spec(protocol))
            if problems:
                # Rows that were in the database but not in the file can make the
                # loaded version invalid; roll the whole load back.
                raise CommandError("\n".join(["The loaded protocol is invalid:", *problems]))
        clear_cache()
        self.stdout.write(
            self.style.SUCCESS(
                f"Loaded protocol {spec.code} v{spec.version}: {len(spec.steps)} steps, "
                f"{len(spec.rules)} rules, {len(spec.calculations)} calculations."
            )
        )
