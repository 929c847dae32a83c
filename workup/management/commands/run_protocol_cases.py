"""Run a protocol version's case library; exit status 1 if any case fails."""

from django.core.management.base import CommandError

from workup.management.commands._protocol_version import ProtocolVersionCommand
from workup.protocols.versions import check_version


class Command(ProtocolVersionCommand):
    help = "Run the case library of a protocol version and report passes and failures."

    def add_arguments(self, parser):
        self.add_protocol_arguments(parser)

    def handle(self, *args, code, version, **options):
        protocol = self.get_protocol(code, version)
        report = check_version(protocol)
        self.stdout.write(
            f"{protocol.code} v{protocol.version} ({protocol.status}): "
            f"{len(report.results)} case(s)"
        )
        for problem in report.problems:
            self.stdout.write(f"PROBLEM {problem}")
        for result in report.results:
            if result.passed:
                self.stdout.write(f"PASS {result.case_id}")
            for failure in result.failures:
                self.stdout.write(f"FAIL {result.case_id}: {failure}")
            for warning in result.warnings:
                self.stdout.write(f"WARN {result.case_id}: {warning}")
        passed = len(report.results) - len(report.failures)
        summary = f"{passed} passed, {len(report.failures)} failed."
        if not report.ok:
            raise CommandError(
                summary + (" " + " ".join(report.problems) if report.problems else "")
            )
        self.stdout.write(self.style.SUCCESS(summary))
