"""ModelStep: register a job's output folder as the next version of a named model.

The step's OBS-like input (a job output consumed with ``as_input()``, an ``OBSPath`` or an
``OBSPlaceholder``) is the model folder; its ``ModelOutput``'s ``ModelConfig`` gives the name
(``model_name``; ``<workflow>-<step>`` when absent), the type, an explicit version, runtime,
description and ``model_metrics``. When the folder is a job's output, the version also records
that job's float metrics and the dataset version the job consumed, so ``mloop model show``
answers "which run, on which data, how good".

Registration is quick (a copy and a hash), so :meth:`ModelHandler.start` returns the outcome
at once. It is idempotent per run and step: a retried step whose folder is unchanged gets the
version it already registered instead of a new one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mloop.artifacts import hash_dir, is_local, local_path
from mloop.engine.context import RunContext
from mloop.errors import ModelError, NotFoundError
from mloop.metrics import float_values
from mloop.spec import refs
from mloop.context import Context
from mloop.spec.models import InputSpec, StepSpec
from mloop.engine.handlers import Launched, Outcome, StepHandler
from mloop.store.base import NewArtifact
from mloop.store.registry import ModelRepository, ModelVersionRecord, check_model_name

__all__ = ["ModelHandler", "default_model_name", "model_output_value"]

#: Input kinds that carry the model files (a second input may name a runtime image).
_FILE_INPUTS = ("obs", "data_selector")


def default_model_name(workflow: str, step: str) -> str:
    """The model name of a ModelStep that gives none: ``<workflow>-<step>`` when that is a
    valid name, else ``model-<8 hex>`` derived from both (stable, so later runs add versions)."""
    readable = f"{workflow}-{step}"
    try:
        return check_model_name(readable)
    except ModelError:
        return "model-" + hashlib.sha256(f"{workflow}/{step}".encode()).hexdigest()[:8]


def model_output_value(record: ModelVersionRecord) -> dict[str, Any]:
    """What a ModelStep's output holds (``ModelData``-like): what a ServiceStep needs to deploy it."""
    return {"type": "model", "name": record.name, "version": record.version, "model_id": record.model_id,
            "model_type": record.model_type, "content_hash": record.content_hash, "uri": record.uri}


class ModelHandler(StepHandler):
    def start(self, step: StepSpec, ctx: RunContext, attempt: int, on_exit: Any) -> Outcome | Launched:
        from mloop.services.models import register_model

        files_input = _files_input(step)
        output = next((o for o in step.outputs if o.type == "model"), None)
        if output is None:
            raise ModelError(f"step {step.name!r} has no ModelOutput", hint="add wf.steps.ModelOutput(name, "
                             "model_config=wf.steps.ModelConfig(...))", step=step.name)
        config = ctx.resolve(output.config)
        source = ctx.resolve(files_input.data)
        if not isinstance(source, str):
            raise ModelError(f"input {files_input.name!r} of step {step.name!r} is {source!r}, not a folder",
                             hint="give the ModelStep a folder: a job output (.as_input()), an OBSPath or an "
                                  "OBSPlaceholder", step=step.name)
        name = _text(config.get("model_name")) or default_model_name(ctx.spec.name, step.name)
        version = _text(config.get("model_version"))
        model_type = _text(config.get("model_type"))
        producer = _producer(files_input.data, ctx)
        metrics = _job_metrics(ctx, producer)
        metrics.update(_declared_metrics(config.get("model_metrics"), step.name))
        dataset = _dataset_of(ctx, producer)
        repo: ModelRepository = ctx.store.registry
        backend: Context = ctx  # a run context is a context: the run service owns and closes it

        previous = self._already_registered(repo, ctx, step, name, source)
        record = previous or register_model(
            backend, name, _local_or_url(source), model_type=model_type, version=version, run_id=ctx.run_id,
            step_name=step.name, dataset=dataset, metrics=metrics,
            description=_text(config.get("description")) or step.description or "",
            runtime=_text(config.get("runtime")),
            extra={"workflow": ctx.spec.name, "run_number": ctx.run.number, "source": source,
                   "source_step": producer, "declared_type": model_type},
        )
        ctx.store.update_step(ctx.run_id, step.name, inputs={
            "values": {files_input.name: source}, "source_step": producer, "dataset": dataset})
        again = " (already registered by an earlier attempt)" if previous else ""
        return Outcome("succeeded", f"registered {record.name}:{record.version} ({record.model_type}, "
                                    f"hash {record.content_hash[:12]}){again}",
                       outputs={output.name: model_output_value(record)},
                       artifacts=[NewArtifact(output.name, "model", record.uri, digest=record.content_hash,
                                              size=record.size)])

    @staticmethod
    def _already_registered(repo: ModelRepository, ctx: RunContext, step: StepSpec, name: str,
                            source: str) -> ModelVersionRecord | None:
        """The version an earlier attempt of this step registered from the same files, if any."""
        earlier = [r for r in repo.find_versions(run_id=ctx.run_id, step_name=step.name) if r.name == name]
        if not earlier or not is_local(source):
            return None
        digest = hash_dir(local_path(source) or source)
        return next((r for r in reversed(earlier) if r.content_hash == digest), None)


