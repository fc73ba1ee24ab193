"""ModelStep (register a model version) and ServiceStep (deploy it) families."""

from __future__ import annotations

from typing import Any

from mloop.workflow._base import SpecContext, SpecObject
from mloop.workflow._step import Step, StepInput, StepOutput

MODEL_TYPES = ("TensorFlow", "MXNet", "Caffe", "Spark_MLlib", "Scikit_Learn", "XGBoost", "Image", "PyTorch",
               "Template", "Custom", "ONNX")


class TemplateInputs(SpecObject):
    _spec_fields = ("input_id", "input")

    def __init__(self, input_id: Any, input: Any) -> None:
        self.input_id, self.input = input_id, input


class Template(SpecObject):
    _spec_fields = ("template_id", "infer_format", "template_inputs")

    def __init__(self, template_id: Any, infer_format: Any, template_inputs: Any) -> None:
        self.template_id, self.infer_format, self.template_inputs = template_id, infer_format, template_inputs


class ModelConfig(SpecObject):
    """How a model version is registered: name, version (auto-incremented when absent), type, ..."""

    _spec_fields = ("model_type", "model_name", "model_version", "runtime", "source_location", "source_job_id",
                    "source_type", "description", "execution_code", "input_params", "output_params",
                    "dependencies", "model_metrics", "apis", "initial_config", "template", "arch",
                    "dynamic_load_mode", "prebuild", "install_type")

    def __init__(self, model_type: Any = "TensorFlow", model_name: Any = None, model_version: Any = None,
                 runtime: Any = None, source_location: Any = None, source_job_id: Any = None, source_type: Any = None,
                 description: Any = None, execution_code: Any = None, input_params: Any = None,
                 output_params: Any = None, dependencies: Any = None, model_metrics: Any = None, apis: Any = None,
                 initial_config: Any = None, template: Any = None, arch: Any = None, dynamic_load_mode: Any = None,
                 prebuild: Any = None, install_type: Any = None) -> None:
        self.model_type, self.model_name, self.model_version, self.runtime = model_type, model_name, model_version, runtime
        self.source_location, self.source_job_id, self.source_type = source_location, source_job_id, source_type
        self.description, self.execution_code = description, execution_code
        self.input_params, self.output_params, self.dependencies = input_params, output_params, dependencies
        self.model_metrics, self.apis, self.initial_config, self.template = model_metrics, apis, initial_config, template
        self.arch, self.dynamic_load_mode, self.prebuild, self.install_type = arch, dynamic_load_mode, prebuild, install_type

    def _to_spec(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        if isinstance(self.model_type, str) and self.model_type not in MODEL_TYPES:
            ctx.problem(f"{loc}.model_type", f"unknown model_type {self.model_type!r}",
                        f"use one of: {', '.join(MODEL_TYPES)}")
        return super()._to_spec(ctx, loc)


class ModelInput(StepInput):
    pass


class ModelOutput(StepOutput):
    data_type = "model"

    def __init__(self, name: str | None = None, model_config: ModelConfig | None = None) -> None:
        super().__init__(name)
        self.model_config = model_config

    def _config(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        if self.model_config is None:
            ctx.problem(loc, "ModelOutput needs a model_config", "ModelOutput(name, model_config=wf.steps.ModelConfig(...))")
            return {}
        return ctx.value(self.model_config, f"{loc}.model_config") or {}


class ModelStep(Step):
    """Registers a job's output folder as the next version of a named model."""

    step_type = "model"

    def __init__(self, name: str, outputs: Any, inputs: Any = None, title: str | None = None,
                 description: str | None = None, policy: Any = None, depend_steps: Any = None) -> None:
        super().__init__(name, inputs, outputs, title, description, policy, depend_steps)


class ServiceConfig(SpecObject):
    _spec_fields = ("infer_type", "service_name", "description", "vpc_id", "subnet_network_id", "security_group_id",
                    "cluster_id", "schedule", "additional_properties", "apps", "envs")

    def __init__(self, infer_type: Any = "real-time", service_name: Any = None, description: Any = None,
                 vpc_id: Any = None, subnet_network_id: Any = None, security_group_id: Any = None,
                 cluster_id: Any = None, schedule: Any = None, additional_properties: Any = None, apps: Any = None,
                 envs: Any = None) -> None:
        self.infer_type, self.service_name, self.description = infer_type, service_name, description
        self.vpc_id, self.subnet_network_id, self.security_group_id = vpc_id, subnet_network_id, security_group_id
        # The 1.0.0 SDK adds a hidden delayed "schedule" placeholder that pauses every deployment;
        # here None means "keep running" so unattended local runs don't stop for input.
        self.cluster_id, self.schedule, self.additional_properties = cluster_id, schedule, additional_properties
        self.apps, self.envs = apps, envs


class ServiceInput(StepInput):
    pass


class ServiceOutput(StepOutput):
    data_type = "service"

    def __init__(self, name: str | None = None, service_config: ServiceConfig | None = None) -> None:
        super().__init__(name)
        self.service_config = service_config or ServiceConfig()

    def _config(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        return ctx.value(self.service_config, f"{loc}.service_config") or {}


class ServiceStep(Step):
    """Deploys a model version as an online service (or updates an existing one)."""

    step_type = "service"

    def __init__(self, name: str, inputs: Any, outputs: Any, title: str | None = None, description: str | None = None,
                 policy: Any = None, depend_steps: Any = None) -> None:
        super().__init__(name, inputs, outputs, title, description, policy, depend_steps)
