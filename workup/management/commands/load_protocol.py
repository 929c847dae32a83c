"""Load a protocol fixture, refusing it (and loading nothing) if it is invalid."""

import dataclasses
from pathlib import Path

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from workup.audit.trail import record_event
from workup.core.validation import validate_protocol
from workup.models import AuditEvent, FieldDefinition, Protocol
from workup.protocols.cache import build_spec, clear_cache
from workup.protocols.file import ProtocolFileError, read_protocol_file
from workup.protocols.versions import retire_superseded


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
            # A version retired since it was loaded from this file is still this file.
            if existing.status == Protocol.Status.RETIRED:
                loaded = dataclasses.replace(loaded, status=spec.status)
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
            # loaddata saves raw, which history skips: record the load itself.
            reason = f"loaded from {Path(fixture).name}"[:100]
            for rows in _rows_of(protocol):
                if rows:
                    type(rows[0]).history.bulk_history_create(
                        rows, update=existing is not None, default_change_reason=reason
                    )
            record_event(
                action=AuditEvent.Action.UPDATE if existing else AuditEvent.Action.CREATE,
                object_type="workup.protocol",
                object_id=protocol.pk,
                summary=f"{spec.code} v{spec.version} {reason}",
            )
            if protocol.status == Protocol.Status.PUBLISHED:
                retire_superseded(code=spec.code, user=None, reason=reason)
        clear_cache()
        self.stdout.write(
            self.style.SUCCESS(
                f"Loaded protocol {spec.code} v{spec.version}: {len(spec.steps)} steps, "
                f"{len(spec.rules)} rules, {len(spec.calculations)} calculations."
            )
        )


def _rows_of(protocol: Protocol) -> list[list]:
    return [
        [protocol],
        list(protocol.protocolsource_set.all()),
        list(protocol.stepgroup_set.all()),
        list(protocol.stepdefinition_set.all()),
        list(FieldDefinition.objects.filter(step__protocol=protocol)),
        list(protocol.calculation_set.all()),
        list(protocol.rule_set.all()),
        list(protocol.criteriongroup_set.all()),
        list(protocol.criterionitem_set.all()),
        list(protocol.disagreement_set.all()),
        list(protocol.trendseries_set.all()),
    ]