def _files_input(step: StepSpec) -> InputSpec:
    found = [i for i in step.inputs if i.type in _FILE_INPUTS]
    if not found:
        kinds = ", ".join(f"{i.name} ({i.type})" for i in step.inputs) or "none"
        raise ModelError(f"step {step.name!r} has no input with the model files (inputs: {kinds})",
                         hint="give it wf.steps.ModelInput(name, data=job.outputs['train_url'].as_input()) or an "
                              "OBSPath / OBSPlaceholder folder", step=step.name)
    return found[0]


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return str(value).strip()


def _local_or_url(source: str) -> str:
    return (local_path(source) or source) if is_local(source) else source


def _producer(data: Any, ctx: RunContext) -> str | None:
    """The step whose output the input consumes (for a selector, the one that produced)."""
    if not refs.is_ref(data):
        return None
    ref = refs.parse_ref(data)
    if isinstance(ref, refs.ConsumptionRef):
        return ref.step
    if isinstance(ref, refs.SelectorRef):
        for item in ref.items:
            try:
                record = ctx.store.get_step(ctx.run_id, item.step)
            except NotFoundError:
                continue
            if record.status == "succeeded" and not record.outputs_skipped:
                return item.step
    return None


def _job_metrics(ctx: RunContext, producer: str | None) -> dict[str, float]:
    if producer is None:
        return {}
    try:
        return dict(float_values(ctx.store.list_metrics(ctx.run_id, producer)))  # type: ignore[arg-type]
    except NotFoundError:
        return {}


def _declared_metrics(value: Any, step: str) -> dict[str, float]:
    """``ModelConfig.model_metrics``: a JSON object (or its text) of float metrics."""
    if value is None or value == "":
        return {}
    data = value
    if isinstance(value, str):
        try:
            data = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ModelError(f"model_metrics of step {step!r} is not JSON: {exc}",
                             hint='give a JSON object of numbers, e.g. \'{"accuracy": 0.97}\'', step=step) from exc
    if not isinstance(data, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                             for v in data.values()):
        raise ModelError(f"model_metrics of step {step!r} must be an object of numbers, not {value!r}",
                         hint='e.g. \'{"accuracy": 0.97}\'', step=step)
    return {str(k): float(v) for k, v in data.items()}


def _dataset_of(ctx: RunContext, producer: str | None) -> dict[str, Any] | None:
    """The dataset version the producing job consumed, from its recorded inputs (None if unknown)."""
    if producer is None:
        return None
    try:
        inputs = ctx.store.get_step(ctx.run_id, producer).inputs
    except NotFoundError:
        return None
    found = _find_dataset(inputs)
    return found


def _find_dataset(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        name = value.get("dataset") if isinstance(value.get("dataset"), str) else value.get("dataset_name")
        version = next((value[k] for k in ("version", "version_name", "dataset_version") if value.get(k) is not None),
                       None)
        if isinstance(name, str) and version is not None:
            out: dict[str, Any] = {"name": name, "version": str(version)}
            for key in ("version_id", "digest", "manifest_hash", "uri"):
                if value.get(key) is not None:
                    out[key] = value[key]
            return out
        for item in value.values():
            found = _find_dataset(item)
            if found is not None:
                return found
    elif isinstance(value, list):
        for item in value:
            found = _find_dataset(item)
            if found is not None:
                return found
    return None
