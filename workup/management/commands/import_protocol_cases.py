"""Import test cases (the vignette shape) into a protocol version's case library."""

from django.core.management.base import CommandError

from workup.management.commands._protocol_version import ProtocolVersionCommand
from workup.models import ProtocolLocked
from workup.protocols.case_library import CaseFileError, import_cases, read_case_file


class Command(ProtocolVersionCommand):
    help = (
        "Add or update cases (matched by id) in a version's case library. Safe to run again. "
        "A published version's library loads only while no workup uses it."
    )

    def add_arguments(self, parser):
        self.add_protocol_arguments(parser, version_required=True)
        parser.add_argument("cases", help="JSON file: a list of cases (vignette shape).")

    def handle(self, *args, code, version, cases, **options):
        protocol = self.get_protocol(code, version)
        try:
            report = import_cases(protocol=protocol, cases=read_case_file(cases), user=None)
        except CaseFileError as error:
            raise CommandError(
                "\n".join([f"{cases}: nothing was imported:", *error.problems])
            ) from None
        except ProtocolLocked as error:
            raise CommandError(f"{cases}: nothing was imported: {error}") from None
        self.stdout.write(
            self.style.SUCCESS(f"Cases of {code} v{protocol.version} from {cases}: {report}.")
        )
