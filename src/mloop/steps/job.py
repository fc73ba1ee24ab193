"""JobStep: run an algorithm as a process, under the job contract of DESIGN.md.

* inputs and outputs arrive as ``--name=<local path>``, parameters as ``--name=value``;
  the same in ``MLOOP_INPUT_<N>`` / ``MLOOP_OUTPUT_<N>`` / ``MLOOP_PARAM_<N>``;
* the job runs in its own folder on a snapshot of ``code_dir`` (hash recorded), with
  ``MA_JOB_DIR`` set as on ModelArts;
* remote inputs are staged in before it starts, remote outputs uploaded after it ends;
* stdout and stderr go to one log file, followed live by ``mloop logs -f``;
* metrics files are parsed when it succeeds (a malformed one fails the step) and handed to
  the engine with the outcome, which commits them with the step's terminal transition.

The handler only decides *what* runs: it snapshots the code into the artifact store
(``code/<hash>``, content-addressed, written once), turns inputs and outputs into URLs
(a dataset version into a plain file list) and hands a :class:`JobRequest` to the executor.
The job runner (:mod:`mloop.runner`) does the staging and the running, where the job runs.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

from mloop import runner
from mloop.artifacts import ArtifactStore, hash_dir, is_local, join_url, local_path, snapshot_dir
from mloop.artifacts.s3 import job_environment as s3_environment
from mloop.config import Settings
from mloop.engine.context import InputUnavailable, RunContext
from mloop.errors import ArtifactError, ConfigError, DatasetError, MetricsError, MloopError, NotFoundError
from mloop.executors.base import (JobExit, JobInput, JobOutput, JobRequest, MetricsFile, Resources,
                                  StagedFile)
from mloop.metrics import load_metrics_file, parse_metrics
from mloop.spec.models import StepSpec
from mloop.spec.validate import VERSION_RE
from mloop.store.base import MetricRecord, NewArtifact, Store
from mloop.tracking.jobs import METRIC_SOURCE, close_job_tracking, open_job_tracking
from mloop.engine.handlers import Launched, Outcome, StepHandler
from mloop.steps import caching
from mloop.runner import envs


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
                                      version=version if VERSION_RE.fullmatch(version) else None)
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
    if not is_local(path):
        raise JobSetupError(f"code_dir {path!r} is not on this machine",
                            hint="a code folder must be local: put it in a folder (or set obs_root to one, "
                                 "for obs:// code folders)")
    path = local_path(path) or path
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
                     flavor_id=str(flavor_id), custom=dict(found.resources))


def _as_arg(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "" if value is None else str(value)


def _run_snapshot(ctx: RunContext, code_dir: str) -> tuple[str, str]:
    """The snapshot of ``code_dir`` this run uses: taken when the run's first step that needs
    it starts, so every step of a run runs the same code (and the folder is hashed once)."""
    key = ("code", code_dir)
    if key not in ctx.memo:
        ctx.memo[key] = snapshot_code(ctx.artifacts, code_dir)
    found: tuple[str, str] = ctx.memo[key]
    return found


def _boot_code(ctx: RunContext, code_url: str, digest: str, boot_file: str) -> str | None:
    """The boot file of snapshot ``digest`` compiled once for this interpreter, next to the
    snapshot (``<root>/code/<digest>.compiled/<cache tag>/<boot file>.code``), for the runner to
    load instead of compiling it in every job; None when the store is not local or it can't
    be compiled (the runner then compiles it and reports a syntax error as Python would)."""
    key = ("boot", digest, boot_file)
    if key in ctx.memo:
        cached: str | None = ctx.memo[key]
        return cached
    snapshot, root = local_path(code_url), local_path(ctx.artifacts.root)
    found = None
    if snapshot is not None and root is not None and sys.implementation.cache_tag:
        target = os.path.join(root, "code", f"{digest}.compiled", sys.implementation.cache_tag, f"{boot_file}.code")
        try:
            if not os.path.isfile(target):
                runner.write_boot_code(os.path.join(snapshot, boot_file), target)
            found = target
        except (OSError, SyntaxError, ValueError):
            found = None
    ctx.memo[key] = found
    return found


def snapshot_code(artifacts: ArtifactStore, code_dir: str) -> tuple[str, str]:
    """``(url, digest)`` of ``code_dir``'s snapshot in the artifact store, ``<root>/code/<digest>``.

    Content-addressed and written once: a folder already stored costs one hash and one
    existence check. A new one is copied (hashed while copied) under a temporary name and
    renamed into place, so a snapshot is complete or absent (on an object store, where
    nothing renames a folder, its files go first and a completion mark last:
    :meth:`~mloop.artifacts.ArtifactStore.publish_dir`).

    Raises:
        ArtifactError: the code could not be read or stored.
    """
    digest = hash_dir(code_dir)
    url = artifacts.url("code", digest)
    if artifacts.is_published(url):
        return url, digest
    root = local_path(artifacts.root)
    if root is not None:
        tmp = os.path.join(root, "code", f".{digest[:12]}.{uuid.uuid4().hex[:12]}.tmp")
        digest = snapshot_dir(code_dir, tmp)  # what was copied counts, even if the code just changed
        url = artifacts.url("code", digest)
        target = local_path(url) or url
        try:
            os.rename(tmp, target)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not os.path.isdir(target):
                raise
        return url, digest
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mloop-code-") as scratch:
        copy = os.path.join(scratch, "code")
        digest = snapshot_dir(code_dir, copy)
        url = artifacts.url("code", digest)
        if not artifacts.is_published(url):
            # Files first, completion mark last: an object store has no atomic folder rename.
            artifacts.publish_dir(copy, url)
    return url, digest


def dataset_files(ctx: RunContext, step: str, inp: str, value: Any) -> tuple[list[StagedFile], dict[str, Any]]:
    """A dataset input as the plain file list the runner lays out (no database needed there),
    and the exact version it is: ``{"dataset_name", "version_name", "version_id", "manifest_hash"}``.

    The layout is :func:`mloop.services.datasets.job_layout`, the one
    :func:`~mloop.services.datasets.materialize` writes: class-folder formats as
    ``<split>/<label>/<file>`` and ``unlabeled/<file>``, others at their paths, plus mloop's
    ``manifest.json``.
    """
    from mloop.services import datasets as ds
    from mloop.steps.dataset import _backend, _dataset_ref

    name, version = _dataset_ref(value, step, inp)
    backend = _backend(ctx)
    layout = ds.job_layout(backend, name, version)
    record, placements = layout.record, layout.placements
    ds.ensure_intact(backend, record, [f for _, f in placements])  # a damaged object is never staged
    objects = ds._objects(backend)
    index = objects.pack_index()
    out: list[StagedFile] = []
    for where, entry in placements:
        loc = index.get(entry.hash)
        if loc is None:
            out.append(StagedFile(where, objects.object_url(entry.hash), entry.size))
        else:
            out.append(StagedFile(where, objects.pack_url(loc[0]), loc[2], offset=loc[1]))
    doc = layout.manifest_doc
    text = json.dumps(doc, ensure_ascii=False, indent=1)
    out.append(StagedFile("manifest.json", None, len(text.encode()), text=text))
    return out, {"dataset_name": name, "version_name": record.version, "version_id": record.id,
                 "manifest_hash": record.manifest_hash}


def _algorithm(step: StepSpec, ctx: RunContext, props: dict[str, Any]) -> ResolvedAlgorithm:
    """The step's algorithm, its ``code_dir`` read as every OBS field is (``obs://``, ``/bucket/``)."""
    algorithm = dict(props.get("algorithm") or {})
    raw = (step.properties.get("algorithm") or {}).get("code_dir")
    if algorithm.get("code_dir") and isinstance(raw, str):
        algorithm["code_dir"] = ctx.field_location(raw)
    return resolve_algorithm(algorithm, ctx.store, ctx.base_dir())


