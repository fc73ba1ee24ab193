"""Reference strings: how one part of a spec points at another (reference section 11).

==============================================================  =============================
``$ref/parameters/<name>``                                      a placeholder
``$ref/data/<name>``                                            a concrete data object
``$ref/data_requirements/<name>``                               a data placeholder
``$ref/consumptions/<step>/<output>``                           ``output.as_input()``
``$ref/consumptions/[<s1>/<o1>,<s2>/<o2>]``                     DataConsumptionSelector
``$ref/consumptions/<step>/<output>/<variable>``                an output variable
``$ref/metric_consumption/<step>/<output>/<key>``               MetricInfo
``$ref/storages(with_execution_id=<b>,create_dir=<b>)/<name>[/<dir>]``  a (joined) storage
``$ref/system_env/<value>``                                     SystemEnv
==============================================================  =============================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Union

PREFIX = "$ref/"


@dataclass(frozen=True)
class ParameterRef:
    name: str


@dataclass(frozen=True)
class DataRef:
    name: str


@dataclass(frozen=True)
class DataRequirementRef:
    name: str


@dataclass(frozen=True)
class ConsumptionRef:
    step: str
    output: str


@dataclass(frozen=True)
class SelectorRef:
    items: tuple[ConsumptionRef, ...]


@dataclass(frozen=True)
class OutputVariableRef:
    step: str
    output: str
    variable: str


@dataclass(frozen=True)
class MetricRef:
    step: str
    output: str
    key: str


@dataclass(frozen=True)
class StorageRef:
    name: str
    directory: str
    with_execution_id: bool
    create_dir: bool


@dataclass(frozen=True)
class SystemEnvRef:
    name: str


Ref = Union[ParameterRef, DataRef, DataRequirementRef, ConsumptionRef, SelectorRef,
            OutputVariableRef, MetricRef, StorageRef, SystemEnvRef]

_STORAGE = re.compile(r"^storages\(with_execution_id=(true|false),create_dir=(true|false)\)/([^/]+)(?:/(.*))?$")


def is_ref(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def parse_ref(value: str) -> Ref:
    """Parse a reference string.

    Raises:
        ValueError: not a reference string mloop knows.
    """
    if not is_ref(value):
        raise ValueError(f"not a reference: {value!r}")
    body = value[len(PREFIX):]
    kind, _, rest = body.partition("/")
    if kind == "parameters" and rest:
        return ParameterRef(rest)
    if kind == "data" and rest:
        return DataRef(rest)
    if kind == "data_requirements" and rest:
        return DataRequirementRef(rest)
    if kind == "system_env" and rest:
        return SystemEnvRef(rest)
    if kind == "consumptions" and rest:
        if rest.startswith("[") and rest.endswith("]"):
            if not rest[1:-1].strip():
                return SelectorRef(())
            items = []
            for part in rest[1:-1].split(","):
                step, _, output = part.strip().partition("/")
                if not step or not output:
                    raise ValueError(f"bad selector item {part!r} in {value!r}")
                items.append(ConsumptionRef(step, output))
            return SelectorRef(tuple(items))
        parts = rest.split("/")
        if len(parts) == 2:
            return ConsumptionRef(parts[0], parts[1])
        if len(parts) == 3:
            return OutputVariableRef(parts[0], parts[1], parts[2])
    if kind == "metric_consumption":
        parts = rest.split("/", 2)
        if len(parts) == 3:
            return MetricRef(parts[0], parts[1], parts[2])
    match = _STORAGE.fullmatch(body)
    if match:
        return StorageRef(match.group(3), match.group(4) or "", match.group(1) == "true", match.group(2) == "true")
    raise ValueError(f"unknown reference {value!r}")


def _b(flag: bool) -> str:
    return "true" if flag else "false"


def format_ref(ref: Ref) -> str:
    """The reference string for ``ref`` (inverse of :func:`parse_ref`)."""
    if isinstance(ref, ParameterRef):
        return f"{PREFIX}parameters/{ref.name}"
    if isinstance(ref, DataRef):
        return f"{PREFIX}data/{ref.name}"
    if isinstance(ref, DataRequirementRef):
        return f"{PREFIX}data_requirements/{ref.name}"
    if isinstance(ref, SystemEnvRef):
        return f"{PREFIX}system_env/{ref.name}"
    if isinstance(ref, ConsumptionRef):
        return f"{PREFIX}consumptions/{ref.step}/{ref.output}"
    if isinstance(ref, SelectorRef):
        inner = ",".join(f"{c.step}/{c.output}" for c in ref.items)
        return f"{PREFIX}consumptions/[{inner}]"
    if isinstance(ref, OutputVariableRef):
        return f"{PREFIX}consumptions/{ref.step}/{ref.output}/{ref.variable}"
    if isinstance(ref, MetricRef):
        return f"{PREFIX}metric_consumption/{ref.step}/{ref.output}/{ref.key}"
    if isinstance(ref, StorageRef):
        tail = f"/{ref.directory}" if ref.directory else ""
        return (f"{PREFIX}storages(with_execution_id={_b(ref.with_execution_id)},"
                f"create_dir={_b(ref.create_dir)})/{ref.name}{tail}")
    raise TypeError(f"not a reference object: {ref!r}")


def walk_refs(value: Any) -> list[str]:
    """Every reference string inside a JSON-like value (dicts, lists, nested conditions)."""
    found: list[str] = []

    def visit(v: Any) -> None:
        if is_ref(v):
            found.append(v)
        elif isinstance(v, dict):
            for item in v.values():
                visit(item)
        elif isinstance(v, (list, tuple)):
            for item in v:
                visit(item)
        elif hasattr(v, "model_dump"):
            visit(v.model_dump())

    visit(value)
    return found
