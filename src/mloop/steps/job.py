"""JobStep: run an algorithm as a process, under the job contract of DESIGN.md.

* inputs and outputs arrive as ``--name=<local path>``, parameters as ``--name=value``;
  the same in ``MLOOP_INPUT_<N>`` / ``MLOOP_OUTPUT_<N>`` / ``MLOOP_PARAM_<N>``;
* the job runs in its own folder on a snapshot of ``code_dir`` (hash recorded), with
  ``MA_JOB_DIR`` set as on ModelArts;
* remote inputs are staged in before it starts, remote outputs uploaded after it ends;
* stdout and stderr go to one log file, followed live by ``mloop logs -f``;
* metrics files are parsed and stored when it succeeds; a malformed one fails the step.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from typing import Any

from mloop.artifacts import is_local, local_path, snapshot_dir
from mloop.config import Settings
from mloop.engine.context import InputUnavailable, RunContext
from mloop.errors import ConfigError, MetricsError, MloopError, NotFoundError
from mloop.executors.base import JobExit, JobRequest, Resources
from mloop.metrics import load_metrics_file
from mloop.spec.models import StepSpec
from mloop.spec.validate import VERSION_RE
from mloop.store.base import MetricRecord, Store
from mloop.engine.handlers import Launched, Outcome, StepHandler



class JobSetupError(MloopError):
    code = "job_setup"


@dataclass
class ResolvedAlgorithm:
    code_dir: str
    boot_file: str | None
    command: str | None
    parameters: dict[str, Any]
    environments: dict[str, str] = field(default_factory=dict)
    engine: dict[str, Any] = field(default_factory=dict)
    source: str = "inline"  # inline | registry:<id>@<version>


def resolve_algorithm(algo: dict[str, Any], store: Store, base_dir: str) -> ResolvedAlgorithm:
    """A job's algorithm with registry entries looked up and parameters filled.

    ``algo`` is the spec's algorithm dict with references already resolved.

    Raises:
        NotFoundError: unknown algorithm id / subscription.
        JobSetupError: a required parameter without value, a non-editable parameter changed.
    """
    given = {p["name"]: p.get("value") for p in algo.get("parameters") or []}
    if algo.get("code_dir"):
        code_dir = algo["code_dir"]
        return ResolvedAlgorithm(_local_dir(code_dir, base_dir), algo.get("boot_file"), algo.get("command"), given,
                                 dict(algo.get("environments") or {}), dict(algo.get("engine") or {}))
    if algo.get("id"):
        record = store.find_algorithm(algorithm_id=algo["id"])
    else:
        version = str(algo.get("item_version_id"))
        record = store.find_algorithm(subscription_id=algo.get("subscription_id"),
                                      version=version if VERSION_RE.match(version) else None)
    params: dict[str, Any] = {}
    for declared in record.parameters:
        name = declared["name"]
        if name in given:
            if declared.get("editable", True) is False and given[name] != declared.get("default"):
                raise JobSetupError(f"algorithm {record.name!r} does not allow changing parameter {name!r}",
                                    hint="remove it from the step's parameters")
            params[name] = given.pop(name)
        elif declared.get("default") is not None:
            params[name] = declared["default"]  # "unset hyper-parameters are filled automatically"
        elif declared.get("required"):
            raise JobSetupError(f"algorithm {record.name!r} needs parameter {name!r}",
                                hint=f"add wf.AlgorithmParameters(name={name!r}, value=...)")
    params.update(given)
    return ResolvedAlgorithm(_local_dir(record.code_dir, base_dir), record.boot_file, record.command, params,
                             dict(record.environments), dict(record.engine),
                             source=f"registry:{record.id}@{record.version}")


def _local_dir(path: str, base_dir: str) -> str:
    full = path if os.path.isabs(path) else os.path.join(base_dir, path)
    full = os.path.normpath(os.path.expanduser(full))
    if not os.path.isdir(full):
        raise JobSetupError(f"code_dir {path!r} is not a folder (looked at {full})",
                            hint="code_dir is relative to the workflow file's folder")
    return full


def resolve_resources(resource: dict[str, Any], settings: Settings) -> Resources:
    """The flavor of a job (``flavor`` {"flavor_id": ...} or ``flavor_id``) from the flavor table."""
    flavor = resource.get("flavor")
    flavor_id = resource.get("flavor_id")
    if isinstance(flavor, dict):
        flavor_id = flavor.get("flavor_id")
    elif isinstance(flavor, str):
        flavor_id = flavor
    if not flavor_id:
        raise ConfigError(f"no flavor_id in the job's resource ({resource!r})",
                          hint="e.g. JobResource(flavor={'flavor_id': 'cpu.small'})")
    found = settings.flavor(str(flavor_id))
    nodes = int(resource.get("node_count") or 1)
    if nodes > 1 and settings.executor == "local":
        raise ConfigError(f"node_count={nodes} needs a cluster; the local executor runs one node",
                          hint="use node_count=1, or MLOOP_EXECUTOR=ray")
    return Resources(cpu=found.cpu, gpu=found.gpu, memory_gb=found.memory_gb, node_count=nodes,
                     flavor_id=str(flavor_id))


def _as_arg(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "" if value is None else str(value)


def _env_key(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


class JobHandler(StepHandler):
    def preflight(self, step: StepSpec, ctx: RunContext) -> None:
        preflight(step, ctx)

    def start(self, step: StepSpec, ctx: RunContext, attempt: int, on_exit: Any) -> Outcome | Launched:
        props = ctx.resolve(step.properties)
        algo = resolve_algorithm(props.get("algorithm") or {}, ctx.store, ctx.base_dir())
        resources = resolve_resources(((props.get("spec") or {}).get("resource")) or {}, ctx.settings)
        workdir = os.path.join(ctx.run_dir, "steps", step.name, f"attempt-{attempt}")
        if os.path.exists(workdir):
            shutil.rmtree(workdir)
        code_copy = os.path.join(workdir, os.path.basename(algo.code_dir.rstrip(os.sep)) or "code")
        code_hash = snapshot_dir(algo.code_dir, code_copy)
        log_path = os.path.join(ctx.run_dir, "steps", step.name, "job.log")

        args: list[str] = []
        env = dict(os.environ)
        env.update({"MLOOP_RUN_ID": ctx.run_id, "MLOOP_STEP_NAME": step.name, "MLOOP_WORKFLOW_NAME": ctx.spec.name,
                    "MLOOP_ATTEMPT": str(attempt), "MA_JOB_DIR": workdir, "PYTHONUNBUFFERED": "1",
                    "MLOOP_FLAVOR": resources.flavor_id})
        if resources.gpu == 0:
            env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU flavor gets no GPU, as on a cloud CPU node
        # The flavor's CPU count bounds the job's math threads, so steps running side by side
        # don't oversubscribe the cores (unless the user set them).
        threads = str(max(1, min(int(resources.cpu), os.cpu_count() or 1)))
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env.setdefault(var, threads)
        env["MLOOP_CPUS"] = threads
        staged_in: dict[str, str] = {}
        datasets: dict[str, dict[str, Any]] = {}
        for inp in step.inputs:
            url = ctx.resolve(inp.data)
            if isinstance(url, dict):  # a dataset version: materialised in the job layout
                from mloop.steps.dataset import stage_dataset

                path, datasets[inp.name] = stage_dataset(ctx, step.name, inp.name, url,
                                                         os.path.join(workdir, "inputs", inp.name))
                args.append(f"--{inp.name}={path}")
                env[f"MLOOP_INPUT_{_env_key(inp.name)}"] = path
                continue
            path = local_path(url) if is_local(url) else None
            if path is None:
                path = os.path.join(workdir, "inputs", inp.name)
                ctx.artifacts.get_dir(url, path)
                staged_in[inp.name] = url
            args.append(f"--{inp.name}={path}")
            env[f"MLOOP_INPUT_{_env_key(inp.name)}"] = path
        uploads: dict[str, tuple[str, str]] = {}
        outputs: dict[str, Any] = {}
        metric_files: dict[str, list[str]] = {}
        for out in step.outputs:
            config = ctx.resolve(out.config)
            if out.type == "obs":
                url = config["obs_url"]
                path = local_path(url) if is_local(url) else None
                if path is None:
                    path = os.path.join(workdir, "outputs", out.name) + os.sep
                    uploads[out.name] = (path, url)
                os.makedirs(path, exist_ok=True)
                args.append(f"--{out.name}={path}")
                env[f"MLOOP_OUTPUT_{_env_key(out.name)}"] = path
                outputs[out.name] = {"type": "obs", "url": url}
                if config.get("metric_file"):
                    metric_files[out.name] = [os.path.join(path, config["metric_file"])]
            elif out.type == "metrics":
                files = [f for f in config.get("metric_files") or []]
                local = []
                for f in files:
                    if not is_local(f):
                        raise JobSetupError(f"metrics file {f} is not on the local disk; remote metrics files "
                                            "are not supported yet", hint="write metrics under a local storage")
                    local.append(local_path(f) or f)
                metric_files[out.name] = local
                outputs[out.name] = {"type": "metrics", "files": local, "url": local[0] if local else None}
                # Not an argument (ModelArts passes none, and strict argparse scripts would
                # choke on it), but a job may look its metrics file up here.
                env[f"MLOOP_METRICS_{_env_key(out.name)}"] = os.pathsep.join(local)
            else:
                raise JobSetupError(f"output {out.name!r} of type {out.type!r} is not supported yet by local jobs",
                                    hint="use obs_config or metrics_config outputs")
        for name, value in algo.parameters.items():
            text = _as_arg(value)
            args.append(f"--{name}={text}")
            env[f"MLOOP_PARAM_{_env_key(name)}"] = text
        env.update({k: _as_arg(v) for k, v in algo.environments.items()})
        # Jobs use the interpreter mloop runs in, so "python" in a command is the same one.
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        if algo.boot_file:
            boot = os.path.normpath(os.path.join(code_copy, algo.boot_file))
            if not boot.startswith(code_copy + os.sep) or not os.path.isfile(boot):
                raise JobSetupError(f"boot_file {algo.boot_file!r} is not a file inside code_dir {algo.code_dir}")
            argv = [sys.executable, boot, *args]
        else:
            argv = ["/bin/sh", "-c", f'{algo.command} "$@"', "mloop-job", *args]
        minutes = step.policy.max_execution_minutes if step.policy else 10080
        request = JobRequest(ctx.run_id, step.name, argv, code_copy, env, log_path, resources,
                             timeout_seconds=float(minutes) * 60)
        with open(log_path, "a") as log:
            log.write(f"mloop: attempt {attempt} of step {step.name} on flavor {resources.flavor_id} "
                      f"(code {code_hash[:12]} from {algo.code_dir})\n")
        handle = self.executor.launch(request, on_exit)
        inputs = {i.name: p.split("=", 1)[1] for i, p in zip(step.inputs, args)}
        return Launched(handle, state={"uploads": uploads, "outputs": outputs, "metric_files": metric_files},
                        fields={"workdir": workdir, "log_path": log_path, "code_hash": code_hash, "pid": handle.pid,
                                "inputs": {"values": inputs, "staged": staged_in, "algorithm": algo.source,
                                           "engine": algo.engine, "argv": argv, "datasets": datasets}})

    def finish(self, step: StepSpec, ctx: RunContext, launched: Launched, exit: JobExit) -> Outcome:
        if exit.exit_code != 0:
            if exit.timed_out:
                reason = f"{exit.reason} (max_execution_minutes)"
            elif exit.signal:
                reason = f"killed by signal {exit.signal}"
            elif exit.exit_code is None:
                reason = exit.reason or "the job could not run"
            else:
                reason = f"the job exited with code {exit.exit_code}"
            return Outcome("failed", reason, exit_code=exit.exit_code)
        for path, url in launched.state["uploads"].values():
            ctx.artifacts.put_dir(path, url)
        records: list[MetricRecord] = []
        for out_name, files in launched.state["metric_files"].items():
            for path in files:
                if not os.path.isfile(path):
                    return Outcome("failed", f"metrics file {path} (output {out_name!r}) was not written by the job",
                                   exit_code=0)
                try:
                    entries = load_metrics_file(path)
                except MetricsError as exc:
                    return Outcome("failed", str(exc), exit_code=0)
                records.extend(MetricRecord(run_id=ctx.run_id, step_name=step.name, key=e.key, title=e.title,
                                            type=e.type, value=e.value, data=e.data, source=path) for e in entries)
        if records:
            ctx.store.add_metrics(ctx.run_id, step.name, records)
        for name, produced in launched.state["outputs"].items():
            ctx.store.add_artifact(ctx.run_id, step.name, name, produced["type"], str(produced.get("url")))
        return Outcome("succeeded", None, outputs=launched.state["outputs"], exit_code=0)


def preflight(step: StepSpec, ctx: RunContext) -> None:
    """Check what can be checked before a run starts: algorithm, code, flavor.

    Raises the same errors ``start`` would, so a bad flavor or an unknown algorithm is
    refused before anything runs.
    """
    try:
        props = ctx.resolve(step.properties)
    except (NotFoundError, InputUnavailable):
        return  # depends on outputs of earlier steps: checked when the step starts
    algo = resolve_algorithm(props.get("algorithm") or {}, ctx.store, ctx.base_dir())
    if algo.boot_file and not os.path.isfile(os.path.join(algo.code_dir, algo.boot_file)):
        raise JobSetupError(f"step {step.name!r}: boot_file {algo.boot_file!r} is not in {algo.code_dir}",
                            step=step.name)
    resolve_resources(((props.get("spec") or {}).get("resource")) or {}, ctx.settings)
