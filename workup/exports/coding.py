"""Standard and local codes for the exports: protocol data, read from a mapping file.

The engine knows nothing about LOINC or SNOMED CT. A protocol version's codes
live beside its fixture, in `fixtures/codes/<protocol>-v<version>.json`, keyed
by step and field code, with only the codes that workup-protocol.md section (f)
marks VERIFIED: an entry with any other status is refused when the file is read.
Everything without a verified code is exported under the protocol's local code
system (`local_system` in the file): the step code, or `step.field`.

Pure: no ORM, no settings. See docs/exports.md.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workup.core.spec import ProtocolSpec

logger = logging.getLogger(__name__)

CODES_DIR = Path(__file__).resolve().parent.parent.parent / "fixtures" / "codes"
UCUM_SYSTEM = "http://unitsofmeasure.org"
VERIFIED = "VERIFIED"
# Used when a protocol version has no mapping file: every code is then local.
DEFAULT_LOCAL_SYSTEM_BASE = "urn:workup:protocol"


class CodingFileError(ValueError):
    pass


def join_system(base: str, *parts: str) -> str:
    """A sub-system of `base`: `urn:a` + `b` -> `urn:a:b`; `https://x/a` + `b` -> `https://x/a/b`."""
    separator = ":" if base.startswith("urn:") else "/"
    return separator.join([base.rstrip(separator), *parts])


@dataclass(frozen=True)
class Code:
    system: str
    code: str
    display: str

    def as_coding(self) -> dict[str, str]:
        return {"system": self.system, "code": self.code, "display": self.display}


@dataclass(frozen=True)
class StepCoding:
    category: str = ""
    # None: the step is not a panel (or not a procedure); a tuple (maybe empty): it is,
    # with these verified codes besides the local one.
    panel: tuple[Code, ...] | None = None
    procedure: tuple[Code, ...] | None = None
    # Fields that qualify the step's other values (e.g. is_baseline) rather than
    # being values of their own: components and a note in FHIR.
    qualifiers: tuple[str, ...] = ()
    field_codes: dict[str, tuple[Code, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class ProtocolCoding:
    protocol: str
    version: int
    local_system: str
    units: dict[str, str] = field(default_factory=dict)
    not_performed_values: frozenset[str] = frozenset()
    steps: dict[str, StepCoding] = field(default_factory=dict)
    source: str = ""
    # Concepts already made (see `concept`): the same few dozen on every row of an export.
    _concepts: dict[tuple, dict[str, Any]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def step(self, step_code: str) -> StepCoding:
        return self.steps.get(step_code) or StepCoding()

    def ucum(self, unit: str) -> str | None:
        """The UCUM code of a protocol's display unit, or None if the file maps none."""
        return self.units.get(unit) if unit else None

    def local(self, code: str, display: str) -> dict[str, str]:
        return {
            "system": self.local_system,
            "version": str(self.version),
            "code": code,
            "display": display,
        }

    def field_codes(self, step_code: str, field_code: str) -> tuple[Code, ...]:
        return self.step(step_code).field_codes.get(field_code, ())

    def activity_codes(self, step_code: str) -> tuple[Code, ...]:
        """Verified codes for a step as a whole: its procedure, its panel, else its values'."""
        step = self.step(step_code)
        if step.procedure is not None:
            return step.procedure
        if step.panel is not None:
            return step.panel
        seen: dict[tuple[str, str], Code] = {}
        for codes in step.field_codes.values():
            for code in codes:
                seen.setdefault((code.system, code.code), code)
        return tuple(seen.values())

    def concept(self, step_code: str, field_code: str, label: str, text: str) -> dict[str, Any]:
        """The CodeableConcept of a step (`field_code` "") or of one of its fields: its
        verified codes, then our local code. Made once and shared: callers never change it."""
        key = (step_code, field_code, label, text)
        made = self._concepts.get(key)
        if made is None:
            if field_code:
                codes = self.field_codes(step_code, field_code)
                local = self.local(f"{step_code}.{field_code}", label)
            else:
                codes, local = self.activity_codes(step_code), self.local(step_code, label)
            made = {"coding": [c.as_coding() for c in codes] + [local], "text": text}
            self._concepts[key] = made
        return made

    @property
    def rule_system(self) -> str:
        return join_system(self.local_system, "rule")

    def answer_system(self, step_code: str, field_code: str) -> str:
        """Each choice field's answers form their own small code system."""
        return join_system(self.local_system, "answer", f"{step_code}.{field_code}")


