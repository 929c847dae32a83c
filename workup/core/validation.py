"""Checks that a protocol's expressions only name what exists. Pure; no ORM.

Run when a protocol loads, when `check_protocol` checks a file, when an admin
saves a rule (or any part of a draft) and before a draft is published, so that
an unknown step or field code is an error with a location, not a silent false
at run time.
"""

from __future__ import annotations

from typing import Any

from json_logic import ALL_OPERATIONS

from workup.core.compiler import CompileError, compile_expression
from workup.core.spec import ProtocolSpec

PATIENT_VARIABLES = ("patient.age_years", "patient.sex", "patient.adult_pathway")
RULE_ACTIONS = ("suggest", "not_indicated", "not_yet", "note", "housekeeping")
FIELD_KINDS = ("decimal", "integer", "boolean", "choice", "multi_choice", "date", "text")
RESERVED_STEP_CODES = ("patient", "done", "calc")
TREND_MARKERS = ("circle", "triangle")


def variables_in(expression: Any) -> tuple[set[str], list[str]]:
    """The variable names an expression reads, and any problems with its shape."""
    names: set[str] = set()
    problems: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
            return
        if not isinstance(node, dict):
            return
        operators = [key for key in node if not key.startswith("_")]
        if len(operators) != 1:
            problems.append(f"an operation must have exactly one operator, found {operators}")
            return
        operator = operators[0]
        args = node[operator]
        if operator not in ALL_OPERATIONS:
            problems.append(f"unknown operator '{operator}'")
        if operator == "var":
            name = args[0] if isinstance(args, list) and args else args
            if not isinstance(name, str):
                problems.append("a variable name must be written out as text")
            else:
                names.add(name)
            return
        if operator in ("missing", "missing_some"):
            listed = args[-1] if operator == "missing_some" else args
            listed = listed if isinstance(listed, list) else [listed]
            names.update(n for n in listed if isinstance(n, str))
            return
        if operator in ("map", "reduce", "filter", "all", "some", "none"):
            # Inner expressions read their own scope; only the collection is checked.
            walk(args[0] if isinstance(args, list) and args else args)
            return
        walk(args)

    walk(expression)
    return names, problems


def known_variables(spec: ProtocolSpec) -> set[str]:
    names = set(PATIENT_VARIABLES)
    for step in spec.steps:
        names.add(f"done.{step.code}")
        names.update(f"{step.code}.{f.code}" for f in step.fields)
    names.update(f"calc.{c.code}" for c in spec.calculations)
    return names


def check_expression(expression: Any, known: set[str], where: str) -> list[str]:
    if expression in ({}, None):
        return []
    names, problems = variables_in(expression)
    try:
        compile_expression(expression)
    except CompileError as refused:  # e.g. an operator inside a map, where the walk stops
        if str(refused) not in problems:
            problems.append(str(refused))
    messages = [f"{where}: {p}" for p in problems]
    for name in sorted(names - known):
        messages.append(f"{where}: unknown variable '{name}'{_hint(name, known)}")
    return messages


def _hint(name: str, known: set[str]) -> str:
    head = name.split(".")[0]
    if not any(k.startswith(head + ".") for k in known):
        return f" (no step, 'patient', 'done' or 'calc' called '{head}')"
    siblings = sorted(k for k in known if k.startswith(head + "."))
    return f" (known under '{head}': {', '.join(siblings)})"


def _step_groups(spec: ProtocolSpec) -> list[str]:
    """Once a protocol groups its suggestions, every step names one of its groups."""
    if not spec.step_groups:
        return []
    group_codes = {g.code for g in spec.step_groups}
    known_groups = ", ".join(sorted(group_codes))
    problems = []
    for step in spec.steps:
        if not step.group:
            problems.append(f"step {step.code}: needs a step group (known: {known_groups})")
        elif step.group not in group_codes:
            problems.append(
                f"step {step.code}: unknown step group '{step.group}' (known: {known_groups})"
            )
    return problems


