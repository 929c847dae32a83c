"""List what changed between two versions of a protocol."""

from workup.management.commands._protocol_version import ProtocolVersionCommand
from workup.protocols.cache import get_spec
from workup.protocols.diff import diff_protocols


class Command(ProtocolVersionCommand):
    help = "List the steps, fields, calculations, rules, ... added, removed or changed."

    def add_arguments(self, parser):
        parser.add_argument("code")
        parser.add_argument("old", type=int, help="The earlier version.")
        parser.add_argument("new", type=int, help="The later version.")

    def handle(self, *args, code, old, new, **options):
        before = get_spec(self.get_protocol(code, old))
        after = get_spec(self.get_protocol(code, new))
        changes = diff_protocols(before, after)
        self.stdout.write(f"{code}: v{old} → v{new}, {len(changes)} change(s)")
        for change in changes:
            self.stdout.write(f"- {change}")
