"""Check a protocol fixture file without loading it; exit status 1 when it has problems."""

from django.core.management.base import BaseCommand, CommandError

from workup.protocols.case_library import CaseFileError, read_case_file
from workup.protocols.check import check_cases, check_protocol_rows, read_rows
from workup.protocols.file import ProtocolFileError


class Command(BaseCommand):
    help = (
        "Validate a protocol fixture (codes, JSONLogic, duplicate codes and orders) without "
        "touching the database; with --cases, also run a case library against it."
    )

    def add_arguments(self, parser):
        parser.add_argument("fixture")
        parser.add_argument("--cases", help="A case file (vignette shape) to run against it.")

    def handle(self, *args, fixture, cases, **options):
        try:
            spec, problems = check_protocol_rows(read_rows(fixture), fixture)
            if cases and spec is not None and not problems:
                problems += check_cases(spec, read_case_file(cases))
        except ProtocolFileError as error:
            problems, spec = error.problems, None
        except CaseFileError as error:
            problems = [f"{cases}: {p}" for p in error.problems]
        if problems:
            for problem in problems:
                self.stdout.write(f"{fixture}: {problem}")
            raise CommandError(f"{fixture}: {len(problems)} problem(s).")
        ran = f", cases of {cases} pass" if cases else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"{fixture}: {spec.code} v{spec.version} is valid ({len(spec.steps)} steps, "
                f"{len(spec.rules)} rules, {len(spec.calculations)} calculations{ran})."
            )
        )
