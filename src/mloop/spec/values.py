"""Run-time values for placeholders: coerced to the declared type and checked before anything runs.

Values arrive typed (from Python) or as text (``mloop run -p epochs=5``). Every problem is
collected and raised once as :class:`PlaceholderValueError`, naming the placeholder, the
expected type and the value given.
"""

from __future__ import annotations

import json
import math
from typing import Any

from mloop.errors import Problem, PlaceholderValueError
from mloop.spec.models import DataRequirementSpec, ParameterSpec, WorkflowSpec

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


MAX_VALUE_DEPTH = 64  # nesting of a JSON/list value: deeper is refused, not a RecursionError later


class _Bad(Exception):
    pass


class _Unsafe(Exception):
    """A value no store can keep: a non-finite number, a NUL character, nesting too deep."""


def check_storable(value: Any) -> None:
    """Refuse what SQLite takes but PostgreSQL (or JSON) does not: NaN/Infinity anywhere, NUL
    characters in strings or keys, nesting deeper than :data:`MAX_VALUE_DEPTH`.

    Raises:
        _Unsafe: the reason, in words.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_VALUE_DEPTH:
            raise _Unsafe(f"nested deeper than {MAX_VALUE_DEPTH} levels")
        if isinstance(item, float) and not math.isfinite(item):
            raise _Unsafe(f"{item!r} is not a finite number (NaN and infinity, e.g. 1e999, cannot be stored)")
        if isinstance(item, str) and "\x00" in item:
            raise _Unsafe("it holds a NUL character (\\x00)")
        if isinstance(item, dict):
            for key, sub in item.items():
                if isinstance(key, str) and "\x00" in key:
                    raise _Unsafe("a key holds a NUL character (\\x00)")
                stack.append((sub, depth + 1))
        elif isinstance(item, (list, tuple)):
            stack.extend((sub, depth + 1) for sub in item)


def _unsafe_problem(field: str, name: str, given: Any, reason: str) -> Problem:
    shown = given if not isinstance(given, str) or len(given) <= 80 else given[:77] + "..."
    return Problem(field, f"value {shown!r} is refused: {reason}", placeholder=name)


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise _Unsafe(f"JSON nested deeper than Python can read (keep it under {MAX_VALUE_DEPTH} levels)") from None


def _coerce_scalar(ptype: str, value: Any) -> Any:
    if ptype == "int":
        if isinstance(value, bool):
            raise _Bad
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise _Bad from None
        raise _Bad
    if ptype == "float":
        if isinstance(value, bool):
            raise _Bad
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                raise _Bad from None
        raise _Bad
    if ptype == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise _Bad
    if ptype == "str":
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise _Bad
    raise _Bad


def coerce_parameter(p: ParameterSpec, value: Any) -> Any:
    """``value`` as the placeholder's type.

    Raises:
        PlaceholderValueError: naming the placeholder, its type and the value given.
    """
    given = value  # reported as given, not as parsed
    try:
        value = _coerce(p, value)
        check_storable(value)
        return value
    except _Unsafe as exc:
        raise PlaceholderValueError([_unsafe_problem(f"parameters[{p.name}]", p.name, given, str(exc))]) from None


def _coerce(p: ParameterSpec, value: Any) -> Any:
    given = value  # reported as given, not as parsed
    try:
        if p.type in ("int", "float", "bool", "str"):
            return _coerce_scalar(p.type, value)
        if p.type == "json":
            if isinstance(value, str):
                value = _loads(value)
            if not isinstance(value, dict):
                raise _Bad
            return value
        if p.type == "list":
            if isinstance(value, str):
                text = value.strip()
                value = _loads(text) if text.startswith("[") else [v.strip() for v in text.split(",") if v.strip()]
            if not isinstance(value, list):
                raise _Bad
            return [_coerce_scalar(p.format or "str", v) for v in value]
        if p.type == "enum":
            choices = p.enum or []
            if value in choices:
                return value
            for choice in choices:  # "-p mode=3" for enum_list [1, 2, 3]
                if isinstance(value, str) and str(choice) == value:
                    return choice
            raise PlaceholderValueError([Problem(
                f"parameters[{p.name}]", f"value {value!r} is not one of {choices!r}",
                "pick a value from enum_list", placeholder=p.name)])
    except (_Bad, json.JSONDecodeError, ValueError) as exc:
        if isinstance(exc, PlaceholderValueError):
            raise
        expected = p.type.upper() + (f" of {p.format}" if p.type == "list" else "")
        example = {"json": ' (a JSON object, e.g. {"flavor_id": "cpu.small"})', "bool": " (true or false)"}.get(p.type, "")
        raise PlaceholderValueError([Problem(
            f"parameters[{p.name}]", f"expected {expected}{example}, got {given!r}",
            placeholder=p.name)]) from None
    return value


def _data_value(d: DataRequirementSpec, value: Any) -> Any:
    """Data placeholder values: a path string for OBS (``obs_path``/``obs_url`` dicts accepted),
    ``name:version`` or a dict for datasets, anything JSON-like for the rest."""
    if d.type == "obs" or (d.type == "data_selector" and isinstance(value, str)):
        if isinstance(value, dict):
            value = value.get("obs_url", value.get("obs_path"))
        if not isinstance(value, str) or not value:
            raise _Bad
        return {"obs_url": value}
    if d.type == "dataset":
        if isinstance(value, str):
            name, _, version = value.partition(":")
            value = {"dataset_name": name, "version_name": version or None}
        if not isinstance(value, dict) or not value.get("dataset_name"):
            raise _Bad
        return value
    if isinstance(value, str):
        try:
            return _loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _checked_data_value(d: DataRequirementSpec, value: Any) -> Any:
    """:func:`_data_value`, then :func:`check_storable` (raises _Bad or _Unsafe)."""
    out = _data_value(d, value)
    check_storable(out)
    return out


def resolve_values(spec: WorkflowSpec, given: dict[str, Any], *, steps: set[str] | None = None,
                   require_defaults: bool = False) -> dict[str, Any]:
    """Every placeholder's value for a run: given values coerced, defaults filled in.

    Args:
        spec: the workflow.
        given: values by placeholder (or data placeholder) name.
        steps: the steps that will run; a placeholder used only by other steps may stay unset.
        require_defaults: ``release_and_run()``: nobody is there to give a missing value.

    Raises:
        PlaceholderValueError: every unknown name, bad value and missing value at once.
    """
    problems: list[Problem] = []
    out: dict[str, Any] = {}
    known = {p.name for p in spec.parameters} | {d.name for d in spec.data_requirements}
    for name in given:
        if name not in known:
            hint = f"known: {', '.join(sorted(known))}" if known else "this workflow has no placeholders"
            problems.append(Problem(f"parameters[{name}]", f"no placeholder named {name!r}", hint, placeholder=name))

    def needed(used: list[str]) -> bool:
        return steps is None or not used or bool(set(used) & steps)

    for p in spec.parameters:
        if p.name in given:
            try:
                out[p.name] = coerce_parameter(p, given[p.name])
            except PlaceholderValueError as exc:
                problems.extend(exc.problems)
        elif p.default is not None:
            out[p.name] = p.default
        elif p.required and needed(p.used_steps) and not p.delay:  # delayed: asked for when its step starts
            what = "release_and_run() needs a default for every placeholder" if require_defaults else \
                f"give it with -p {p.name}=VALUE (or parameters={{'{p.name}': ...}})"
            problems.append(Problem(f"parameters[{p.name}]", f"placeholder {p.name!r} ({p.type.upper()}) has no "
                                    "value and no default", what, placeholder=p.name))
        else:
            out[p.name] = None
    for d in spec.data_requirements:
        raw = given.get(d.name, d.default)
        if raw is None:
            if needed(d.used_steps) and not d.delay:
                hint = "release_and_run() needs a default for every placeholder" if require_defaults else \
                    f"give it with -p {d.name}=PATH"
                problems.append(Problem(f"data_requirements[{d.name}]", f"data placeholder {d.name!r} ({d.type}) "
                                        "has no value and no default", hint, placeholder=d.name))
            out[d.name] = None
            continue
        try:
            out[d.name] = _checked_data_value(d, raw)
        except _Unsafe as exc:
            problems.append(_unsafe_problem(f"data_requirements[{d.name}]", d.name, raw, str(exc)))
        except _Bad:
            problems.append(Problem(f"data_requirements[{d.name}]", f"value {raw!r} is not a valid {d.type} "
                                    "value", "for obs give a path, e.g. -p data=./data/", placeholder=d.name))
    if problems:
        raise PlaceholderValueError(problems)
    return out


def coerce_given(spec: WorkflowSpec, given: dict[str, Any]) -> dict[str, Any]:
    """Values given to a run already under way (``mloop input``): each coerced like at the
    start of a run; unknown names and bad values refused, all at once.

    Raises:
        PlaceholderValueError: every unknown name and bad value.
    """
    problems: list[Problem] = []
    out: dict[str, Any] = {}
    params = {p.name: p for p in spec.parameters}
    datas = {d.name: d for d in spec.data_requirements}
    for name, raw in given.items():
        if name in params:
            try:
                out[name] = coerce_parameter(params[name], raw)
            except PlaceholderValueError as exc:
                problems.extend(exc.problems)
        elif name in datas:
            try:
                out[name] = _checked_data_value(datas[name], raw)
            except _Unsafe as exc:
                problems.append(_unsafe_problem(f"data_requirements[{name}]", name, raw, str(exc)))
            except _Bad:
                problems.append(Problem(f"data_requirements[{name}]", f"value {raw!r} is not a valid "
                                        f"{datas[name].type} value", placeholder=name))
        else:
            known = sorted([*params, *datas])
            problems.append(Problem(f"parameters[{name}]", f"no placeholder named {name!r}",
                                    f"known: {', '.join(known)}" if known else "this workflow has no placeholders",
                                    placeholder=name))
    if problems:
        raise PlaceholderValueError(problems)
    return out
