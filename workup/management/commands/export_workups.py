"""Export one site's workups as CSV or FHIR NDJSON (stdout), in bounded memory; audited.

    python manage.py export_workups --site north > workups.csv
    python manage.py export_workups --site north --dictionary dictionary.csv > workups.csv
    python manage.py export_workups --site north --protocol mastocytosis --version 1 --identifiers
    python manage.py export_workups --site north --format fhir-ndjson > workups.ndjson

Without --identifiers, patients appear only under their per-site pseudonym. The FHIR
format writes one Bundle per line, the same Bundle as the one-workup FHIR page.
"""

from __future__ import annotations

import getpass

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from workup import reads
from workup.audit import trail
from workup.exports import csv_export, fhir, policy
from workup.exports.coding import coding_for
from workup.exports.loading import CHUNK_SIZE, iter_exports
from workup.models import AuditEvent, Protocol, Site, Workup
from workup.protocols.cache import get_spec

CSV, FHIR_NDJSON = "csv", "fhir-ndjson"


class Command(BaseCommand):
    help = (
        "Write one site's workups to stdout as CSV (one row per workup) or FHIR NDJSON "
        "(one Bundle per line); see docs/exports.md."
    )

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
        parser.add_argument(
            "--format", choices=[CSV, FHIR_NDJSON], default=CSV, help="Default: csv."
        )
        parser.add_argument(
            "--dictionary", metavar="PATH", help="Write the CSV data dictionary here (CSV only)."
        )
        parser.add_argument(
            "--validate",
            action="store_true",
            help="FHIR only: validate every Bundle with the R4B models first (about 6 ms each).",
        )
        parser.add_argument("--chunk-size", type=int, default=CHUNK_SIZE, help="Workups per query.")

    def handle(self, *args, site: str, protocol: str, version: int | None, **options):
        site_obj = Site.objects.filter(code=site).first()
        if site_obj is None:
            raise CommandError(f"No site with code {site!r}.")
        protocol_obj = self._protocol(protocol, version)
        identifiers = options["identifiers"]
        output = options["format"]
        if output != CSV and options["dictionary"]:
            raise CommandError("--dictionary goes with --format csv (FHIR codes its own data).")
        if output != FHIR_NDJSON and options["validate"]:
            raise CommandError("--validate goes with --format fhir-ndjson.")
        spec = get_spec(protocol_obj)
        coding = coding_for(spec)
        cols = csv_export.columns(spec, coding, identifiers=identifiers) if output == CSV else []
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
                f"Exported {count} workup(s) of site {site} as "
                f"{'CSV' if output == CSV else 'FHIR NDJSON'} from the command line, "
                f"{protocol_obj.code} v{protocol_obj.version}, "
                f"{'with identifiers' if identifiers else 'pseudonymised'}"
            ),
            changes={
                "format": output,
                "protocol": protocol_obj.code,
                "version": protocol_obj.version,
                "sites": [site],
                "identifiers": identifiers,
                "workups": count,
                "dictionary": bool(options["dictionary"]),
            },
        )
        # Notes and mark reasons are free text: only the FHIR Bundle with identifiers carries
        # them, as on the one-workup FHIR page; the CSV never does.
        items = iter_exports(
            workups,
            spec,
            chunk_size=options["chunk_size"],
            with_notes=identifiers and output == FHIR_NDJSON,
        )
        if output == CSV:
            lines = csv_export.stream_workups(
                spec, cols, items, identifiers=identifiers, local_date=timezone.localdate
            )
        else:
            lines = self._bundles(spec, coding, items, identifiers, site, options["validate"])
        for line in lines:
            self.stdout.write(line, ending="")
        self.stdout.flush()

    def _bundles(self, spec, coding, items, identifiers, site, validate):
        systems = policy.fhir_systems(site)
        generated_at = timezone.now()
        for item in items:
            bundle = fhir.build_bundle(
                spec,
                coding,
                item,
                identifiers=identifiers,
                systems=systems,
                generated_at=generated_at,
            )
            if validate:
                try:
                    fhir.validate_bundle(bundle)
                except ValueError as error:  # pydantic's ValidationError is a ValueError
                    # The lines before it are written: say where it stopped, never a traceback.
                    raise CommandError(
                        f"Stopped: the Bundle of workup {item.workup.pseudonym} is not valid "
                        f"FHIR R4 ({str(error).splitlines()[0]}); the workups before it were "
                        "written, this one and those after it were not."
                    ) from None
            yield fhir.ndjson_line(bundle)

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
