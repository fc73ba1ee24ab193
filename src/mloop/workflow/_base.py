"""Turning SDK objects into spec data.

SDK objects are plain declarative holders: their constructors store what they are given
and do no I/O. :class:`SpecContext` walks them once, collecting placeholders, data objects
and storages as it meets them, and recording every problem it can't express as spec data
(a wrong Python type, two different placeholders with one name) for the validator to report
together with the spec's own problems.
"""

from __future__ import annotations

import enum
import hashlib
import json
from typing import TYPE_CHECKING, Any

from mloop.errors import Problem
from mloop.spec import models as m

if TYPE_CHECKING:
    from mloop.workflow.placeholder import Placeholder


class SpecObject:
    """A configuration object serialised field by field (``_spec_fields``), Nones left out."""

    _spec_fields: tuple[str, ...] = ()

    def _to_spec(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self._spec_fields:
            value = getattr(self, name)
            if value is not None:
                out[name] = ctx.value(value, f"{loc}.{name}")
        return out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._spec_fields if getattr(self, k, None) is not None)
        return f"{type(self).__name__}({args})"


class DataObject:
    """Something a step input can take: concrete data, a data placeholder, a consumption."""

    data_type: str = "unknown"

    def _data_ref(self, ctx: SpecContext, loc: str) -> str:
        raise NotImplementedError


def _stable_name(kind: str, value: dict[str, Any]) -> str:
    # ModelArts names concrete data with a random uuid; a content-derived name keeps
    # compiled specs identical from one compile to the next (golden files, diffs).
    digest = hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"{kind}_{digest}"


class SpecContext:
    """Collects everything a workflow's steps refer to while they are serialised."""

    def __init__(self) -> None:
        self.parameters: dict[str, m.ParameterSpec] = {}
        self.data_requirements: dict[str, m.DataRequirementSpec] = {}
        self.data: dict[str, m.DataSpec] = {}
        self.storage_roots: dict[str, Any] = {}  # name -> root Storage object
        self.problems: list[Problem] = []
        self.step: str | None = None
        self.input: str | None = None  # the input/output being serialised, for problem locations
        self.step_objects: dict[str, Any] = {}  # name -> Step, filled by the workflow
        self._implied: list[str] = []

    def imply_dependency(self, producer: Any) -> None:
        """Record that the step being serialised consumes ``producer``'s output.

        ModelArts builds the DAG from ``depend_steps`` only, so forgetting one made the
        consumer start before its input existed; mloop adds the edge itself.
        """
        known = self.step_objects.get(producer.name)
        if known is not None and known is not producer:
            self.problem(f"steps[{self.step}]", f"uses an output of a step named {producer.name!r} that is not "
                                                f"the step of that name in this workflow")
        self._implied.append(producer.name)

    def take_implied(self) -> list[str]:
        out, self._implied = self._implied, []
        return out

    def problem(self, location: str, message: str, hint: str | None = None, **fields: Any) -> None:
        fields.setdefault("step", self.step)
        fields.setdefault("input", self.input)
        self.problems.append(Problem(location, message, hint, **fields))

    def _use(self, used: list[str]) -> None:
        if self.step and self.step not in used:
            used.append(self.step)

    # -- registration -----------------------------------------------------------------------
    def add_parameter(self, ph: Placeholder, loc: str) -> str:
        from mloop.workflow.placeholder import VALID_TYPES

        if ph._wire_type() not in VALID_TYPES:
            self.problem(f"parameters[{ph.name}]", f"unknown placeholder_type {ph.placeholder_type!r}",
                         f"use one of: {', '.join(sorted(VALID_TYPES))} (wf.PlaceholderType.*)",
                         placeholder=ph.name)
        new = ph._param_spec()
        old = self.parameters.get(ph.name)
        if old is None:
            self.parameters[ph.name] = new
            old = new
        elif old.model_dump(exclude={"used_steps"}) != new.model_dump(exclude={"used_steps"}):
            diff = [k for k, v in new.model_dump(exclude={"used_steps"}).items() if getattr(old, k) != v]
            self.problem(loc, f"placeholder {ph.name!r} is declared twice with different definitions "
                              f"(they differ in: {', '.join(diff)})",
                         "placeholder names are global: reuse one Placeholder object or rename one",
                         placeholder=ph.name)
        self._use(old.used_steps)
        return f"$ref/parameters/{new.name}"

    def add_data_requirement(self, spec: m.DataRequirementSpec, loc: str) -> str:
        old = self.data_requirements.get(spec.name)
        if old is None:
            self.data_requirements[spec.name] = spec
            old = spec
        elif old.model_dump(exclude={"used_steps"}) != spec.model_dump(exclude={"used_steps"}):
            self.problem(loc, f"data placeholder {spec.name!r} is declared twice with different definitions",
                         "reuse one object or rename one", placeholder=spec.name)
        self._use(old.used_steps)
        return f"$ref/data_requirements/{spec.name}"

    def add_data(self, kind: str, value: dict[str, Any]) -> str:
        name = _stable_name(kind, value)
        spec = self.data.setdefault(name, m.DataSpec(name=name, type=kind, value=value))
        self._use(spec.used_steps)
        return f"$ref/data/{name}"

    # -- values -----------------------------------------------------------------------------
    def value(self, v: Any, loc: str) -> Any:
        """A field value as spec data: literals as they are, SDK objects as refs or dicts."""
        from mloop.workflow.data import Storage
        from mloop.workflow.placeholder import Placeholder, SystemEnv
        from mloop.workflow._step import OutputVariable

        # Enums first: SystemEnv and the wire enums subclass str/int.
        if isinstance(v, SystemEnv):
            return v.env()
        if isinstance(v, enum.Enum):
            return v.value
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, Placeholder):
            return self.add_parameter(v, loc)
        if isinstance(v, Storage):
            return v._ref(self)
        if isinstance(v, OutputVariable):
            self.imply_dependency(v.step)
            return v._ref()
        if isinstance(v, SpecObject):
            return v._to_spec(self, loc)
        if isinstance(v, DataObject):
            return v._data_ref(self, loc)
        if isinstance(v, (list, tuple)):
            return [self.value(x, f"{loc}[{i}]") for i, x in enumerate(v)]
        if isinstance(v, dict):
            return {str(k): self.value(x, f"{loc}.{k}") for k, x in v.items()}
        self.problem(loc, f"cannot use a {type(v).__name__} here ({v!r})")
        return None


def name_of(value: Any) -> str:
    """A name as spec text; a missing or non-str name becomes text the validator reports."""
    if isinstance(value, str):
        return value
    return "" if value is None else str(value)


def as_list(value: Any) -> list[Any]:
    """``None`` -> [], one object -> [object], a list/tuple -> list (the SDK's one-or-many)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]

