"""JSONLogic written as a reader would say it: `calc.bst > 20 and not done.bone_marrow_biopsy`.

Pure; for display only (admin lists, diffs). The JSON stays the source of truth.
"""

from __future__ import annotations

import json
from typing import Any

_INFIX = {
    "==": "==",
    "===": "is",
    "!=": "!=",
    "!==": "is not",
    ">": ">",
    ">=": "≥",
    "<": "<",
    "<=": "≤",
    "+": "+",
    "-": "-",
    "*": "×",
    "/": "/",
    "%": "mod",
    "in": "in",
}
_JOINED = {"and": "and", "or": "or"}


def logic_text(expression: Any) -> str:
    """The expression in words; anything unusual falls back to compact JSON, never an error."""
    return _text(expression, top=True)


def _text(node: Any, top: bool = False) -> str:
    if isinstance(node, list):
        return "[" + ", ".join(_text(item, top=True) for item in node) + "]"
    if not isinstance(node, dict):
        return _literal(node)
    if len(node) != 1:
        return _literal(node)
    operator, args = next(iter(node.items()))
    if operator == "var":
        name = args[0] if isinstance(args, list) and args else args
        return str(name) if isinstance(name, str | int) else _literal(node)
    values = args if isinstance(args, list) else [args]
    if operator in _JOINED:
        # Comparisons bind tighter than and/or: only nested and/or need brackets.
        text = f" {_JOINED[operator]} ".join(_text(v, top=not _is_joined(v)) for v in values)
        return text if top or len(values) < 2 else f"({text})"
    if operator == "!":
        return f"not {_text(values[0])}"
    if operator == "!!":
        return f"bool({_text(values[0], top=True)})"
    if operator in ("<", "<=") and len(values) == 3:
        symbol = _INFIX[operator]
        return f"{_text(values[0])} {symbol} {_text(values[1])} {symbol} {_text(values[2])}"
    if operator in _INFIX and len(values) == 2:
        text = f"{_text(values[0])} {_INFIX[operator]} {_text(values[1])}"
        return text if top else f"({text})"
    if operator == "if" and len(values) >= 2:
        parts = []
        for index in range(0, len(values) - 1, 2):
            keyword = "if" if index == 0 else "else if"
            parts.append(f"{keyword} {_text(values[index], True)} then {_text(values[index + 1])}")
        if len(values) % 2:
            parts.append(f"else {_text(values[-1])}")
        text = " ".join(parts)
        return text if top else f"({text})"
    return f"{operator}(" + ", ".join(_text(v, top=True) for v in values) + ")"


def _is_joined(node: Any) -> bool:
    return isinstance(node, dict) and len(node) == 1 and next(iter(node)) in _JOINED


def _literal(value: Any) -> str:
    if value is None:
        return "null"
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
