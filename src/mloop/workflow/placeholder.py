"""Typed placeholders (``wf.Placeholder``) and run-time system values (``wf.SystemEnv``)."""

from __future__ import annotations

import enum
from typing import Any

from mloop.spec import models as m
from mloop.workflow._base import name_of


class PlaceholderType(str, enum.Enum):
    """Value types of a placeholder; the value is the wire string."""

    INT = "int"
    STR = "str"
    BOOL = "bool"
    FLOAT = "float"
    ENUM = "enum"
    JSON = "json"
    LIST = "list"


VALID_TYPES = frozenset(t.value for t in PlaceholderType)


class Placeholder:
    """A workflow parameter whose value is given when a run starts.

    Args:
        name: parameter name, global in the workflow.
        placeholder_type: a :class:`PlaceholderType` (its wire string is accepted too).
        default: default value, checked against the type.
        placeholder_format: semantic format: ``obs``, ``flavor``, ``train_flavor``, ``swr``...;
            for LIST the element type (``str``/``int``/``float``/``bool``).
        delay: ask for the value when the step using it starts, not before the run.
        description: help text shown by the CLI and the console.
        enum_list: allowed values (ENUM).
        constraint: internal constraints (training flavors).
        required: False lets a run start without a value.
    """

    def __init__(self, name: str, placeholder_type: PlaceholderType | str, default: Any = None,
                 placeholder_format: str | None = None, delay: bool = False, description: str | None = None,
                 enum_list: list[Any] | None = None, constraint: dict[str, Any] | None = None,
                 required: bool = True) -> None:
        self.name = name
        self.placeholder_type = placeholder_type
        self.default = default
        self.placeholder_format = placeholder_format
        self.delay = delay
        self.description = description
        self.enum_list = enum_list
        self.constraint = constraint
        self.required = required

    @property
    def value(self) -> Any:
        """The current value (the default until a run gives another)."""
        return self.default

    def ref(self) -> str:
        return f"$ref/parameters/{self.name}"

    def _wire_type(self) -> str:
        t = self.placeholder_type
        if isinstance(t, PlaceholderType):
            return t.value
        return str(t).lower()

    def _param_spec(self) -> m.ParameterSpec:
        wire = self._wire_type()
        if wire not in VALID_TYPES:
            wire = "str"  # SpecContext.add_parameter reports the bad type
        default = self.default
        if wire == "float" and isinstance(default, int) and not isinstance(default, bool):
            default = float(default)  # the 1.0.0 SDK insists on 1.0; 1 means the same
        spec = m.ParameterSpec(
            name=name_of(self.name), type=wire, default=default, format=self.placeholder_format, delay=self.delay,  # type: ignore[arg-type]
            description=self.description, enum=list(self.enum_list) if self.enum_list is not None else None,
            constraint=self.constraint, required=self.required,
        )
        return spec

    def __repr__(self) -> str:
        return f"Placeholder(name={self.name!r}, placeholder_type={self._wire_type()!r}, default={self.default!r})"


class SystemEnv(str, enum.Enum):
    """Facts known only when a run starts; ``member.env()`` is usable wherever a str is."""

    EXECUTION_CREATE_TIME = "execution_create_time"
    EXECUTION_UUID = "execution_uuid"
    WORKFLOW_UUID = "workflow_uuid"
    WORKFLOW_NAME = "workflow_name"
    WORKFLOW_RUN_COUNT = "workflow_run_count"
    WORKFLOW_GALLERY_CONTENT_ID = "workflow_gallery_content_id"
    WORKFLOW_GALLERY_CONTENT_VERSION = "workflow_gallery_version_id"

    def env(self) -> str:
        return f"$ref/system_env/{self.value}"
