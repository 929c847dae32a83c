"""JSONLogic compiled to Python closures, once per expression: the rules' fast path.

`compile_expression(expression)` returns a function of the facts that gives what
`json_logic.jsonLogic(expression, facts)` gives, raising what it raises. The
interpreter walks the expression's dicts on every call (about 1,400 calls per
evaluation of a real protocol); a compiled expression has done that walk once.

Same semantics, on purpose, down to the odd corners, because the interpreter
(the maintained maykin-json-logic-py package) stays the reference that
tests/test_compiler.py checks every compiled protocol against:

- every operand is evaluated, even of `if`, `and` and `or` (the package does not
  short-circuit), so an error in an unused branch is still an error;
- comparisons, arithmetic, `min`/`max` and the other operators the package guards
  give None when an operand is None; `==` coerces like JavaScript, `===` does not;
- a missing variable is None (or the default it names); `in` on a value that
  cannot hold anything is false; a division by zero raises.

Hot operators (var, ===, !==, ==, !=, if, and, or, !, !!, <, <=, >, >=, in) are
written out here; every other operator calls the package's own implementation of
it with the operands already evaluated. Pure: no Django.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce
from typing import Any

from json_logic import (
    ALL_OPERATIONS,
    empty_operand_values_for_operators,
    get_var,
    jsonLogic,
    missing,
    missing_some,
    operations,
    scoped_operations,
    soft_equals,
)

Compiled = Callable[[Any], Any]


class CompileError(ValueError):
    """An expression the compiler (and so the interpreter) cannot run; names the operator."""

    def __init__(self, message: str, operator: str | None = None):
        super().__init__(message)
        self.operator = operator


def compile_expression(expression: Any) -> Compiled:
    """A function of the facts, equal in result (and in what it raises) to jsonLogic."""
    if isinstance(expression, list):
        if all(_is_literal(item) for item in expression):
            constant = list(expression)
            return lambda data: constant.copy()  # a new list each run, as the package gives
        items = [compile_expression(item) for item in expression]
        if len(items) == 1:
            (only,) = items
            return lambda data: [only(data)]
        if len(items) == 2:
            first, second = items
            return lambda data: [first(data), second(data)]
        if len(items) == 3:
            first, second, third = items
            return lambda data: [first(data), second(data), third(data)]
        return lambda data: [item(data) for item in items]
    if not isinstance(expression, dict):
        return lambda data: expression
    operators = [key for key in expression if not key.startswith("_")]
    if len(operators) != 1:
        raise CompileError(f"an operation must have exactly one operator, found {operators}")
    operator = operators[0]
    if operator not in ALL_OPERATIONS:
        raise CompileError(f"unknown operator '{operator}'", operator)
    values = expression[operator]
    if not isinstance(values, list | tuple):
        values = [values]
    if operator in scoped_operations:
        return _scoped(operator, expression, values)
    if operator == "var":
        return _var(values)
    args = [compile_expression(value) for value in values]
    if operator in ("missing", "missing_some"):
        implementation = missing if operator == "missing" else missing_some
        return lambda data: implementation(data or {}, *[arg(data) for arg in args])
    with_literal = _with_literal(operator, values, args)
    if with_literal is not None:
        return with_literal
    special = _SPECIAL.get((operator, len(args)))
    if special is not None:
        return special(*args)
    return _generic(operator, args)


def _two_key_var(expression: Any) -> tuple[str, str] | None:
    """("step", "field") for {"var": "step.field"}, the commonest operand of all."""
    if not isinstance(expression, dict) or len(expression) != 1 or "var" not in expression:
        return None
    name = expression["var"]
    if isinstance(name, list):
        if len(name) != 1:
            return None
        name = name[0]
    if not isinstance(name, str) or name.count(".") != 1 or "" in name.split("."):
        return None
    first, second = name.split(".")
    return first, second


def _fused_strict(equal: bool, first: str, second: str, kind: type, literal: Any) -> Compiled:
    """{"===": [{"var": "a.b"}, literal]} (or !==) in one function: the lookup inlined."""
    walk = _path([first, second])

    def fused(data):
        try:
            value = data[first][second]
        except KeyError:
            value = None
        except Exception:  # noqa: BLE001 - the walk decides, as the package would
            value = walk(data)
        return (type(value) is kind and value == literal) is equal

    return fused


def _fused_comparison(compare, first: str, second: str, literal: Any) -> Compiled:
    """{">=": [{"var": "a.b"}, 20]} and the like in one function (literal not None)."""
    walk = _path([first, second])

    def fused(data):
        try:
            value = data[first][second]
        except KeyError:
            return None  # a missing operand: None, as the package's guard gives
        except Exception:  # noqa: BLE001 - the walk decides, as the package would
            value = walk(data)
        if value is None:
            return None
        return compare(value, literal)

    return fused


def _is_literal(value: Any) -> bool:
    """A value that evaluates to itself (a list is rebuilt on every run: not one)."""
    return not isinstance(value, dict | list)


def _with_literal(operator: str, values: list, args: list[Compiled]) -> Compiled | None:
    """The commonest shapes with a literal operand, the literal read once."""
    if operator in ("===", "!==") and len(values) == 2:
        if _is_literal(values[1]) and not _is_literal(values[0]):
            arg, literal = args[0], values[1]
        elif _is_literal(values[0]) and not _is_literal(values[1]):
            arg, literal = args[1], values[0]
        else:
            return None
        kind = type(literal)
        pair = _two_key_var(values[0] if arg is args[0] else values[1])
        if pair is not None:
            return _fused_strict(operator == "===", *pair, kind, literal)
        if operator == "===":

            def same(data):
                value = arg(data)
                return type(value) is kind and value == literal

            return same

        def different(data):
            value = arg(data)
            return not (type(value) is kind and value == literal)

        return different
    if operator in _COMPARE and len(values) == 2 and values[1] is not None:
        pair = _two_key_var(values[0])
        if pair is not None and _is_literal(values[1]):
            return _fused_comparison(_COMPARE[operator], *pair, values[1])
    if (
        operator == "in"
        and len(values) == 2
        and isinstance(values[1], list)
        and all(_is_literal(item) for item in values[1])
        and not _is_literal(values[0])
    ):
        arg, container = args[0], list(values[1])
        return lambda data: arg(data) in container
    if operator == "if" and len(values) == 3 and not _is_literal(values[0]):
        condition, then, otherwise = args
        if _is_literal(values[1]) and _is_literal(values[2]):
            yes, no = values[1], values[2]
            return lambda data: yes if condition(data) else no
        if _is_literal(values[2]):
            no = values[2]

            def then_or_literal(data):
                test, value = condition(data), then(data)
                return value if test else no

            return then_or_literal
        if _is_literal(values[1]):
            yes = values[1]

            def literal_or_else(data):
                test, value = condition(data), otherwise(data)
                return yes if test else value

            return literal_or_else
    return None


def _generic(operator: str, args: list[Compiled]) -> Compiled:
    implementation = operations[operator]
    empty = empty_operand_values_for_operators.get(operator)

    if empty:

        def guarded(data):
            values = [arg(data) for arg in args]
            if any(value in empty for value in values):
                return None
            return implementation(*values)

        return guarded
    return lambda data: implementation(*[arg(data) for arg in args])


def _var(values: list) -> Compiled:
    """{"var": name} or {"var": [name, default]}; a name given literally is split once."""
    if values and isinstance(values[0], str) and values[0] and len(values) <= 2:
        keys = values[0].split(".")
        if len(values) == 1:
            return _path(keys)
        default_arg = compile_expression(values[1])
        path = _path(keys, missing_marker=_MISSING)

        def with_default(data):
            default = default_arg(data)
            found = path(data)
            # The package returns the default for a missing or a null value.
            return default if found is _MISSING or found is None else found

        return with_default
    args = [compile_expression(value) for value in values]
    return lambda data: get_var(data or {}, *[arg(data) for arg in args])


_MISSING = object()


def _path(keys: list[str], missing_marker: Any = None) -> Compiled:
    if len(keys) == 1:
        (key,) = keys

        def one(data):
            try:
                return data[key]
            except TypeError:
                try:
                    return data[int(key)]
                except (KeyError, TypeError, ValueError, IndexError):
                    return missing_marker
            except KeyError:
                return missing_marker

        return one

    def walk(data):
        try:
            for key in keys:
                try:
                    data = data[key]
                except TypeError:
                    data = data[int(key)]
        except (KeyError, TypeError, ValueError, IndexError):
            return missing_marker
        return data

    if len(keys) == 2:
        first, second = keys

        def two(data):
            # The common case at full speed; anything unusual takes the walk above.
            try:
                return data[first][second]
            except KeyError:  # only a mapping raises it, and the walk would stop there too
                return missing_marker
            except Exception:  # noqa: BLE001 - the walk decides, as the package would
                return walk(data)

        return two
    return walk


def _scoped(operator: str, expression: dict, values: list) -> Compiled:
    """reduce and map: the inner expression runs on each item (its own data)."""
    if operator == "reduce" and len(values) == 3:
        iterable_path, scoped_logic, initializer = values
        iterable_arg = compile_expression(iterable_path)
        scoped = compile_expression(scoped_logic)
        initial = compile_expression(initializer)

        def reduced(data):
            data = data or {}
            iterable = iterable_arg(data)
            if not isinstance(iterable, list):
                return initializer  # as the package: the initializer as written
            return reduce(
                lambda accumulator, current: scoped(
                    {"accumulator": accumulator, "current": current}
                ),
                iterable,
                initial(data),
            )

        return reduced
    if operator == "map" and len(values) == 2:
        iterable_path, scoped_logic = values
        iterable_arg = compile_expression(iterable_path)
        scoped = compile_expression(scoped_logic)

        def mapped(data):
            iterable = iterable_arg(data or {}) or []
            return [scoped(item or {}) for item in iterable]

        return mapped
    # Any other shape: the package decides (it raises for a wrong number of operands).
    return lambda data: jsonLogic(expression, data)


# --- the hot operators, written out (same results as operations[...]) --------------------


def _less(a, b) -> bool:
    """json_logic.less for two operands."""
    ta, tb = type(a), type(b)
    if ta is float or ta is int or tb is float or tb is int:
        try:
            a, b = float(a), float(b)
        except TypeError:
            return False
    return a < b


def _strict_equal(a, b):
    def node(data):
        x, y = a(data), b(data)
        return type(x) is type(y) and x == y

    return node


def _strict_unequal(a, b):
    def node(data):
        x, y = a(data), b(data)
        return not (type(x) is type(y) and x == y)

    return node


def _equal(a, b):
    return lambda data: soft_equals(a(data), b(data))


def _unequal(a, b):
    return lambda data: not soft_equals(a(data), b(data))


def _not(a):
    return lambda data: not a(data)


def _truthy(a):
    return lambda data: bool(a(data))


def _if(condition, then, otherwise):
    def node(data):
        test, yes, no = condition(data), then(data), otherwise(data)
        return yes if test else no

    return node


def _if_without_else(condition, then):
    def node(data):
        test, yes = condition(data), then(data)
        return yes if test else None

    return node


# and / or with two or three operands, written out; any other count takes the package's
# own (a fold over every operand, evaluated first: it does not short-circuit either).


def _and_two(first, second):
    def both(data):
        a, b = first(data), second(data)  # both run: the package does not short-circuit
        return a and b

    return both


def _and_three(first, second, third):
    def all_three(data):
        a, b, c = first(data), second(data), third(data)
        return a and b and c

    return all_three


def _or_two(first, second):
    def either(data):
        a, b = first(data), second(data)
        return a or b

    return either


def _or_three(first, second, third):
    def any_of_three(data):
        a, b, c = first(data), second(data), third(data)
        return a or b or c

    return any_of_three


def _comparison(compare):
    def build(a, b):
        def node(data):
            x, y = a(data), b(data)
            if x is None or y is None:
                return None
            return compare(x, y)

        return node

    return build


_CONTAINERS = (str, list, dict)


def _in(a, b):
    def node(data):
        x, y = a(data), b(data)
        if type(y) in _CONTAINERS:
            return x in y
        return x in y if "__contains__" in dir(y) else False

    return node


_COMPARE = {
    "<": _less,
    ">": lambda x, y: _less(y, x),
    "<=": lambda x, y: _less(x, y) or soft_equals(x, y),
    ">=": lambda x, y: _less(y, x) or soft_equals(x, y),
}


def _if_chain(*args):
    """if / else-if / else with five or seven operands, every operand evaluated."""
    if len(args) == 5:
        a, b, c, d, e = args

        def five(data):
            values = a(data), b(data), c(data), d(data), e(data)
            return values[1] if values[0] else values[3] if values[2] else values[4]

        return five
    a, b, c, d, e, f, g = args

    def seven(data):
        values = a(data), b(data), c(data), d(data), e(data), f(data), g(data)
        if values[0]:
            return values[1]
        if values[2]:
            return values[3]
        return values[5] if values[4] else values[6]

    return seven


_SPECIAL: dict[tuple[str, int], Callable[..., Compiled]] = {
    ("===", 2): _strict_equal,
    ("!==", 2): _strict_unequal,
    ("==", 2): _equal,
    ("!=", 2): _unequal,
    ("!", 1): _not,
    ("!!", 1): _truthy,
    ("if", 3): _if,
    ("if", 2): _if_without_else,
    ("<", 2): _comparison(_COMPARE["<"]),
    (">", 2): _comparison(_COMPARE[">"]),
    ("<=", 2): _comparison(_COMPARE["<="]),
    (">=", 2): _comparison(_COMPARE[">="]),
    ("if", 5): _if_chain,
    ("if", 7): _if_chain,
    ("and", 2): _and_two,
    ("and", 3): _and_three,
    ("or", 2): _or_two,
    ("or", 3): _or_three,
    ("in", 2): _in,
}


class CompiledExpressions:
    """Every expression of one protocol version, compiled once, found by identity (`by_id`).

    The spec owns its expressions for as long as it lives (and this lives on the
    spec), and this keeps them too, so no other object can take one of their ids
    while it lives. An expression the compiler refuses (check_protocol refuses it
    first) runs in the interpreter, which reports the same error at run time.
    """

    def __init__(self, expressions):
        # ({} is no expression: the engine gives None for it without running anything.)
        self._expressions = [e for e in expressions if isinstance(e, dict | list) and e != {}]
        self.by_id: dict[int, Compiled] = {
            id(expression): _compiled_or_interpreted(expression) for expression in self._expressions
        }


def _compiled_or_interpreted(expression: Any) -> Compiled:
    try:
        return compile_expression(expression)
    except CompileError:
        return lambda data: jsonLogic(expression, data)
