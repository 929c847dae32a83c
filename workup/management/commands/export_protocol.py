"""Write a protocol version as a natural-key fixture (and, optionally, its case library)."""

from pathlib import Path

from workup.management.commands._protocol_version import ProtocolVersionCommand
from workup.protocols.export import export_cases_text, export_text


class Command(ProtocolVersionCommand):
    help = "Export a protocol version as a fixture that load_protocol loads back unchanged."

    def add_arguments(self, parser):
        self.add_protocol_arguments(parser)
        parser.add_argument("--output", "-o", help="Write to this file (default: stdout).")
        parser.add_argument("--cases", help="Also write the case library to this file.")

    def handle(self, *args, code, version, output, cases, **options):
        protocol = self.get_protocol(code, version)
        text = export_text(protocol)
        if output:
            Path(output).write_text(text, encoding="utf-8")
            self.stderr.write(f"Wrote {code} v{protocol.version} to {output}.")
        else:
            self.stdout.write(text, ending="")
        if cases:
            Path(cases).write_text(export_cases_text(protocol), encoding="utf-8")
            self.stderr.write(f"Wrote the case library of {code} v{protocol.version} to {cases}.")
