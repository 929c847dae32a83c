"""A version's case library: import cases (the vignette shape) into a protocol version.

Cases are matched by id: a new id is added, a known one is updated, and cases
not in the file are kept. The whole file is refused, and nothing saved, if any
case cannot run against the version. A published version's library can only
be changed while no workup uses it (as `load_protocol` does with its content);
once workups use it, cases can still be added, never changed: a case changes
nothing a workup sees, and the history records when it was added.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from workup.audit.attribution import save_as
from workup.core.cases import case_problems
from workup.models import Protocol, ProtocolCase, ProtocolLocked, loading_version
from workup.protocols.cache import get_spec

_CASE_FIELDS = (
    "summary",
    "patient",
    "findings",
    "expected_suggested",
    "expected_not_suggested",
    "expected_not_yet",
    "rule_refs",
    "source",
)
_CODE = re.compile(r"^[-a-zA-Z0-9_]{1,60}$")


class CaseFileError(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # in the library, not in the file

    def __str__(self) -> str:
        parts = [
            f"{len(self.created)} added",
            f"{len(self.updated)} updated",
            f"{len(self.unchanged)} unchanged",
        ]
        if self.kept:
            parts.append(f"{len(self.kept)} not in the file and kept ({', '.join(self.kept)})")
        return ", ".join(parts)


def parse_cases(text: str | bytes) -> list[Any]:
    try:
        cases = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CaseFileError([f"not valid JSON: {error}"]) from None
    if not isinstance(cases, list):
        raise CaseFileError(["expected a JSON list of cases"])
    return cases


def read_case_file(path: str) -> list[Any]:
    try:
        with open(path, "rb") as handle:
            return parse_cases(handle.read())
    except OSError as error:
        raise CaseFileError([f"cannot read {path}: {error.strerror}"]) from None


def import_cases(*, protocol: Protocol, cases: list[Any], user) -> ImportReport:
    spec = get_spec(protocol)
    problems, seen = [], set()
    for index, case in enumerate(cases):
        problems += [message for _, message in case_problems(spec, case, index)]
        case_id = case.get("id") if isinstance(case, dict) else None
        if not isinstance(case_id, str) or not _CODE.match(case_id):
            problems.append(
                f"case #{index + 1}: 'id' must be a short code of letters, digits, - or _"
            )
        elif case_id in seen:
            problems.append(f"case {case_id}: the id is used twice in the file")
        seen.add(case_id)
    if problems:
        raise CaseFileError(problems)

    existing = {c.code: c for c in protocol.protocolcase_set.all()}
    report = ImportReport(kept=sorted(set(existing) - seen))
    changes = []
    for case in cases:
        values = {
            name: _default(name) if case.get(name) is None else case[name] for name in _CASE_FIELDS
        }
        stored = existing.get(case["id"])
        if stored is None:
            changes.append(ProtocolCase(protocol=protocol, code=case["id"], **values))
            report.created.append(case["id"])
        elif any(getattr(stored, name) != value for name, value in values.items()):
            for name, value in values.items():
                setattr(stored, name, value)
            changes.append(stored)
            report.updated.append(case["id"])
        else:
            report.unchanged.append(case["id"])
    if not changes:
        return report
    in_use = protocol.is_locked and protocol.workups.exists()
    if in_use and report.updated:
        raise ProtocolLocked(
            f"{protocol.code} v{protocol.version} is {protocol.status} and in use: its cases "
            f"{', '.join(report.updated)} cannot be changed (new cases can be added). "
            "Change them in a new draft."
        )
    with transaction.atomic():
        if protocol.is_locked:
            with loading_version(protocol, add_only=in_use):
                _save_all(changes, user)
        else:
            _save_all(changes, user)
    return report


def _save_all(cases: list[ProtocolCase], user) -> None:
    for case in cases:
        save_as(case, user, reason="imported")


def _default(name: str) -> Any:
    if name in ("summary", "source"):
        return ""
    return {} if name in ("patient", "findings") else []