def validate_protocol(spec: ProtocolSpec) -> list[str]:
    """Every problem in a protocol, each naming where it is. Empty means valid."""
    problems: list[str] = []
    problems += _duplicates("step", [s.code for s in spec.steps])
    problems += _shared_orders(spec)
    problems += _duplicates("calculation", [c.code for c in spec.calculations])
    problems += _duplicates("rule", [r.code for r in spec.rules])
    problems += _duplicates("criterion", [c.code for c in spec.criteria])
    problems += _duplicates("disagreement", [d.code for d in spec.disagreements])
    problems += _duplicates("criterion group", [g.code for g in spec.criterion_groups])
    problems += _duplicates("step group", [g.code for g in spec.step_groups])
    problems += _step_groups(spec)
    problems += _duplicates("trend series", [t.code for t in spec.trend_series])

    step_codes = {s.code for s in spec.steps}
    calc_codes = [c.code for c in spec.calculations]
    base = set(PATIENT_VARIABLES)
    for step in spec.steps:
        if step.code in RESERVED_STEP_CODES:
            problems.append(f"step {step.code}: the code is reserved")
        base.add(f"done.{step.code}")
        problems += _duplicates(f"field of step {step.code}", [f.code for f in step.fields])
        if step.counts_latest_where:
            flag = step.field(step.counts_latest_where)
            if flag is None or flag.kind != "boolean":
                problems.append(
                    f"step {step.code}: counts_latest_where '{step.counts_latest_where}' "
                    "must name a yes/no field of the step"
                )
        for f in step.fields:
            where = f"field {step.code}.{f.code}"
            if f.kind not in FIELD_KINDS:
                problems.append(f"{where}: unknown kind '{f.kind}'")
            if f.kind in ("choice", "multi_choice") and not f.choices:
                problems.append(f"{where}: a choice field needs choices")
            if f.min_value is not None and f.max_value is not None and f.min_value > f.max_value:
                problems.append(f"{where}: min_value is above max_value")
            if f.calculation and f.calculation not in calc_codes:
                problems.append(f"{where}: unknown calculation '{f.calculation}'")
            if not f.calculation:
                base.add(f"{step.code}.{f.code}")
            if f.shown_if_field:
                controller = step.field(f.shown_if_field)
                if controller is None or controller.code == f.code:
                    problems.append(
                        f"{where}: shown_if_field '{f.shown_if_field}' must name another "
                        "field of the step"
                    )
                elif not f.shown_if_values:
                    problems.append(f"{where}: shown_if_field needs shown_if_values")
                elif controller.kind in ("choice", "multi_choice"):
                    allowed = {value for value, _ in controller.choices}
                    for value in f.shown_if_values:
                        if value not in allowed:
                            problems.append(
                                f"{where}: shown_if_values: '{value}' is not a choice of "
                                f"{step.code}.{controller.code}"
                            )
            if f.replaces_factor is not None and not f.replaces:
                problems.append(f"{where}: replaces_factor needs replaces")

    # A calculation sees the fields, and only the calculations before it.
    known = set(base)
    for calc in spec.calculations:
        # It may read the fields it fills: their value as recorded (e.g. by a version in
        # which the field was typed in), before the calculation replaces it.
        own = {
            f"{step.code}.{f.code}"
            for step in spec.steps
            for f in step.fields
            if f.calculation == calc.code
        }
        problems += check_expression(calc.expression, known | own, f"calculation {calc.code}")
        known.add(f"calc.{calc.code}")
        for step in spec.steps:
            known.update(f"{step.code}.{f.code}" for f in step.fields if f.calculation == calc.code)

    for rule in spec.rules:
        where = f"rule {rule.code}"
        if rule.action not in RULE_ACTIONS:
            problems.append(f"{where}: unknown action '{rule.action}'")
        if rule.action != "housekeeping":
            if rule.target_step not in step_codes:
                problems.append(f"{where}: unknown target step '{rule.target_step}'")
            if rule.condition in ({}, None, ""):
                problems.append(f"{where}: a condition is required")
        problems += check_expression(rule.condition, known, where)
        if rule.label is not None and not isinstance(rule.label, str):
            problems += check_expression(rule.label, known, f"{where} label")
    for step in spec.steps:
        where = f"step {step.code} deciding inputs"
        problems += check_expression(step.deciding_applies, known, f"{where} (applies)")
        for number, item in enumerate(step.deciding_inputs, start=1):
            if not isinstance(item.label, str) or not item.label.strip():
                problems.append(f"{where} #{number}: needs a label (what to record)")
            if item.recorded in ({}, None, ""):
                problems.append(f"{where} #{number}: needs 'recorded' (JSONLogic)")
            problems += check_expression(item.recorded, known, f"{where} #{number}")
    group_codes = {g.code for g in spec.criterion_groups}
    for item in spec.criteria:
        if item.group not in group_codes:
            known_groups = ", ".join(sorted(group_codes)) or "none defined"
            problems.append(
                f"criterion {item.code}: unknown group '{item.group}' (known: {known_groups})"
            )
        problems += check_expression(item.who_logic, known, f"criterion {item.code} (WHO)")
        problems += check_expression(item.icc_logic, known, f"criterion {item.code} (ICC)")
    for d in spec.disagreements:
        if d.step and d.step not in step_codes:
            problems.append(f"disagreement {d.code}: unknown step '{d.step}'")
        problems += check_expression(d.condition, known, f"disagreement {d.code}")
    problems += _trend_problems(spec)
    return problems


def _trend_problems(spec: ProtocolSpec) -> list[str]:
    """Each trend series must draw a number field of a known step."""
    problems: list[str] = []
    if spec.trend_series and not spec.trend_title:
        problems.append("protocol: trend series need a trend title (the chart's heading)")
    for series in spec.trend_series:
        where = f"trend series {series.code}"
        step = spec.steps_by_code.get(series.step_code)
        if step is None:
            problems.append(f"{where}: unknown step '{series.step_code}'")
            continue
        drawn = step.field(series.field_code)
        if drawn is None or drawn.kind not in ("integer", "decimal"):
            problems.append(
                f"{where}: field_code '{series.field_code}' must name a number field of "
                f"step {step.code}"
            )
        if series.marker not in TREND_MARKERS:
            problems.append(f"{where}: unknown marker '{series.marker}'")
        if series.where is not None and step.field(series.where[0]) is None:
            problems.append(
                f"{where}: where_field '{series.where[0]}' is not a field of step {step.code}"
            )
        for pair in series.detail_fields:
            if not (isinstance(pair, tuple) and len(pair) == 2 and step.field(pair[0])):
                shown = list(pair) if isinstance(pair, tuple) else pair
                problems.append(
                    f"{where}: detail_fields entry {shown!r} must be "
                    f"[field code of step {step.code}, short label]"
                )
    return problems


def _duplicates(what: str, values: list) -> list[str]:
    seen: set = set()
    repeated = []
    for value in values:
        if value in seen and value not in repeated:
            repeated.append(value)
        seen.add(value)
    return [f"duplicate {what} '{value}'" for value in repeated]


def _shared_orders(spec: ProtocolSpec) -> list[str]:
    """Two steps with one order: the checklist's order would depend on their codes."""
    by_order: dict[int, list[str]] = {}
    for step in spec.steps:
        by_order.setdefault(step.order, []).append(step.code)
    return [
        f"steps {' and '.join(codes)}: duplicate order {order}"
        for order, codes in by_order.items()
        if len(codes) > 1
    ]