class JobHandler(StepHandler):
    def start(self, step: StepSpec, ctx: RunContext, attempt: int, on_exit: Any) -> Outcome | Launched:
        props = ctx.resolve(step.properties)
        algo = _algorithm(step, ctx, props)
        resources = resolve_resources(((props.get("spec") or {}).get("resource")) or {}, ctx.settings)
        workdir = os.path.join(ctx.run_dir, "steps", step.name, f"attempt-{attempt}")
        code_name = os.path.basename(algo.code_dir.rstrip(os.sep)) or "code"
        if algo.boot_file:
            boot = os.path.normpath(os.path.join(algo.code_dir, algo.boot_file))
            if not boot.startswith(algo.code_dir.rstrip(os.sep) + os.sep) or not os.path.isfile(boot):
                raise JobSetupError(f"boot_file {algo.boot_file!r} is not a file inside code_dir {algo.code_dir}")
        environment = job_environment(algo, ctx.settings)
        code_url, code_hash = _run_snapshot(ctx, algo.code_dir)
        boot_code_url = _boot_code(ctx, code_url, code_hash, algo.boot_file) if algo.boot_file else None
        log_path = os.path.join(ctx.run_dir, "steps", step.name, "job.log")

        inputs: list[JobInput] = []
        staged_in: dict[str, str] = {}
        datasets: dict[str, dict[str, Any]] = {}
        resolved: dict[str, Any] = {}  # for the cache check
        for inp in step.inputs:
            url = resolved[inp.name] = ctx.field_location(inp.data)
            if isinstance(url, dict):  # a dataset version: laid out in the job layout by the runner
                files, datasets[inp.name] = dataset_files(ctx, step.name, inp.name, url)
                inputs.append(JobInput(inp.name, "", "files", files))
            elif is_local(url):
                inputs.append(JobInput(inp.name, local_path(url) or url, "local"))
            else:
                inputs.append(JobInput(inp.name, url, "download"))
                staged_in[inp.name] = url
        outputs: list[JobOutput] = []
        produced: dict[str, Any] = {}
        metrics: list[MetricsFile] = []
        metric_files: dict[str, list[str]] = {}
        metrics_outputs: list[str] = []
        for out in step.outputs:
            config = ctx.resolve(out.config)
            if out.type == "obs":
                url = ctx.field_location((out.config or {}).get("obs_url"))
                local = local_path(url) if is_local(url) else None
                outputs.append(JobOutput(out.name, local or url, "local" if local is not None else "upload"))
                produced[out.name] = {"type": "obs", "url": url}
                if config.get("metric_file"):
                    where = (os.path.join(local, config["metric_file"]) if local is not None
                             else join_url(url, config["metric_file"]))
                    metric_files[out.name] = [where]
            elif out.type == "metrics":
                raw_files = (out.config or {}).get("metric_files") or []
                located = ([ctx.field_location(f) for f in raw_files] if isinstance(raw_files, list)
                           else config.get("metric_files") or [])
                files = [local_path(f) or f if is_local(f) else f for f in located]
                metrics.extend(MetricsFile(out.name, f, "local" if is_local(f) else "upload") for f in files)
                metric_files[out.name] = files
                metrics_outputs.append(out.name)
                produced[out.name] = {"type": "metrics", "files": files, "url": files[0] if files else None}
            else:
                raise JobSetupError(f"output {out.name!r} of type {out.type!r} is not supported yet by local jobs",
                                    hint="use obs_config or metrics_config outputs")
        cache = _cache_check(step, ctx, algo, resources, code_url, code_hash, resolved, datasets)
        if cache.origin is not None:
            return caching.hit_outcome(ctx, step, cache, code_hash)
        minutes = step.policy.max_execution_minutes if step.policy else 10080
        # MLflow-compatible tracking and live metrics (MLFLOW_TRACKING_URI, MLOOP_METRICS_URL, ...)
        tracking = open_job_tracking(ctx.store, ctx.artifacts, run_id=ctx.run_id, step_name=step.name,
                                     attempt=attempt, workflow=ctx.spec.name)
        request = JobRequest(
            ctx.run_id, step.name, code_url, code_name, log_path, boot_file=algo.boot_file, command=algo.command,
            parameters=[(name, _as_arg(value)) for name, value in algo.parameters.items()],
            inputs=inputs, outputs=outputs, metrics=metrics, metrics_outputs=metrics_outputs,
            env={**(tracking.env if tracking else {}), "MLOOP_OBS_ROOT": _obs_root(ctx),
                 **s3_environment(ctx.settings),  # S3 endpoint, region, retries: never credentials
                 **{k: _as_arg(v) for k, v in algo.environments.items()}},
            resources=resources,
            timeout_seconds=float(minutes) * 60, workdir=workdir, workflow_name=ctx.spec.name, attempt=attempt,
            boot_code_url=boot_code_url,
            keep_patterns=list(ctx.settings.keep_workdir_patterns),
            keep_url=ctx.artifacts.url("runs", ctx.run_id, "steps", step.name, f"attempt-{attempt}", "workdir")
            if ctx.settings.keep_workdir_patterns else None,
            environment=environment,
            log_header=(f"mloop: attempt {attempt} of step {step.name} on flavor {resources.flavor_id} "
                        f"(code {code_hash[:12]} from {algo.code_dir})"))
        wire = request.to_dict()
        argv, _ = runner.contract(wire)
        try:
            handle = self.executor.launch(request, on_exit)
        except BaseException:
            close_job_tracking(ctx.store, tracking.to_state() if tracking else None, run_id=ctx.run_id,
                               step_name=step.name, attempt=attempt, succeeded=False)
            raise
        values = {i["name"]: runner.input_path(wire, i) for i in wire["inputs"]}
        return Launched(handle, state={"outputs": produced, "metric_files": metric_files, "log_path": log_path,
                                       "step_metrics": runner.step_metrics_path(wire), "keep_url": wire["keep_url"],
                                       "tracking": tracking.to_state() if tracking else None, "attempt": attempt,
                                       "cache": cache},
                        fields={**cache.launch_fields(),
                                "workdir": workdir, "log_path": log_path, "code_hash": code_hash, "pid": handle.pid,
                                "executor_ref": handle.ref, "environment": envs.record(environment),
                                "inputs": {"values": values, "staged": staged_in, "algorithm": algo.source,
                                           "engine": algo.engine, "argv": argv, "datasets": datasets}})

    def finish(self, step: StepSpec, ctx: RunContext, launched: Launched, exit: JobExit) -> Outcome:
        """The job's outcome, with its metrics and artifacts for the engine to commit (this
        writes nothing to the store but the end of the job's tracking runs)."""
        tracked = close_job_tracking(ctx.store, launched.state.get("tracking"), run_id=ctx.run_id,
                                     step_name=step.name, attempt=launched.state.get("attempt", 1),
                                     succeeded=exit.exit_code == 0)
        keep_log(ctx.artifacts, ctx.run_id, step.name, launched.state.get("log_path"))
        if exit.exit_code != 0:
            if exit.timed_out:
                reason = f"{exit.reason} (max_execution_minutes)"
            elif exit.signal:
                reason = f"killed by signal {exit.signal}"
            elif exit.exit_code is None:
                reason = exit.reason or "the job could not run"
            elif exit.exit_code in (runner.EXIT_STAGE_IN, runner.EXIT_STAGE_OUT):
                reason = _runner_failure(launched.state.get("log_path")) or f"the job exited with code {exit.exit_code}"
            else:
                reason = f"the job exited with code {exit.exit_code}"
            return Outcome("failed", reason, exit_code=exit.exit_code)
        records: list[MetricRecord] = []
        for out_name, files in launched.state["metric_files"].items():
            for where in files:
                try:
                    entries = _read_metrics(ctx, where)
                except FileNotFoundError:
                    return Outcome("failed", f"metrics file {where} (output {out_name!r}) was not written by the job",
                                   exit_code=0)
                except MetricsError as exc:
                    return Outcome("failed", str(exc), exit_code=0)
                records.extend(MetricRecord(run_id=ctx.run_id, step_name=step.name, key=e.key, title=e.title,
                                            type=e.type, value=e.value, data=e.data, source=where) for e in entries)
        from_files = {r.key for r in records}
        # Metrics reported without a declared output (mloop.metrics.analyse: MLOOP_STEP_METRICS)
        step_metrics = launched.state.get("step_metrics")
        if step_metrics and os.path.isfile(step_metrics):
            try:
                entries = load_metrics_file(step_metrics)
            except MetricsError as exc:
                return Outcome("failed", str(exc), exit_code=0)
            records.extend(MetricRecord(run_id=ctx.run_id, step_name=step.name, key=e.key, title=e.title,
                                        type=e.type, value=e.value, data=e.data, source=step_metrics)
                           for e in entries if e.key not in from_files)
            from_files |= {e.key for e in entries}
        records.extend(MetricRecord(run_id=ctx.run_id, step_name=step.name, key=key, title=key, type="float",
                                    value=value, data={"value": value}, source=METRIC_SOURCE)
                       for key, value in tracked.items() if key not in from_files)
        outputs = dict(launched.state["outputs"])
        kept = _kept_workdir(ctx, launched.state.get("keep_url"))
        if kept is not None:
            name = next(n for n in ("workdir", "workdir_files", "_workdir") if n not in outputs)
            outputs[name] = kept
        artifacts = [NewArtifact(name, produced["type"], str(produced.get("url")))
                     for name, produced in outputs.items()]
        return Outcome("succeeded", None, outputs=outputs, exit_code=0, metrics=records,
                       artifacts=artifacts, fields=caching.finished_fields(ctx, launched.state.get("cache"), outputs))

    def cancel(self, launched: Launched, grace_seconds: float) -> None:
        if launched.handle.ref is not None:
            self.executor.cancel(launched.handle.ref, grace_seconds)

    def preflight(self, step: StepSpec, ctx: RunContext) -> None:
        """Check what can be checked before a run starts: algorithm, code, flavor.

        Raises the same errors ``start`` would, so a bad flavor or an unknown algorithm is
        refused before anything runs.
        """
        try:
            props = ctx.resolve(step.properties)
        except (NotFoundError, InputUnavailable):
            return  # depends on outputs of earlier steps: checked when the step starts
        algo = _algorithm(step, ctx, props)
        if algo.boot_file and not os.path.isfile(os.path.join(algo.code_dir, algo.boot_file)):
            raise JobSetupError(f"step {step.name!r}: boot_file {algo.boot_file!r} is not in {algo.code_dir}",
                                step=step.name)
        resources = resolve_resources(((props.get("spec") or {}).get("resource")) or {}, ctx.settings)
        if self.executor is not None:  # None when validating: no cluster is asked
            self.executor.check_resources(resources)
        job_environment(algo, ctx.settings)