def coding_path(protocol_code: str, version: int, directory: Path = CODES_DIR) -> Path:
    return Path(directory) / f"{protocol_code}-v{version}.json"


_cache: dict[tuple[str, int, str], ProtocolCoding] = {}


def coding_for(spec: ProtocolSpec, directory: Path = CODES_DIR) -> ProtocolCoding:
    """The coding of a protocol version: its mapping file, else local codes only."""
    path = coding_path(spec.code, spec.version, directory)
    key = (spec.code, spec.version, str(path))
    if key not in _cache:
        _cache[key] = _read_or_local(path, spec)
    return _cache[key]


def _read_or_local(path: Path, spec: ProtocolSpec) -> ProtocolCoding:
    if not path.exists():
        return _local_codes_only(spec)
    try:
        return read_coding_file(path, spec)
    except CodingFileError:
        # The file was written for other content under this code and version (e.g. a
        # version a site authored itself): its codes would name the wrong things.
        logger.exception(
            "Export codes file %s does not match %s v%s: exporting local codes only.",
            path,
            spec.code,
            spec.version,
        )
        return _local_codes_only(spec)


def clear_cache() -> None:
    """Forget the codes read (tests load different content under one code and version)."""
    _cache.clear()


def _local_codes_only(spec: ProtocolSpec) -> ProtocolCoding:
    return ProtocolCoding(
        protocol=spec.code,
        version=spec.version,
        local_system=join_system(DEFAULT_LOCAL_SYSTEM_BASE, spec.code),
    )


def read_coding_file(path: str | Path, spec: ProtocolSpec | None = None) -> ProtocolCoding:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise CodingFileError(f"{path}: cannot read the coding file: {error}") from None
    return parse_coding(data, spec=spec, where=str(path))


def parse_coding(
    data: dict[str, Any], *, spec: ProtocolSpec | None = None, where: str = "<coding>"
) -> ProtocolCoding:
    """Check and read a mapping file; `spec` given: every step and field must exist in it."""
    problems: list[str] = []

    def codes(entries: Any, at: str) -> tuple[Code, ...]:
        found = []
        for index, entry in enumerate(entries or []):
            if entry.get("status") != VERIFIED:
                problems.append(
                    f"{at}[{index}] {entry.get('code')!r}: status {entry.get('status')!r}; "
                    f"only {VERIFIED} codes may be exported (else the local code is used)"
                )
                continue
            if not all(entry.get(key) for key in ("system", "code", "display")):
                problems.append(f"{at}[{index}]: needs system, code and display")
                continue
            found.append(Code(entry["system"], entry["code"], entry["display"]))
        return tuple(found)

    for key in ("protocol", "version", "local_system"):
        if key not in data:
            problems.append(f"missing '{key}'")
    if spec is not None and (data.get("protocol"), data.get("version")) != (
        spec.code,
        spec.version,
    ):
        problems.append(
            f"is for {data.get('protocol')} v{data.get('version')}, not {spec.code} v{spec.version}"
        )
    steps: dict[str, StepCoding] = {}
    for step_code, entry in (data.get("steps") or {}).items():
        step = spec.steps_by_code.get(step_code) if spec is not None else None
        if spec is not None and step is None:
            problems.append(f"steps.{step_code}: no such step in the protocol")
            continue
        field_codes = {}
        for field_code, field_entry in (entry.get("fields") or {}).items():
            if step is not None and step.field(field_code) is None:
                problems.append(f"steps.{step_code}.fields.{field_code}: no such field")
            field_codes[field_code] = codes(
                field_entry.get("codes"), f"steps.{step_code}.fields.{field_code}.codes"
            )
        qualifiers = tuple(entry.get("qualifiers") or ())
        for qualifier in qualifiers:
            if step is not None and step.field(qualifier) is None:
                problems.append(f"steps.{step_code}.qualifiers: no field {qualifier!r}")
        steps[step_code] = StepCoding(
            category=entry.get("category", ""),
            panel=codes(entry["panel"], f"steps.{step_code}.panel") if "panel" in entry else None,
            procedure=codes(entry["procedure"], f"steps.{step_code}.procedure")
            if "procedure" in entry
            else None,
            qualifiers=qualifiers,
            field_codes=field_codes,
        )
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise CodingFileError(f"{where}: {len(problems)} problem(s):\n{listing}")
    return ProtocolCoding(
        protocol=data["protocol"],
        version=int(data["version"]),
        local_system=data["local_system"],
        units=dict(data.get("units") or {}),
        not_performed_values=frozenset(data.get("not_performed_values") or ()),
        steps=steps,
        source=data.get("source", ""),
    )
