"""ServiceStep: deploy a registered model version as a managed local service, or switch an
existing service to it with no dropped requests.

Inputs (reference 6.5): one ``ServiceInputPlaceholder`` (the deployment: a list of per-model
configs ``model_name``, ``model_version``, ``weight``, ``specification``, ``instance_count``,
``envs``; one entry with weight 100 is what a local service serves), plus optionally a
``ServiceData`` or ``ServiceUpdatePlaceholder`` naming the service to update. Without one, the
service is ``ServiceConfig.service_name`` (created on the first run, switched on later ones),
or ``<workflow>-<step>`` when no name is given (stable across runs: each run switches it).

The placeholder is delayed (``delay=True``): when nobody gave it a value, :meth:`input_default`
derives it from the run itself: the version that a ModelStep of this run registered under the
placeholder's ``model_name``, else the placeholder's ``model_version``. Only when neither exists
does the step wait for a person (``mloop input``).

Deploying takes seconds (a worker process loads the model), so :meth:`start` runs it in a
thread (:func:`~mloop.engine.handlers.run_in_thread`) and the engine hears the end like a job's.
A stop cancels the deploy: the supervisor kills the new worker and the version it served
before keeps serving. The
output is the service (``service_id``, ``service_name``, model, port) with the variables
``access_address`` and ``cluster_inner_access_address`` (the service URL; it takes ``POST /``,
ModelArts' path, and ``POST /predict``). ``ServiceConfig.schedule`` (hours, -1 = keep running)
stops the service when it runs out.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from mloop.engine.context import RunContext
from mloop.errors import ManagedServiceError, MloopError, NotFoundError
from mloop.spec.models import DataRequirementSpec, InputSpec, StepSpec
from mloop.spec import refs
from mloop.engine.handlers import Launched, Outcome, StepCancelled, StepHandler, ThreadHandle, run_in_thread

__all__ = ["ServiceHandler", "auto_service_name", "service_output_value"]


def auto_service_name(workflow: str, step: str) -> str:
    """The service of a ServiceStep that names none: ``<workflow>-<step>`` when that is a valid
    service name, else ``service-<8 hex>`` derived from both. Stable across runs, so every
    run of the workflow switches the same service to its new version instead of starting
    another process beside the last one's (as a ModelStep with no name adds versions to one
    model)."""
    from mloop.errors import ManagedServiceError
    from mloop.store.services import check_service_name

    readable = f"{workflow}-{step}"
    try:
        return check_service_name(readable)
    except ManagedServiceError:
        return "service-" + uuid.uuid5(uuid.NAMESPACE_URL, f"mloop:{workflow}/{step}").hex[:8]


def service_output_value(record: Any) -> dict[str, Any]:
    """What a ServiceStep's output holds (``ServiceData``-like), with its output variables."""
    url = record.url or ""
    return {"type": "service", "service_id": record.id, "service_name": record.name,
            "model_name": record.model_name, "model_version": record.model_version, "port": record.port,
            "variables": {"access_address": url, "cluster_inner_access_address": url}}


