"""Check a protocol fixture file without loading it. Pure; no ORM.

What `check_protocol FILE` reports, each problem with its location: the
file's shape (entries, natural keys that point at another protocol version or
at an unknown step), duplicate codes and orders, everything `validate_protocol`
finds (unknown variables, steps and calculations, broken JSONLogic), expressions
that fail when evaluated, and optionally the failures of a case library.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from workup.core.cases import run_cases
from workup.core.engine import PatientInput, build_facts, evaluate
from workup.core.spec import ProtocolSpec
from workup.core.validation import validate_protocol
from workup.protocols.file import ProtocolFileError, spec_from_rows

PROTOCOL_MODELS = (
    "workup.protocol",
    "workup.protocolsource",
    "workup.stepgroup",
    "workup.stepdefinition",
    "workup.fielddefinition",
    "workup.calculation",
    "workup.rule",
    "workup.criteriongroup",
    "workup.criterionitem",
    "workup.disagreement",
    "workup.trendseries",
)
# Natural-key references in each model: (field, whether it names a step).
_REFERENCES = {
    "workup.protocolsource": [("protocol", False)],
    "workup.stepgroup": [("protocol", False)],
    "workup.stepdefinition": [("protocol", False)],
    "workup.fielddefinition": [("step", True)],
    "workup.calculation": [("protocol", False)],
    "workup.rule": [("protocol", False), ("target_step", True)],
    "workup.criteriongroup": [("protocol", False)],
    "workup.criterionitem": [("protocol", False)],
    "workup.disagreement": [("protocol", False), ("step", True)],
    "workup.trendseries": [("protocol", False), ("step", True)],
}
# Models whose `step` must be given (a disagreement may stand without one).
_NEEDS_STEP = ("workup.fielddefinition", "workup.trendseries")
# Orders that decide something: the order of calculations is the order they run in,
# a record is drawn in the first trend series it matches, suggestions are listed by group.
_ORDERED = {
    "workup.calculation": "calculations",
    "workup.stepgroup": "step groups",
    "workup.criteriongroup": "criterion groups",
    "workup.criterionitem": "criteria",
    "workup.trendseries": "trend series",
}


def read_rows(path: str | Path) -> list[Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            rows = json.load(handle)
    except OSError as exc:
        raise ProtocolFileError(str(path), [f"cannot read the file: {exc.strerror}"]) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolFileError(str(path), [f"not valid JSON: {exc}"]) from exc
    if not isinstance(rows, list):
        raise ProtocolFileError(str(path), ["a fixture is a JSON list of objects"])
    return rows


def check_protocol_rows(
    rows: list[Any], path: str = "<fixture>"
) -> tuple[ProtocolSpec | None, list[str]]:
    """The spec (when the file can be read as one) and every problem found, in file order."""
    problems = _check_entries(rows)
    try:
        spec = spec_from_rows(rows, path)
    except ProtocolFileError as error:
        return None, problems + [p for p in error.problems if p not in problems]
    problems += validate_protocol(spec)
    if not problems:
        problems += _evaluation_errors(spec)
    return spec, problems


def check_cases(spec: ProtocolSpec, cases: Any) -> list[str]:
    if not isinstance(cases, list):
        return ["the case file must hold a JSON list of cases"]
    return [
        f"case {result.case_id}: {failure}"
        for result in run_cases(spec, cases)
        for failure in result.failures
    ]


def _where(index: int, model: str, fields: dict) -> str:
    code = fields.get("code")
    step = fields.get("step")
    if model == "workup.fielddefinition" and isinstance(step, list) and step:
        code = f"{step[-1]}.{code}"
    return f"entry {index} ({model} {code})" if code else f"entry {index} ({model})"


def _check_entries(rows: list[Any]) -> list[str]:
    problems: list[str] = []
    entries = []
    for index, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("fields"), dict):
            problems.append(f"entry {index}: needs 'model' and 'fields'")
            continue
        model = str(row.get("model", "")).lower()
        if model not in PROTOCOL_MODELS:
            problems.append(f"entry {index}: unknown model '{row.get('model')}'")
            continue
        if "pk" in row:
            problems.append(
                f"{_where(index, model, row['fields'])}: has a 'pk'; use natural keys only"
            )
        entries.append((index, model, row["fields"]))

    protocols = [fields for _, model, fields in entries if model == "workup.protocol"]
    if len(protocols) != 1:
        return problems  # spec_from_rows names this
    key = [protocols[0].get("code"), protocols[0].get("version")]
    steps = {f.get("code") for _, model, f in entries if model == "workup.stepdefinition"}

    seen: dict[tuple, int] = {}
    orders: dict[tuple, list[tuple[int, str]]] = defaultdict(list)
    for index, model, fields in entries:
        where = _where(index, model, fields)
        for name, names_step in _REFERENCES.get(model, []):
            required = name == "step" and model in _NEEDS_STEP
            problems += _check_reference(
                where, name, fields.get(name), key, names_step, steps, required=required
            )
        if model == "workup.protocol":
            continue
        step = fields.get("step")
        owner = step[-1] if model == "workup.fielddefinition" and isinstance(step, list) else None
        identity = (model, owner, fields.get("code"))
        if identity in seen:
            problems.append(f"{where}: duplicate code (also entry {seen[identity]})")
        seen.setdefault(identity, index)
        if model == "workup.fielddefinition":
            orders[(f"fields of step {owner}", owner)].append((fields.get("order", 0), where))
        elif model in _ORDERED:
            orders[(_ORDERED[model], None)].append((fields.get("order"), where))
    for (what, _), listed in orders.items():
        by_order: dict[Any, list[str]] = defaultdict(list)
        for order, where in listed:
            by_order[order].append(where)
        for order, places in by_order.items():
            if len(places) > 1:
                problems.append(f"{' and '.join(places)}: duplicate order {order} among {what}")
    return problems


def _check_reference(
    where: str,
    name: str,
    value: Any,
    key: list,
    names_step: bool,
    steps: set,
    *,
    required: bool = False,
) -> list[str]:
    if value is None and names_step:
        return [f"{where}: needs a step"] if required else []
    length = 3 if names_step else 2
    if not isinstance(value, list) or len(value) != length:
        return [f"{where}: {name} must be a natural key of {length} items, got {value!r}"]
    if value[:2] != key:
        return [f"{where}: {name} {value!r} belongs to another protocol version than {key!r}"]
    if names_step and value[2] not in steps:
        return [f"{where}: {name} names unknown step '{value[2]}'"]
    return []


def _evaluation_errors(spec: ProtocolSpec) -> list[str]:
    """Expressions that fail at run time, tried on an adult and a child with nothing recorded."""
    errors: list[str] = []
    for age in (50.0, 5.0):
        facts = build_facts(spec, patient=PatientInput(age_years=age, sex="female"), records=[])
        errors += [e for e in evaluate(spec, facts).errors if e not in errors]
    return errors
