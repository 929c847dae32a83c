"""Read a protocol fixture file into a ProtocolSpec without touching the database.

Used by `workup_suggest` and `check_protocol`, and by the engine's unit tests.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from workup.core.spec import FieldSpec, ProtocolSpec, natural_code_key
from workup.core.validation import validate_protocol
from workup.protocols import spec_rows


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

    def rows_of(model: str, required: tuple[str, ...]):
        """The model's entries that carry their required keys; the others become problems."""
        for index, row in by_model.get(model, []):
            if not isinstance(row, dict):
                problems.append(f"entry {index} ({model}): 'fields' must be an object")
                continue
            missing = [key for key in required if key not in row]
            if missing:
                problems.append(f"entry {index} ({model}): missing {', '.join(map(repr, missing))}")
                continue
            yield row

    fields_by_step: dict[str, list[tuple[int, FieldSpec]]] = defaultdict(list)
    for f in rows_of("workup.fielddefinition", ("step", "code")):
        fields_by_step[last(f["step"])].append((f.get("order", 0), spec_rows.field_spec(f.get)))

    steps = []
    for s in rows_of("workup.stepdefinition", ("code", "order")):
        fields = sorted(fields_by_step.get(s["code"], []), key=lambda pair: (pair[0], pair[1].code))
        steps.append(spec_rows.step_spec(s.get, [f for _, f in fields]))
    step_codes = {s.code for s in steps}
    for step_code in fields_by_step:
        if step_code not in step_codes:
            problems.append(f"fields given for unknown step '{step_code}'")

    calculations = [
        spec_rows.calculation_spec(c.get)
        for c in sorted(
            rows_of("workup.calculation", ("code", "expression")),
            key=lambda c: (c.get("order", 0), c.get("code", "")),
        )
    ]
    rules = [
        spec_rows.rule_spec(r.get, last(r.get("target_step")))
        for r in rows_of("workup.rule", ("code",))
    ]
    criteria = [
        spec_rows.criterion_spec(c.get)
        for c in sorted(
            rows_of("workup.criterionitem", ("code",)),
            key=lambda c: (c.get("order", 0), c.get("code", "")),
        )
    ]
    criterion_groups = [
        spec_rows.criterion_group_spec(g.get)
        for g in sorted(
            rows_of("workup.criteriongroup", ("code", "order")),
            key=lambda g: (g.get("order", 0), g.get("code", "")),
        )
    ]
    step_groups = [
        spec_rows.step_group_spec(g.get)
        for g in sorted(
            rows_of("workup.stepgroup", ("code", "order")),
            key=lambda g: (g.get("order", 0), g.get("code", "")),
        )
    ]
    disagreements = [
        spec_rows.disagreement_spec(d.get, last(d.get("step")))
        for d in rows_of("workup.disagreement", ("code",))
    ]
    trend_series = [
        spec_rows.trend_series_spec(t.get, last(t.get("step")))
        for t in sorted(
            rows_of("workup.trendseries", ("code", "order", "step", "field_code")),
            key=lambda t: (t.get("order", 0), t.get("code", "")),
        )
    ]

    source_rows = [
        s
        for _, s in by_model.get("workup.protocolsource", [])
        if isinstance(s, dict) and "code" in s
    ]
    sources = {s["code"]: s.get("citation", "") for s in source_rows}
    source_urls = {s["code"]: s["url"] for s in source_rows if s.get("url")}
    if problems:
        raise ProtocolFileError(path, problems)
    return ProtocolSpec(
        code=protocol.get("code", ""),
        version=protocol.get("version", 0),
        title=protocol.get("title", ""),
        status=protocol.get("status", "draft"),
        disclaimer=protocol.get("disclaimer", ""),
        trend_title=protocol.get("trend_title", "") or "",
        trend_value_label=protocol.get("trend_value_label", "") or "",
        steps=tuple(sorted(steps, key=lambda s: (s.order, s.code))),
        calculations=tuple(calculations),
        rules=tuple(sorted(rules, key=lambda r: (r.priority, r.code))),
        criteria=tuple(criteria),
        criterion_groups=tuple(criterion_groups),
        step_groups=tuple(step_groups),
        trend_series=tuple(trend_series),
        disagreements=tuple(sorted(disagreements, key=lambda d: natural_code_key(d.code))),
        sources=sources,
        source_urls=source_urls,
    )