class ServiceHandler(StepHandler):
    # -- delayed placeholders -------------------------------------------------------------------
    def input_default(self, step: StepSpec, ctx: RunContext, name: str) -> Any:
        requirement = next((d for d in ctx.spec.data_requirements if d.name == name), None)
        if requirement is None or requirement.type != "model_list":
            return None
        constraints = _constraints(requirement, ctx)
        model_name = constraints.get("model_name")
        if not isinstance(model_name, str) or not model_name:
            return None
        version = _registered_in_run(ctx, model_name) or constraints.get("model_version")
        if version is None:
            return None
        return [{"model_name": model_name, "model_version": str(version), "weight": 100, "specification": "local",
                 "instance_count": 1, "envs": dict(constraints.get("envs") or {})}]

    # -- run -------------------------------------------------------------------------------------
    def start(self, step: StepSpec, ctx: RunContext, attempt: int, on_exit: Any) -> Outcome | Launched:
        from mloop.context import Context
        from mloop.services.serving import DEFAULT_DEPLOY_TIMEOUT, deploy

        deployment_input = next((i for i in step.inputs if i.type == "model_list"), None)
        if deployment_input is None:
            raise ManagedServiceError(f"step {step.name!r} has no ServiceInputPlaceholder input",
                                      hint="give it wf.steps.ServiceInput(name, data=wf.data.ServiceInputPlaceholder("
                                           "name, model_name=...))", step=step.name)
        output = step.outputs[0] if step.outputs else None
        config = ctx.resolve(output.config) if output is not None else {}
        infer_type = config.get("infer_type") or "real-time"
        if infer_type != "real-time":
            raise ManagedServiceError(f"step {step.name!r}: infer_type {infer_type!r} is not supported by local "
                                      "services", hint="use infer_type='real-time' (an HTTP service)", step=step.name)
        model = _deployment_config(step, deployment_input, ctx)
        name = self._service_name(step, ctx, config)
        envs = {**_str_dict(config.get("envs")), **_str_dict(model.get("envs"))}
        schedule = _hours(config.get("schedule"), step.name)
        # Worker limits ride in ServiceConfig.additional_properties: {"inference_timeout": s, "max_memory_mb": mb}.
        extra = config.get("additional_properties") if isinstance(config.get("additional_properties"), dict) else {}
        limits = {key: float(extra[key]) for key in ("inference_timeout", "max_memory_mb")
                  if isinstance(extra.get(key), (int, float)) and not isinstance(extra.get(key), bool)}
        ref = f"{model['model_name']}:{model['model_version']}"

        log_path = os.path.join(ctx.run_dir, "steps", step.name, "deploy.log")
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        _log(log_path, f"mloop: attempt {attempt}: deploying {ref} to service {name!r}")
        backend: Context = ctx  # a run context is a context: the run service owns and closes it
        state: dict[str, Any] = {"service": name, "model": ref, "log_path": log_path, "ctx": backend}

        def work(handle: ThreadHandle) -> Outcome:
            before = backend.store.services.find(name)
            previous = before.model_ref if before is not None and before.status == "running" else None
            try:
                record = deploy(backend, name, ref, envs=envs or None, schedule_hours=schedule, **limits,
                                timeout=DEFAULT_DEPLOY_TIMEOUT, run_id=ctx.run_id, step_name=step.name,
                                on_deployment=lambda deployment_id: _deploying(backend, state, deployment_id, handle))
            except MloopError as exc:
                if handle.cancelled.is_set():
                    _log(log_path, f"mloop: deploy stopped on request; {previous or 'nothing'} keeps serving")
                    raise StepCancelled(f"deploying {ref} was stopped") from exc
                _log(log_path, f"mloop: deploy failed: {exc}" + (f" ({exc.hint})" if exc.hint else ""))
                raise
            except Exception as exc:
                _log(log_path, f"mloop: deploy failed: {type(exc).__name__}: {exc}")
                raise
            _log(log_path, f"mloop: {ref} is live at {record.url}")
            output = step.outputs[0].name if step.outputs else "service_output"
            how = f"switched from {previous}" if previous and previous != record.model_ref else "deployed"
            return Outcome("succeeded", f"{record.model_ref} {how}: service {record.name!r} at {record.url}",
                           outputs={output: service_output_value(record)})

        return run_in_thread(step, work, on_exit, state=state, fields={
            "log_path": log_path, "inputs": {"values": {deployment_input.name: [model]}, "service": name}})

    def cancel(self, launched: Launched, grace_seconds: float) -> None:
        """Stop the deploy: the new worker is killed and the version served before keeps serving.

        The supervisor can cancel a deploy only once it has it, so this asks until the deploy
        thread has ended (stopped, or done before the request arrived)."""
        from mloop.services.serving import cancel_deploy

        super().cancel(launched, grace_seconds)  # a deploy not yet sent is not sent
        state, handle = launched.state, launched.handle
        deadline = time.monotonic() + grace_seconds + DEPLOY_CANCEL_WAIT_S
        while handle.exit is None and time.monotonic() < deadline:
            deployment_id = state.get("deployment_id")
            if deployment_id is not None and cancel_deploy(state["ctx"], state["service"], deployment_id):
                return
            time.sleep(0.1)

    @staticmethod
    def _service_name(step: StepSpec, ctx: RunContext, config: dict[str, Any]) -> str:
        """The service to update (second input), else ``service_name``, else an automatic one."""
        target = next((i for i in step.inputs if i.type == "service"), None)
        if target is not None:
            value = ctx.resolve(target.data)
            if isinstance(value, dict):
                value = value.get("service_name") or value.get("service_id") or value.get("name")
            if not isinstance(value, str) or not value:
                raise ManagedServiceError(f"input {target.name!r} of step {step.name!r} names no service ({value!r})",
                                          hint="give the service's name or id", step=step.name)
            services = ctx.store.services
            found = services.find(value)
            if found is None:
                raise NotFoundError(f"input {target.name!r} of step {step.name!r}: no service {value!r} to update",
                                    hint="see `mloop service list`; leave the input out to create a service",
                                    step=step.name)
            return str(found.name)
        given = config.get("service_name")
        if isinstance(given, str) and given.strip():
            return given.strip()
        return auto_service_name(ctx.spec.name, step.name)


