"""JobStep and its family, algorithms, and the MapReduce (MRS) job step."""

from __future__ import annotations

import enum
from typing import Any

from mloop.workflow._base import SpecContext, SpecObject, as_list
from mloop.workflow._step import Step, StepInput, StepOutput
from mloop.workflow.data import MetricsConfig, OBSOutputConfig, TripartiteServiceConfig
from mloop.workflow.placeholder import Placeholder


class AlgorithmParameters(SpecObject):
    """One hyper-parameter; arrives in the job as ``--name=value``."""

    _spec_fields = ("name", "value", "help", "sensitive")

    def __init__(self, name: str, value: Any, help: str | None = None, sensitive: bool | None = None) -> None:
        self.name, self.value, self.help, self.sensitive = name, value, help, sensitive


class BaseAlgorithm(SpecObject):
    """What a job runs: a registered algorithm (``id``), a subscribed one
    (``subscription_id`` + ``item_version_id``), or code: ``code_dir`` + ``boot_file`` or
    ``code_dir`` + ``command``."""

    _spec_fields = ("id", "subscription_id", "item_version_id", "code_dir", "boot_file", "command",
                    "engine", "environments")

    def __init__(self, id: str | None = None, subscription_id: str | None = None, item_version_id: str | None = None,
                 code_dir: Any = None, boot_file: Any = None, command: Any = None,
                 parameters: list[AlgorithmParameters] | None = None, policies: Any = None,
                 engine: JobEngine | None = None, environments: dict[str, str] | None = None) -> None:
        self.id, self.subscription_id, self.item_version_id = id, subscription_id, item_version_id
        self.code_dir, self.boot_file, self.command = code_dir, boot_file, command
        self.parameters = parameters
        self.policies = policies
        self.engine, self.environments = engine, environments

    def _to_spec(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        out = super()._to_spec(ctx, loc)
        params = []
        for i, p in enumerate(as_list(self.parameters)):
            if isinstance(p, AlgorithmParameters):
                params.append(p._to_spec(ctx, f"{loc}.parameters[{i}]"))
            else:
                ctx.problem(f"{loc}.parameters[{i}]", f"expected wf.AlgorithmParameters, got {p!r}")
        out["parameters"] = params
        return out


class Algorithm(BaseAlgorithm):
    """An algorithm from the local registry (``mloop algorithm register``)."""

    def __init__(self, algorithm_id: str, parameters: list[AlgorithmParameters] | None = None) -> None:
        super().__init__(id=algorithm_id, parameters=parameters)


class AIGalleryAlgorithm(BaseAlgorithm):
    """A subscribed algorithm; ``item_version_id`` may be a version number like ``1.0.0``."""

    def __init__(self, subscription_id: str, item_version_id: str,
                 parameters: list[AlgorithmParameters] | None = None) -> None:
        super().__init__(subscription_id=subscription_id, item_version_id=item_version_id, parameters=parameters)


class JobTypeEnum(str, enum.Enum):
    JOB = "job"
    HETERO_JOB = "hetero_job"


class JobEngine(SpecObject):
    _spec_fields = ("engine_id", "engine_name", "engine_version", "image_url")

    def __init__(self, engine_id: Any = None, engine_name: Any = None, engine_version: Any = None,
                 image_url: Any = None) -> None:
        self.engine_id, self.engine_name, self.engine_version, self.image_url = (
            engine_id, engine_name, engine_version, image_url)


class JobResource(SpecObject):
    """Compute for a job: exactly one of ``flavor`` ({"flavor_id": ...}) and ``flavor_id``.
    Unlike the 1.0.0 SDK, plain values are accepted as well as Placeholders."""

    _spec_fields = ("flavor_id", "flavor", "node_count", "policy")

    def __init__(self, flavor_id: Any = None, node_count: Any = 1, policy: Any = "regular", flavor: Any = None) -> None:
        if isinstance(flavor, Placeholder) and flavor.placeholder_format is None:
            flavor.placeholder_format = "train_flavor"
        if isinstance(flavor_id, Placeholder) and flavor_id.placeholder_format is None:
            flavor_id.placeholder_format = "flavor"
        self.flavor_id, self.node_count, self.policy, self.flavor = flavor_id, node_count, policy, flavor


class LogExportPath(SpecObject):
    _spec_fields = ("obs_url", "host_path")

    def __init__(self, obs_url: Any = None, host_path: Any = None) -> None:
        self.obs_url, self.host_path = obs_url, host_path


class JobSpec(SpecObject):
    _spec_fields = ("resource", "volumes", "log_export_path")

    def __init__(self, resource: JobResource, volumes: list[Any] | None = None,
                 log_export_path: LogExportPath | None = None) -> None:
        self.resource, self.volumes, self.log_export_path = resource, volumes, log_export_path


class JobMetadata(SpecObject):
    _spec_fields = ("description", "labels")

    def __init__(self, description: str | None = None, labels: dict[str, str] | None = None) -> None:
        self.description, self.labels = description, labels


class JobInput(StepInput):
    """A job input; arrives as ``--<name>=<local path>``."""


class JobOutput(StepOutput):
    """A job output: give one of ``obs_config`` (a folder), ``model_config``,
    ``metrics_config`` (metrics files) or ``service_config``. The first given wins."""

    def __init__(self, name: str, obs_config: OBSOutputConfig | None = None, model_config: Any = None,
                 metrics_config: MetricsConfig | None = None,
                 service_config: TripartiteServiceConfig | None = None) -> None:
        super().__init__(name)
        self.obs_config, self.model_config = obs_config, model_config
        self.metrics_config, self.service_config = metrics_config, service_config

    def _chosen(self) -> tuple[str, Any]:
        for kind, cfg in (("obs", self.obs_config), ("model", self.model_config),
                          ("metrics", self.metrics_config), ("service_content", self.service_config)):
            if cfg is not None:
                return kind, cfg
        return "unknown", None

    @property
    def data_type(self) -> str:  # type: ignore[override]
        return self._chosen()[0]

    def _config(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        kind, cfg = self._chosen()
        if cfg is None:
            return {}
        if not isinstance(cfg, SpecObject):
            ctx.problem(loc, f"{kind} config has the wrong type: {cfg!r}")
            return {}
        return cfg._to_spec(ctx, f"{loc}.{kind}_config")


class JobStep(Step):
    """Runs an algorithm as a training job (a local process, or a Ray task)."""

    step_type = "job"

    def __init__(self, name: str, algorithm: BaseAlgorithm, spec: JobSpec, kind: JobTypeEnum = JobTypeEnum.JOB,
                 inputs: Any = None, outputs: Any = None, metadata: JobMetadata | None = None,
                 title: str | None = None, description: str | None = None, policy: Any = None,
                 depend_steps: Any = None) -> None:
        super().__init__(name, inputs, outputs, title, description, policy, depend_steps)
        self.algorithm, self.spec, self.kind, self.metadata = algorithm, spec, kind, metadata

    def _properties(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": ctx.value(self.kind, f"{loc}.kind")}
        if not isinstance(self.kind, JobTypeEnum) and self.kind not in ("job", "hetero_job"):
            ctx.problem(f"{loc}.kind", f"kind must be a wf.steps.JobTypeEnum, got {self.kind!r}")
        if self.metadata is not None:
            if isinstance(self.metadata, JobMetadata):
                out["metadata"] = self.metadata._to_spec(ctx, f"{loc}.metadata")
            else:
                ctx.problem(f"{loc}.metadata", f"expected wf.steps.JobMetadata, got {self.metadata!r}")
        if isinstance(self.spec, JobSpec):
            out["spec"] = self.spec._to_spec(ctx, f"{loc}.spec")
        else:
            ctx.problem(f"{loc}.spec", f"expected wf.steps.JobSpec, got {self.spec!r}")
        if isinstance(self.algorithm, BaseAlgorithm):
            out["algorithm"] = self.algorithm._to_spec(ctx, f"{loc}.algorithm")
        else:
            ctx.problem(f"{loc}.algorithm", f"expected wf.BaseAlgorithm/Algorithm/AIGalleryAlgorithm, "
                                            f"got {self.algorithm!r}")
        return out


class MrsJobAlgorithm(SpecObject):
    _spec_fields = ("boot_file", "parameters")

    def __init__(self, boot_file: Any, parameters: list[AlgorithmParameters] | None = None) -> None:
        self.boot_file, self.parameters = boot_file, parameters


class MrsJobInput(StepInput):
    pass


class MrsJobOutput(StepOutput):
    data_type = "obs"

    def __init__(self, name: str, obs_config: OBSOutputConfig) -> None:
        super().__init__(name)
        self.obs_config = obs_config

    def _config(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        return ctx.value(self.obs_config, loc) or {}


class MrsJobStep(Step):
    """A Spark job on a MapReduce cluster (``spark-submit``)."""

    step_type = "mrs_job"

    def __init__(self, name: str, inputs: Any, outputs: Any, mrs_algorithm: MrsJobAlgorithm, cluster_id: str,
                 title: str | None = None, description: str | None = None, policy: Any = None,
                 depend_steps: Any = None) -> None:
        super().__init__(name, inputs, outputs, title, description, policy, depend_steps)
        self.mrs_algorithm, self.cluster_id = mrs_algorithm, cluster_id

    def _properties(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        return {"algorithm": ctx.value(self.mrs_algorithm, f"{loc}.algorithm"), "cluster_id": self.cluster_id}
