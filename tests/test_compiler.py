"""The compiled rules give what the JSONLogic interpreter gives, outcome by outcome.

The interpreter (maykin-json-logic-py) is the reference; the compiler
(workup/core/compiler.py) must agree with it everywhere:

- operator by operator: random expressions over every operator the protocol
  check accepts, on random data: the same value, or the same error;
- protocol by protocol: the shipped protocols on 2,000 generated fact sets
  (typed, untyped and junk values; marks), every public vignette and every case
  of the case libraries: the same evaluation, step by step, reason by reason,
  label by label, error by error.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from json_logic import ALL_OPERATIONS, jsonLogic

from workup.core.cases import InvalidCase, evaluate_case
from workup.core.compiler import CompileError, compile_expression
from workup.core.engine import MARK_STATES, PatientInput, RecordInput, build_facts, evaluate
from workup.core.validation import validate_protocol
from workup.protocols.file import read_protocol_file

from .conftest import PROTOCOL_FIXTURE, PROTOCOL_V2_FIXTURE, VIGNETTES, VIGNETTES_V2

SPECS = {1: read_protocol_file(PROTOCOL_FIXTURE), 2: read_protocol_file(PROTOCOL_V2_FIXTURE)}


def outcome(run):
    """('value', result) or ('error', type, message): what running an expression gave."""
    try:
        return ("value", repr(run()))
    except Exception as error:  # noqa: BLE001 - the error itself is the outcome compared
        return ("error", type(error).__name__, str(error))


def same_as_interpreter(expression, data):
    expected = outcome(lambda: jsonLogic(expression, data))
    try:
        compiled = compile_expression(expression)
    except CompileError:
        # The compiler refuses only what the interpreter cannot run either.
        assert expected[0] == "error", (expression, expected)
        return
    assert outcome(lambda: compiled(data)) == expected, expression


# --- operator by operator ---------------------------------------------------------------

DATA = {
    "a": {"n": 5, "f": 2.5, "z": 0, "s": "12", "t": "abc", "e": "", "b": True, "no": None},
    "list": [1, "2", None, 3.0],
    "items": [{"v": 1}, {"v": 2}, {}],
    "empty": {},
}
NAMES = [
    "a.n", "a.f", "a.z", "a.s", "a.t", "a.e", "a.b", "a.no", "a.missing", "list", "list.1",
    "list.9", "items", "items.0.v", "empty", "", "a", "missing.deep", "current", "accumulator",
]  # fmt: skip
literals = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 300),
    st.floats(-5, 5, allow_nan=False) | st.sampled_from([0.0, -0.0, 1e16, 0.5]),
    st.sampled_from(["", "0", "1", "12", "2.5", "abc", "a.n", "2020-01-01", "P1D", "x.y"]),
)
variables = st.one_of(
    st.builds(lambda name: {"var": name}, st.sampled_from(NAMES)),
    st.builds(lambda name, default: {"var": [name, default]}, st.sampled_from(NAMES), literals),
)
OPERATORS = sorted(ALL_OPERATIONS - {"var"})


def operation(children):
    arguments = st.lists(children, min_size=0, max_size=4)
    return st.one_of(
        st.builds(lambda op, args: {op: args}, st.sampled_from(OPERATORS), arguments),
        st.builds(lambda op, arg: {op: arg}, st.sampled_from(OPERATORS), children),
        st.builds(lambda args: {"missing": args}, st.lists(st.sampled_from(NAMES), max_size=3)),
    )


expressions = st.recursive(literals | variables, operation, max_leaves=12)


@settings(max_examples=4_000, deadline=None, database=None)
@given(expression=expressions)
def test_every_operator_gives_what_the_interpreter_gives(expression):
    same_as_interpreter(expression, DATA)


@pytest.mark.parametrize(
    "expression",
    [
        {"if": [True, 1, {"/": [1, 0]}]},  # the unused branch is evaluated: an error
        {"and": [False, {"/": [1, 0]}]},
        {"/": [1, 0]},
        {"<": [{"var": "a.no"}, 1]},  # None operand: None
        {"<": ["abc", 1]},  # float("abc"): an error
        {"<": [[1], 2]},
        {">=": ["2", 2]},
        {"==": [1, "1"]},
        {"==": [True, 1]},
        {"===": [1, 1.0]},
        {"!==": [1, 1.0]},
        {"in": [1, "abc"]},  # 'in <string>' requires a string: an error
        {"in": ["b", "abc"]},
        {"in": [1, None]},
        {"in": [1, 5]},
        {"var": ["a.no", 7]},  # a null value takes the default
        {"var": ["a.z", 7]},
        {"var": ""},
        {"var": "list.1"},
        {"+": ["1", "2.5"]},
        {"+": ["x"]},
        {"*": [2, "3"]},
        {"-": [5]},
        {"max": [1, None]},
        {"cat": [1, None, "a"]},
        {"map": [{"var": "items"}, {"var": "v"}]},
        {"map": [{"var": "list"}, {"var": ""}]},  # a falsy item reads as {}
        {"reduce": [{"var": "list"}, {"+": [{"var": "current"}, 1]}, 0]},
        {"reduce": [{"var": "a.n"}, {"var": "current"}, {"var": "a.n"}]},  # not a list
        {"reduce": [{"var": "list"}]},
        {"missing_some": [1, ["a.n", "a.missing"]]},
        {"if": [{"var": "a.b"}]},
        {"!": [1, 2]},
        {"substr": ["abcdef", -2]},
        {"date": ["2020-02-30"]},
        {"unknown_op": [1]},
        {"var": "a", "!": True},
    ],
)
def test_the_odd_corners_agree(expression):
    same_as_interpreter(expression, DATA)


def test_an_unknown_operator_is_refused_by_the_compiler_and_named():
    with pytest.raises(CompileError) as refused:
        compile_expression({"and": [True, {"map": [{"var": "x"}, {"frobnicate": [1]}]}]})
    assert refused.value.operator == "frobnicate"


def test_check_protocol_refuses_what_the_compiler_cannot_compile():
    spec = SPECS[1]
    rule = spec.rules[0]
    # Inside a map's own scope, where the check's variable walk does not look.
    broken = {"map": [{"var": "history.anaphylaxis"}, {"frobnicate": [1]}]}
    changed = replace(spec, rules=(replace(rule, condition=broken), *spec.rules[1:]))
    problems = validate_protocol(changed)
    assert f"rule {rule.code}: unknown operator 'frobnicate'" in problems, problems
    assert validate_protocol(spec) == []


# --- protocol by protocol ---------------------------------------------------------------


def assert_same_evaluation(spec, facts, marks=None):
    compiled = evaluate(spec, facts, marks)
    interpreted = evaluate(spec, facts, marks, interpreted=True)
    for code, step in interpreted.steps.items():
        assert repr(compiled.steps[code]) == repr(step), code
    assert repr(compiled.criteria) == repr(interpreted.criteria)
    assert compiled.disagreements == interpreted.disagreements
    assert compiled.errors == interpreted.errors
    assert repr(compiled.derived) == repr(interpreted.derived)
    assert repr(compiled) == repr(interpreted)
    return compiled


def field_value(field):
    junk = st.sampled_from(["", "abc", "12", "1e3", " ", "yes", "none"])
    if field.kind in ("decimal", "integer"):
        low = field.min_value if field.min_value is not None else -10
        high = field.max_value if field.max_value is not None else 1_000
        typed = (
            st.integers(int(low), int(high))
            if field.kind == "integer"
            else st.floats(float(low), float(high), allow_nan=False)
        )
        return st.one_of(typed, typed, st.none(), junk, st.booleans())
    if field.kind == "boolean":
        return st.one_of(st.booleans(), st.booleans(), st.none(), junk, st.integers(0, 1))
    if field.kind == "choice":
        values = [value for value, _ in field.choices] or ["x"]
        return st.one_of(st.sampled_from(values), st.sampled_from(values), st.none(), junk)
    if field.kind == "multi_choice":
        values = [value for value, _ in field.choices] or ["x"]
        return st.one_of(st.lists(st.sampled_from(values), max_size=3), st.none(), junk)
    if field.kind == "date":
        return st.one_of(st.dates().map(date.isoformat), st.none(), junk)
    return st.one_of(st.text(max_size=10), st.none())


@st.composite
def fact_sets(draw, spec):
    patient = PatientInput(
        age_years=draw(st.one_of(st.integers(0, 100), st.floats(0, 100), st.none())),
        sex=draw(st.sampled_from(["female", "male", "other", "unknown", None])),
        adult_pathway=draw(st.booleans()),
    )
    records = []
    for step in spec.steps:
        if not draw(st.booleans()):
            continue
        fields = [f for f in step.fields if not f.is_calculated]
        values = {f.code: draw(field_value(f)) for f in fields if draw(st.integers(0, 4))}
        records.append(RecordInput(step.code, values, date(2026, 1, 1)))
    marks = {
        step.code: draw(st.sampled_from(MARK_STATES))
        for step in spec.steps
        if draw(st.integers(0, 9)) == 0
    }
    return build_facts(spec, patient=patient, records=records), marks


FACT_SETS = {1: 2_000, 2: 500}  # the default protocol, and the next version


@pytest.mark.parametrize("version", sorted(FACT_SETS))
def test_the_shipped_protocols_evaluate_alike_on_generated_fact_sets(version):
    spec = SPECS[version]
    seen = []

    @settings(
        max_examples=FACT_SETS[version],
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(drawn=fact_sets(spec))
    def check(drawn):
        facts, marks = drawn
        evaluation = assert_same_evaluation(spec, facts, marks)
        seen.append({code for code, step in evaluation.steps.items() if step.state})

    check()
    assert len(seen) >= FACT_SETS[version] // 2  # hypothesis ran them (it may stop early)


def cases():
    # The v2 library holds the public examples E01-E10 as given (a copy in the repository).
    for version, path in ((1, VIGNETTES), (2, VIGNETTES_V2)):
        for index, case in enumerate(json.loads(Path(path).read_text(encoding="utf-8"))):
            yield pytest.param(version, index, case, id=f"{Path(path).stem}-{case.get('id')}")


@pytest.mark.parametrize(("version", "index", "case"), list(cases()))
def test_every_vignette_and_library_case_evaluates_alike(version, index, case):
    spec = SPECS[version]
    try:
        expected = evaluate_case(spec, case, index, interpreted=True)
    except InvalidCase as refused:  # e.g. a public case of the other version: refused alike
        with pytest.raises(InvalidCase, match=str(refused)[:30]):
            evaluate_case(spec, case, index)
        return
    result, evaluation = evaluate_case(spec, case, index)
    assert result == expected[0]
    assert repr(evaluation) == repr(expected[1])
    assert evaluation.steps  # a real evaluation, not an empty one