#: How long a stop keeps asking a supervisor to cancel a deploy it has not received yet.
DEPLOY_CANCEL_WAIT_S = 10.0


def _deploying(ctx: Context, state: dict[str, Any], deployment_id: str, handle: ThreadHandle) -> None:
    """``deploy``'s hook once the deployment is recorded: remember its id, and when the step
    was stopped meanwhile, end the deployment there (no worker starts)."""
    state["deployment_id"] = deployment_id
    if handle.cancelled.is_set():
        ctx.store.services.finish_deployment(deployment_id, "failed", "stopped on request")
        handle.check()


def _log(path: str, line: str) -> None:
    with open(path, "a") as fh:
        fh.write(line + "\n")


def _constraints(requirement: DataRequirementSpec, ctx: RunContext) -> dict[str, Any]:
    out = {}
    for cond in requirement.conditions:
        value = cond.get("value")
        out[str(cond.get("attribute"))] = ctx.resolve(value) if refs.is_ref(value) else value
    return out


def _registered_in_run(ctx: RunContext, model_name: str) -> str | None:
    """The latest version of ``model_name`` a ModelStep of this run registered."""
    versions = [v for v in ctx.store.registry.find_versions(run_id=ctx.run_id) if v.name == model_name]
    return str(versions[-1].version) if versions else None


def _deployment_config(step: StepSpec, spec_input: InputSpec, ctx: RunContext) -> dict[str, Any]:
    """The one model config to deploy, checked against the placeholder's constraints."""
    value = ctx.resolve(spec_input.data)
    where = f"input {spec_input.name!r} of step {step.name!r}"
    hint = ('give [{"model_name": "NAME", "model_version": "VERSION"}] (or "NAME:VERSION"); a ModelStep of the '
            "same run fills it in by itself")
    if isinstance(value, str):
        name, _, version = value.partition(":")
        value = [{"model_name": name, "model_version": version or None}]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
        raise ManagedServiceError(f"{where}: {value!r} is not a deployment config", hint=hint, step=step.name)
    if len(value) > 1:
        weights = ", ".join(f"{v.get('model_name')}:{v.get('model_version')}={v.get('weight', 100)}" for v in value)
        raise ManagedServiceError(f"{where}: {len(value)} weighted model versions ({weights}); a local service "
                                  "serves one version at a time",
                                  hint="give one entry (weight 100); redeploying switches versions with no "
                                       "dropped requests", step=step.name)
    model = dict(value[0])
    weight = model.get("weight", 100)
    if weight not in (None, 100, "100"):
        raise ManagedServiceError(f"{where}: weight {weight!r}; one entry must have weight 100", hint=hint,
                                  step=step.name)
    if not model.get("model_name") or not model.get("model_version"):
        raise ManagedServiceError(f"{where}: {model!r} needs model_name and model_version", hint=hint,
                                  step=step.name)
    requirement = _requirement_of(spec_input, ctx)
    if requirement is not None:
        wanted = _constraints(requirement, ctx).get("model_name")
        if isinstance(wanted, str) and wanted and wanted != model["model_name"]:
            raise ManagedServiceError(f"{where}: model {model['model_name']!r} given, but the placeholder only "
                                      f"takes model {wanted!r}", hint=f"deploy a version of {wanted!r}",
                                      step=step.name)
    model["model_version"] = str(model["model_version"])
    return model


def _requirement_of(spec_input: InputSpec, ctx: RunContext) -> DataRequirementSpec | None:
    if not refs.is_ref(spec_input.data):
        return None
    ref = refs.parse_ref(spec_input.data)
    if isinstance(ref, refs.DataRequirementRef):
        return next((d for d in ctx.spec.data_requirements if d.name == ref.name), None)
    return None


def _str_dict(value: Any) -> dict[str, str]:
    if not value:
        return {}
    if not isinstance(value, dict):
        raise ManagedServiceError(f"envs must be a mapping of names to values, not {value!r}",
                                  hint='e.g. envs={"LOG_LEVEL": "debug"}')
    return {str(k): str(v) for k, v in value.items()}


def _hours(value: Any, step: str) -> float | None:
    """``ServiceConfig.schedule``: hours until the service stops; None or -1: keep running."""
    if value is None or value == "":
        return None
    try:
        hours = float(value)
    except (TypeError, ValueError):
        raise ManagedServiceError(f"schedule of step {step!r} is {value!r}, not a number of hours",
                                  hint="give hours until the service stops, or -1 to keep it running",
                                  step=step) from None
    return None if hours < 0 else hours
