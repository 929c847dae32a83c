"""Shared by the protocol commands: the `CODE [--version N]` arguments and their lookup."""

from django.core.management.base import BaseCommand, CommandError

from workup.models import Protocol


class ProtocolVersionCommand(BaseCommand):
    # `--version` means the protocol version here, not Django's version.
    def create_parser(self, prog_name, subcommand, **kwargs):
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_protocol_arguments(self, parser, *, version_required: bool = False) -> None:
        parser.add_argument("code", help="Protocol code, e.g. mastocytosis.")
        parser.add_argument(
            "--version",
            type=int,
            required=version_required,
            help="Protocol version (default: the newest, draft or not).",
        )

    def get_protocol(self, code: str, version: int | None) -> Protocol:
        versions = Protocol.objects.filter(code=code)
        if version is not None:
            versions = versions.filter(version=version)
        protocol = versions.order_by("-version").first()
        if protocol is None:
            wanted = f"{code} v{version}" if version is not None else code
            known = ", ".join(
                f"v{v}"
                for v in Protocol.objects.filter(code=code).values_list("version", flat=True)
            )
            raise CommandError(
                f"No protocol {wanted}." + (f" Versions of {code}: {known}." if known else "")
            )
        return protocol