def _cache_check(step: StepSpec, ctx: RunContext, algo: ResolvedAlgorithm, resources: Resources, code_url: str,
                 code_hash: str, inputs: dict[str, Any], datasets: dict[str, dict[str, Any]]) -> caching.Decision:
    """Step caching (:mod:`mloop.steps.caching`): whether this job may reuse an earlier
    identical job's result, from everything that decides it as resolved for this attempt."""
    import hashlib

    env = {k: hashlib.sha256(_as_arg(v).encode()).hexdigest()[:16] for k, v in algo.environments.items()}
    algorithm = {"boot_file": algo.boot_file, "command": algo.command, "source": algo.source,
                 "engine": algo.engine, "env": env}
    return caching.decide(ctx, step, code_dir=algo.code_dir, code_url=code_url, code_hash=code_hash,
                          algorithm=algorithm, parameters=algo.parameters,
                          flavor={"id": resources.flavor_id, "node_count": resources.node_count},
                          inputs=inputs, datasets=datasets)


def job_environment(algo: ResolvedAlgorithm, settings: Settings) -> dict[str, Any] | None:
    """The job's environment (:func:`mloop.runner.envs.plan`: a ``requirements.txt`` or a mapped
    ``JobEngine``, ``apt-pkgs.txt``, an image), refused here, before the run starts, when it
    cannot be made on this machine: an ``image_url`` without a container runtime (with the
    local executor; a cluster's nodes are checked where the job runs).

    Raises:
        JobSetupError: the image has no runtime to run in.
    """
    environment = envs.plan(algo.code_dir, algo.engine, settings)
    if environment and environment["kind"] == "container" and not environment.get("runtime") \
            and settings.executor == "local":
        raise JobSetupError(f"the job's image {environment['image']} needs a container runtime, and neither docker "
                            "nor podman is on PATH",
                            hint="install docker or podman, or drop image_url from the JobEngine to run the job "
                                 "in a per-job environment (requirements.txt)")
    return environment


