"""Export one site's workups as CSV (stdout), streamed in bounded memory; audited.

    python manage.py export_workups --site north > workups.csv
    python manage.py export_workups --site north --dictionary dictionary.csv > workups.csv
    python manage.py export_workups --site north --protocol mastocytosis --version 1 --identifiers

Without --identifiers, patients appear only under their per-site pseudonym.
"""

from __future__ import annotations

import getpass

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from workup import reads
from workup.audit import trail
from workup.exports import csv_export
from workup.exports.coding import coding_for
from workup.exports.loading import CHUNK_SIZE, iter_exports
from workup.models import AuditEvent, Protocol, Site, Workup
from workup.protocols.cache import get_spec


class Command(BaseCommand):
    help = "Write one site's workups as CSV to stdout (one row per workup); see docs/exports.md."

    def create_parser(self, prog_name, subcommand, **kwargs):
        # `--version` is the protocol version here, not Django's.
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("--site", required=True, help="Site code.")
        parser.add_argument(
            "--protocol", default=reads.default_protocol_code(), help="Protocol code."
        )
        parser.add_argument(
            "--version", type=int, help="Protocol version (default: the current published one)."
        )
        parser.add_argument(
            "--identifiers",
            action="store_true",
            help="Include workup id, MRN, names and birth date (default: pseudonym only).",
        )
        parser.add_argument("--dictionary", metavar="PATH", help="Write the data dictionary here.")
        parser.add_argument("--chunk-size", type=int, default=CHUNK_SIZE, help="Workups per query.")

    def handle(self, *args, site: str, protocol: str, version: int | None, **options):
        site_obj = Site.objects.filter(code=site).first()
        if site_obj is None:
            raise CommandError(f"No site with code {site!r}.")
        protocol_obj = self._protocol(protocol, version)
        identifiers = options["identifiers"]
        spec = get_spec(protocol_obj)
        cols = csv_export.columns(spec, coding_for(spec), identifiers=identifiers)
        if options["dictionary"]:
            with open(options["dictionary"], "w", encoding="utf-8", newline="") as handle:
                handle.writelines(csv_export.stream_dictionary(cols))

        workups = Workup.objects.filter(patient__site=site_obj, protocol=protocol_obj)
        count = workups.count()
        operator = f"manage.py export_workups ({getpass.getuser()})"
        trail.record_event(
            action=AuditEvent.Action.EXPORT,
            username=operator[:150],
            object_type="workup",
            summary=(
                f"Exported {count} workup(s) of site {site} as CSV from the command line, "
                f"{protocol_obj.code} v{protocol_obj.version}, "
                f"{'with identifiers' if identifiers else 'pseudonymised'}"
            ),
            changes={
                "format": "csv",
                "protocol": protocol_obj.code,
                "version": protocol_obj.version,
                "sites": [site],
                "identifiers": identifiers,
                "workups": count,
                "dictionary": bool(options["dictionary"]),
            },
        )
        lines = csv_export.stream_workups(
            spec,
            cols,
            iter_exports(workups, spec, chunk_size=options["chunk_size"]),
            identifiers=identifiers,
            local_date=timezone.localdate,
        )
        for line in lines:
            self.stdout.write(line, ending="")
        self.stdout.flush()

    def _protocol(self, code: str, version: int | None) -> Protocol:
        if version is None:
            try:
                return reads.current_protocol(code)
            except reads.NoPublishedProtocol as error:
                raise CommandError(str(error)) from None
        protocol = Protocol.objects.filter(code=code, version=version).first()
        if protocol is None:
            raise CommandError(f"No protocol {code} v{version}.")
        return protocol
