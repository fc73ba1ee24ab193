"""The versioned workflow spec: the only contract between the SDK and everything else.

Its shape follows the ModelArts definition JSON (reference section 11) so exports diff
cleanly against it: values are JSON literals or reference strings (see :mod:`mloop.spec.refs`),
steps carry ``inputs``/``outputs``/``properties``/``depend_steps``/``policy``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, field_validator, model_serializer

from mloop.durations import duration_seconds

SCHEMA_VERSION = 1

StepType = Literal[
    "job", "model", "service", "create_dataset", "release_dataset", "labeling",
    "dataset_import", "condition", "mrs_job",
]
ParameterType = Literal["int", "str", "bool", "float", "enum", "json", "list"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParameterSpec(_Model):
    """A typed placeholder (``wf.Placeholder``)."""

    name: str
    type: ParameterType
    default: Any = None
    format: str | None = None
    delay: bool = False
    description: str | None = None
    enum: list[Any] | None = None
    constraint: dict[str, Any] | None = None
    required: bool = True
    used_steps: list[str] = Field(default_factory=list)


class DataRequirementSpec(_Model):
    """A data placeholder (``OBSPlaceholder``, ``DatasetPlaceholder``, ...)."""

    name: str
    type: str  # obs | dataset | label_task | service | model_list | swr | data_selector
    delay: bool = False
    conditions: list[dict[str, Any]] = Field(default_factory=list)  # {attribute, operator, value}
    default: Any = None
    used_steps: list[str] = Field(default_factory=list)


class DataSpec(_Model):
    """A concrete data object fixed at build time (``OBSPath``, ``Dataset``, ...)."""

    name: str
    type: str
    value: dict[str, Any]
    used_steps: list[str] = Field(default_factory=list)


class StorageSpec(_Model):
    name: str
    type: Literal["obs"] = "obs"
    title: str = ""
    description: str = ""
    path: str | None = None  # the default root
    with_execution_id: bool = False
    create_dir: bool = False


class ConditionSpec(_Model):
    """A typed comparison; operands are literals, reference strings or nested conditions."""

    type: str  # == > >= in < <= != or
    left: Any
    right: Any

    @field_validator("left", "right", mode="before")
    @classmethod
    def _nested(cls, value: Any) -> Any:
        # A dict operand can only be a nested condition: literal operands are scalars/sequences.
        if isinstance(value, dict) and {"type", "left", "right"} <= value.keys():
            return ConditionSpec.model_validate(value)
        return value


class StepPolicySpec(_Model):
    poll_interval_seconds: float = 1
    max_execution_minutes: float = 10080
    skip_conditions: list[ConditionSpec] = Field(default_factory=list)
    # mloop extensions (step caching). Written only when set, so a spec that does not use
    # them dumps, hashes and diffs exactly as before they existed (no schema version bump).
    cache: bool | None = None  # False: the step always runs (never reuses an earlier result)
    cache_expiry: str | None = None  # how long its result may be reused (7d, 12h, never)

    @field_validator("cache_expiry", mode="after")
    @classmethod
    def _a_duration(cls, value: str | None) -> str | None:
        duration_seconds(value)
        return value

    @model_serializer(mode="wrap")
    def _without_unset_extensions(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in ("cache", "cache_expiry"):
            if data.get(name) is None:
                data.pop(name, None)
        return data


class InputSpec(_Model):
    name: str
    type: str
    data: Any  # a reference string


class OutputSpec(_Model):
    name: str
    type: str
    config: dict[str, Any] = Field(default_factory=dict)


class StepSpec(_Model):
    name: str
    type: StepType
    title: str | None = None
    description: str | None = None
    inputs: list[InputSpec] = Field(default_factory=list)
    outputs: list[OutputSpec] = Field(default_factory=list)
    properties: dict[str, Any] = Field(default_factory=dict)
    depend_steps: list[str] = Field(default_factory=list)
    policy: StepPolicySpec | None = None
    # condition steps only
    conditions: list[ConditionSpec] = Field(default_factory=list)
    if_then_steps: list[str] = Field(default_factory=list)
    else_then_steps: list[str] = Field(default_factory=list)

    def output(self, name: str) -> OutputSpec | None:
        return next((o for o in self.outputs if o.name == name), None)


class SceneSpec(_Model):
    name: str
    steps: list[str]


class PolicySpec(_Model):
    scenes: list[SceneSpec] = Field(default_factory=list)


class SubgraphSpec(_Model):
    name: str
    steps: list[str]


class WorkflowSpec(_Model):
    """A whole workflow, as released and run."""

    schema_version: int = SCHEMA_VERSION
    name: str
    description: str = ""
    steps: list[StepSpec]
    parameters: list[ParameterSpec] = Field(default_factory=list)
    data_requirements: list[DataRequirementSpec] = Field(default_factory=list)
    data: list[DataSpec] = Field(default_factory=list)
    storages: list[StorageSpec] = Field(default_factory=list)
    policy: PolicySpec | None = None
    sub_graphs: list[SubgraphSpec] = Field(default_factory=list)
    extend: dict[str, Any] = Field(default_factory=dict)
    workspace_id: str = "0"
    # Folder that relative paths in the workflow (code_dir, storage defaults, local OBS
    # paths) are resolved against: the folder of the file that defined the workflow.
    source_dir: str | None = None

    def step(self, name: str) -> StepSpec | None:
        return next((s for s in self.steps if s.name == name), None)

    def parameter(self, name: str) -> ParameterSpec | None:
        return next((p for p in self.parameters if p.name == name), None)

    def data_requirement(self, name: str) -> DataRequirementSpec | None:
        return next((d for d in self.data_requirements if d.name == name), None)

    def data_object(self, name: str) -> DataSpec | None:
        return next((d for d in self.data if d.name == name), None)

    def storage(self, name: str) -> StorageSpec | None:
        return next((s for s in self.storages if s.name == name), None)