def _obs_root(ctx: RunContext) -> str:
    """The OBS root as an absolute path or URL, for the job's ``MLOOP_OBS_ROOT`` (``moxing``)."""
    from mloop.artifacts import resolve_url

    root = ctx.settings.resolved_obs_root
    return resolve_url(root, obs_root=root, base_dir=ctx.base_dir())


def _kept_workdir(ctx: RunContext, url: str | None) -> dict[str, Any] | None:
    """The working-folder files the runner kept at ``url`` as an output, None when none were."""
    if not url:
        return None
    try:
        if not ctx.artifacts.exists(url):
            return None
        files = ctx.artifacts.list(url, recursive=True)
    except ArtifactError:
        return None
    return {"type": "workdir", "url": url, "files": len(files)} if files else None


def _read_metrics(ctx: RunContext, where: str) -> list[Any]:
    """The entries of a metrics file, local or at a URL (FileNotFoundError when it is missing)."""
    path = local_path(where) if is_local(where) else None
    if path is not None:
        if not os.path.isfile(path):
            raise FileNotFoundError(path)
        return load_metrics_file(path)
    from mloop.artifacts import filesystem_for

    fs = filesystem_for(where)
    key = fs._strip_protocol(where)
    if not fs.isfile(key):
        raise FileNotFoundError(where)
    return parse_metrics(fs.cat_file(key), source=where)


