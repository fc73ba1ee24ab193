"""Conditions as typed comparisons (the 1.0.0 SDK ``eval``-ed a formatted string).

A metric value of 0 is a value. Numbers compare as numbers (an INT placeholder equals a
FLOAT literal of the same value); strings compare as strings; bools only equal bools.
"""

from __future__ import annotations

import operator
from typing import Any, Callable

from mloop.engine.context import RunContext
from mloop.errors import MloopError
from mloop.spec.models import ConditionSpec


class ConditionError(MloopError):
    code = "condition_error"


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        if isinstance(a, str) or isinstance(b, str):  # "-p flag=true" compared with True
            return str(a).lower() == str(b).lower()
        return a is b or (isinstance(a, bool) and isinstance(b, bool) and a == b)
    if _num(a) and _num(b):
        return float(a) == float(b)
    return bool(a == b)


_ORDER: dict[str, Callable[[Any, Any], bool]] = {">": operator.gt, ">=": operator.ge, "<": operator.lt,
                                                 "<=": operator.le}


def evaluate(cond: ConditionSpec, ctx: RunContext) -> bool:
    """The truth of ``cond`` in this run.

    Raises:
        ConditionError: operands that can't be compared (the message shows both values).
        NotFoundError / InputUnavailable: a metric or output that doesn't exist.
    """
    def operand(v: Any) -> Any:
        if isinstance(v, ConditionSpec):
            return evaluate(v, ctx)
        return ctx.resolve(v)

    op = cond.type
    if op == "or":  # the right side may name a skipped step: don't resolve it when not needed
        return bool(operand(cond.left)) or bool(operand(cond.right))
    left, right = operand(cond.left), operand(cond.right)
    if op == "==":
        return _equal(left, right)
    if op == "!=":
        return not _equal(left, right)
    if op == "in":
        if not isinstance(right, (list, tuple)):
            raise ConditionError(f"'in' needs a list on the right, got {right!r}")
        return any(_equal(left, item) for item in right)
    if op in _ORDER:
        if not (_num(left) and _num(right)):
            raise ConditionError(f"cannot compare {left!r} {op} {right!r}: both sides must be numbers")
        return _ORDER[op](float(left), float(right))
    raise ConditionError(f"unknown condition operator {op!r}")


def _label(value: Any) -> str:
    from mloop.spec import refs

    if not refs.is_ref(value):
        return repr(value)
    ref = refs.parse_ref(value)
    if isinstance(ref, refs.MetricRef):
        return f"{ref.step}.{ref.key}"
    return str(getattr(ref, "name", value))


def describe(cond: ConditionSpec, ctx: RunContext | None = None) -> str:
    """``cond`` in words, with the values it compared when ``ctx`` is given."""
    from mloop.spec import refs

    def side(v: Any) -> str:
        if isinstance(v, ConditionSpec):
            return f"({describe(v, ctx)})"
        text = _label(v)
        if ctx is not None and refs.is_ref(v):
            try:
                text += f" (={ctx.resolve(v)!r})"
            except Exception:  # noqa: BLE001 - a description must not fail the run
                pass
        return text

    return f"{side(cond.left)} {cond.type} {side(cond.right)}"
