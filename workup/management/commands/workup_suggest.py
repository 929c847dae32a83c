"""Evaluate cases (vignette shape) against the published protocol; print JSON.

Touches no patient in the database. Invalid input exits with status 2 and a
message naming the case and the field; never a traceback.
"""

import gc
import json
import sys
from contextlib import contextmanager

from django.core.management.base import BaseCommand, CommandError

from workup.core.cases import InvalidCase, suggest
from workup.protocols.cache import get_spec
from workup.reads import NoPublishedProtocol, current_protocol, default_protocol_code


class Command(BaseCommand):
    help = "Suggest next steps for cases given as JSON (the shape of example-vignettes.json)."

    def add_arguments(self, parser):
        parser.add_argument("cases", help="JSON file with a list of cases, or - for stdin.")
        parser.add_argument("--protocol", default=default_protocol_code())

    def handle(self, *args, cases: str, protocol: str, **options):
        try:
            spec = get_spec(current_protocol(protocol))
        except NoPublishedProtocol as error:
            raise CommandError(str(error), returncode=2) from None
        with _cycle_collector_paused():
            try:
                data = self._read(cases)
                results = [suggest(spec, case, index) for index, case in enumerate(data)]
            except InvalidCase as error:
                raise CommandError(str(error), returncode=2) from None
            self.stdout.write(self._json(results))

    def _json(self, results: list[dict]) -> str:
        """Indented for a person at a terminal; one line per case for a program (a JSON
        list either way), which json's C encoder writes several times faster."""
        if self.stdout.isatty():
            return json.dumps(results, indent=2, ensure_ascii=False)
        lines = ",\n".join(json.dumps(result, ensure_ascii=False) for result in results)
        return f"[\n{lines}\n]" if results else "[]"

    def _read(self, path: str):
        try:
            if path == "-":
                data = json.load(sys.stdin)
            else:
                with open(path, encoding="utf-8") as handle:
                    data = json.load(handle)
        except OSError as error:
            raise InvalidCase(f"cannot read {path}: {error.strerror}") from None
        except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
            raise InvalidCase(f"{path} is not valid JSON: {error}") from None
        except RecursionError:
            raise InvalidCase(f"{path} is nested too deeply to be a list of cases") from None
        if not isinstance(data, list):
            raise InvalidCase("expected a JSON list of cases")
        return data


@contextmanager
def _cycle_collector_paused():
    """Reading cases, evaluating them and writing JSON make no reference cycles, and every
    case and result is kept until all are written: the cycle collector would only walk the
    growing lists again and again (about a fifth of the run, measured). Reference counting
    still frees everything; the collector runs again once the command is done."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