def stored_log_url(artifacts: ArtifactStore, run_id: str, step_name: str) -> str:
    """Where a job's log is kept in a remote artifact store (``<root>/logs/<run id>/<step>.log``)."""
    return artifacts.url("logs", run_id, f"{step_name}.log")


def keep_log(artifacts: ArtifactStore | None, run_id: str, step_name: str, log_path: str | None) -> None:
    """Copy a finished job's log into the artifact store when that store is remote (S3), so
    another machine sharing the database and bucket reads it (``mloop logs``); the local file
    stays what a live view follows. A failed copy is a warning, never the step's failure."""
    if artifacts is None or is_local(artifacts.root) or not log_path or not os.path.exists(log_path):
        return
    try:
        with open(log_path, "rb") as fh:
            artifacts.write_bytes(stored_log_url(artifacts, run_id, step_name), fh.read())
    except (OSError, MloopError) as exc:
        import logging

        logging.getLogger(__name__).warning("the log of step %s was not copied to %s: %s", step_name,
                                            artifacts.root, exc)


def _runner_failure(log_path: str | None) -> str | None:
    """The job runner's own failure line from the end of the log, without its prefix."""
    for line in reversed(runner.log_tail(log_path, 20)):
        if line.startswith(runner.FAILURE_PREFIX):
            return line[len(runner.FAILURE_PREFIX):]
    return None
