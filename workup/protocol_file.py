"""Read a protocol fixture file into a ProtocolSpec without touching the database.

Used by `workup_suggest` and `check_protocol`, and by the engine's unit tests.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from .spec import (
    CalculationSpec,
    CriterionSpec,
    DisagreementSpec,
    FieldSpec,
    ProtocolSpec,
    RuleSpec,
    StepSpec,
    natural_code_key,
)
from .validation import validate_protocol


class ProtocolFileError(ValueError):
    def __init__(self, path: str, problems: list[str]):
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{path}: {len(problems)} problem(s):\n{listing}")


def read_protocol_file(path: str | Path, *, validate: bool = True) -> ProtocolSpec:
    """Parse a natural-key fixture holding one protocol version; raise on any problem."""
    path = str(path)
    try:
        with open(path, encoding="utf-8") as handle:
            rows = json.load(handle)
    except OSError as exc:
        raise ProtocolFileError(path, [f"cannot read the file: {exc.strerror}"]) from exc
    except json.JSONDecodeError as exc:
        raise ProtocolFileError(path, [f"not valid JSON: {exc}"]) from exc
    spec = spec_from_rows(rows, path)
    if validate:
        problems = validate_protocol(spec)
        if problems:
            raise ProtocolFileError(path, problems)
    return spec


def spec_from_rows(rows: Any, path: str = "<fixture>") -> ProtocolSpec:
    if not isinstance(rows, list):
        raise ProtocolFileError(path, ["a fixture is a JSON list of objects"])
    by_model: dict[str, list[tuple[int, dict]]] = defaultdict(list)
    problems: list[str] = []
    for index, row in enumerate(rows):
        if not isinstance(row, dict) or "model" not in row or "fields" not in row:
            problems.append(f"entry {index}: needs 'model' and 'fields'")
            continue
        by_model[row["model"].lower()].append((index, row["fields"]))
    protocols = by_model.get("workup.protocol", [])
    if len(protocols) != 1:
        problems.append(f"expected exactly one workup.protocol entry, found {len(protocols)}")
    if problems:
        raise ProtocolFileError(path, problems)
    protocol = protocols[0][1]

    def last(key: Any) -> str | None:
        return key[-1] if isinstance(key, list) and key else key

    fields_by_step: dict[str, list[tuple[int, FieldSpec]]] = defaultdict(list)
    for index, f in by_model.get("workup.fielddefinition", []):
        try:
            fields_by_step[last(f["step"])].append(
                (
                    f.get("order", 0),
                    FieldSpec(
                        code=f["code"],
                        label=f.get("label", f["code"]),
                        kind=f.get("kind", ""),
                        unit=f.get("unit", ""),
                        min_value=f.get("min_value"),
                        max_value=f.get("max_value"),
                        choices=tuple(tuple(c) for c in f.get("choices") or ()),
                        required=f.get("required", False),
                        help_text=f.get("help_text", ""),
                        calculation=f.get("calculation", ""),
                        is_key_result=f.get("is_key_result", False),
                    ),
                )
            )
        except (KeyError, TypeError) as exc:
            problems.append(f"entry {index} (workup.fielddefinition): missing {exc}")

    steps = []
    for index, s in by_model.get("workup.stepdefinition", []):
        try:
            steps.append(
                StepSpec(
                    code=s["code"],
                    title=s.get("title", s["code"]),
                    section=s.get("section", ""),
                    order=s["order"],
                    fields=tuple(
                        f
                        for _, f in sorted(
                            fields_by_step.get(s["code"], []),
                            key=lambda pair: (pair[0], pair[1].code),
                        )
                    ),
                    help_text=s.get("help_text", ""),
                    applies_to=s.get("applies_to", ""),
                    repeatable=s.get("repeatable", False),
                    counts_latest_where=s.get("counts_latest_where", ""),
                    is_safety_item=s.get("is_safety_item", False),
                    source=s.get("source", ""),
                )
            )
        except (KeyError, TypeError) as exc:
            problems.append(f"entry {index} (workup.stepdefinition): missing {exc}")
    step_codes = {s.code for s in steps}
    for step_code in fields_by_step:
        if step_code not in step_codes:
            problems.append(f"fields given for unknown step '{step_code}'")

    calculations = []
    for index, c in sorted(
        by_model.get("workup.calculation", []),
        key=lambda pair: (pair[1].get("order", 0), pair[1].get("code", "")),
    ):
        try:
            calculations.append(
                CalculationSpec(
                    code=c["code"],
                    label=c.get("label", c["code"]),
                    expression=c["expression"],
                    unit=c.get("unit", ""),
                    formula=c.get("formula", ""),
                    display=c.get("display", False),
                    source=c.get("source", ""),
                )
            )
        except (KeyError, TypeError) as exc:
            problems.append(f"entry {index} (workup.calculation): missing {exc}")

    rules = []
    for index, r in by_model.get("workup.rule", []):
        try:
            rules.append(
                RuleSpec(
                    code=r["code"],
                    title=r.get("title", ""),
                    action=r.get("action", ""),
                    target_step=last(r.get("target_step")),
                    condition=r.get("condition", {}),
                    rationale=r.get("rationale", ""),
                    source=r.get("source", ""),
                    label=r.get("label"),
                    priority=r.get("priority", 0),
                    enabled=r.get("enabled", True),
                    repeat_when_done=r.get("repeat_when_done", False),
                )
            )
        except (KeyError, TypeError) as exc:
            problems.append(f"entry {index} (workup.rule): missing {exc}")

    criteria = []
    for index, c in sorted(
        by_model.get("workup.criterionitem", []),
        key=lambda pair: (pair[1].get("order", 0), pair[1].get("code", "")),
    ):
        try:
            criteria.append(
                CriterionSpec(
                    code=c["code"],
                    group=c.get("group", ""),
                    kind=c.get("kind", ""),
                    label=c.get("label", ""),
                    who_text=c.get("who_text", ""),
                    icc_text=c.get("icc_text", ""),
                    who_logic=c.get("who_logic"),
                    icc_logic=c.get("icc_logic"),
                    source=c.get("source", ""),
                )
            )
        except (KeyError, TypeError) as exc:
            problems.append(f"entry {index} (workup.criterionitem): missing {exc}")

    disagreements = []
    for index, d in by_model.get("workup.disagreement", []):
        try:
            disagreements.append(
                DisagreementSpec(
                    code=d["code"],
                    title=d.get("title", ""),
                    positions=d.get("positions", ""),
                    app_behaviour=d.get("app_behaviour", ""),
                    step=last(d.get("step")),
                    condition=d.get("condition", True),
                )
            )
        except (KeyError, TypeError) as exc:
            problems.append(f"entry {index} (workup.disagreement): missing {exc}")

    sources = {
        s["code"]: s.get("citation", "")
        for _, s in by_model.get("workup.protocolsource", [])
        if isinstance(s, dict) and "code" in s
    }
    if problems:
        raise ProtocolFileError(path, problems)
    return ProtocolSpec(
        code=protocol.get("code", ""),
        version=protocol.get("version", 0),
        title=protocol.get("title", ""),
        status=protocol.get("status", "draft"),
        disclaimer=protocol.get("disclaimer", ""),
        steps=tuple(sorted(steps, key=lambda s: (s.order, s.code))),
        calculations=tuple(calculations),
        rules=tuple(sorted(rules, key=lambda r: (r.priority, r.code))),
        criteria=tuple(criteria),
        disagreements=tuple(sorted(disagreements, key=lambda d: natural_code_key(d.code))),
        sources=sources,
    )
