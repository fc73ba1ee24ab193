"""Where a job runs: a three-verb seam (launch, poll, cancel), executors registered by name.

The engine hands an executor a :class:`JobRequest`: a location-neutral description of the
job (the code snapshot, inputs and outputs as URLs, the log's URL, resources, a time limit).
Wherever the executor starts it, the job runner (:mod:`mloop.runner`) stages it in, runs the
algorithm with the job contract, uploads outputs and writes the log. Executors never see specs.

A launched job is known by an opaque reference (``JobHandle.ref``, ``"<executor>:..."``),
kept in the store: :func:`executor_for_ref` gives the executor that can :meth:`~Executor.poll`
or :meth:`~Executor.cancel` it from any process (stop, reconcile), not only the one that
launched it.
"""

from __future__ import annotations

import os

import abc
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class Resources:
    cpu: float = 1.0
    gpu: int = 0
    memory_gb: float = 2.0
    node_count: int = 1
    flavor_id: str = ""
    custom: dict[str, float] = field(default_factory=dict)  # cluster resources by name (Ray's custom ones)


@dataclass
class StagedFile:
    """One file of a dataset version laid out in a job folder (no database needed to stage it)."""

    path: str  # where it goes, relative to the input's folder, ``/``-separated
    url: str | None  # the object (or the pack holding it); None when ``text`` is given
    size: int
    offset: int | None = None  # inside a pack: read ``size`` bytes from here
    text: str | None = None  # written as is (mloop's manifest.json of the layout)


@dataclass
class JobInput:
    """An input of the job, and how the runner stages it.

    ``kind``: ``local`` (a path on the job's machine, used in place), ``download`` (a folder
    at an fsspec URL, copied to ``<workdir>/inputs/<name>``), ``files`` (a dataset version:
    ``files`` laid out in ``<workdir>/inputs/<name>``).
    """

    name: str
    url: str
    kind: str = "local"
    files: list[StagedFile] = field(default_factory=list)


@dataclass
class JobOutput:
    """An output folder: ``local`` (written in place) or ``upload`` (written under
    ``<workdir>/outputs/<name>/``, uploaded to ``url`` when the job succeeds)."""

    name: str
    url: str
    kind: str = "local"


@dataclass
class MetricsFile:
    """A metrics file of output ``output``: ``local`` (written in place) or ``upload`` (written
    under ``<workdir>/metrics/<output>/``, uploaded to ``url`` when the job succeeds)."""

    output: str
    url: str
    kind: str = "local"


#: A request longer than this always goes to a file (one argument may hold at most 128 KiB on Linux).
INLINE_REQUEST_MAX = 64 * 1024


def runner_argument(wire: dict[str, Any]) -> str:
    """The job runner's one argument for the request ``wire`` (``JobRequest.to_dict()``): the
    JSON itself, or the path of an owner-only file next to the job folder holding it, when it
    is too long for an argument or carries environment values (a job's tracking token): a
    command line is readable by every user of the machine (``ps``), a 0600 file is not."""
    import json

    payload = json.dumps(wire, separators=(",", ":"))
    if len(payload) <= INLINE_REQUEST_MAX and not wire.get("env"):
        return payload
    path = str(wire["workdir"]).rstrip(os.sep) + ".request.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fd, 0o600)  # also when an earlier attempt's file was there
        fh.write(payload)
    return path


@dataclass
class JobRequest:
    """A job ready to start, by URL: nothing in it promises a path on the engine's disk."""

    run_id: str
    step_name: str
    code_url: str  # the code snapshot, content-addressed in the artifact store (``.../code/<hash>``)
    code_name: str  # the folder name the code gets in the job folder (the code_dir's name)
    log_url: str  # the job's log: a local path (appended to) or a URL (uploaded at the end)
    boot_file: str | None = None  # a Python file in the code, run in the runner's interpreter
    command: str | None = None  # or a shell command, run as ``/bin/sh -c '<command> "$@"'``
    parameters: list[tuple[str, str]] = field(default_factory=list)  # ``--name=value``, in order
    inputs: list[JobInput] = field(default_factory=list)
    outputs: list[JobOutput] = field(default_factory=list)
    metrics: list[MetricsFile] = field(default_factory=list)
    metrics_outputs: list[str] = field(default_factory=list)  # every metrics output (``MLOOP_METRICS_<N>``)
    env: dict[str, str] = field(default_factory=dict)  # extra environment (the algorithm's)
    resources: Resources = field(default_factory=Resources)
    timeout_seconds: float | None = None
    workdir: str = ""  # where the job folder goes; a hint the local executor follows
    workflow_name: str = ""
    attempt: int = 1
    log_header: str = ""  # the runner's first line in the log
    #: The boot file compiled for this interpreter (see :func:`mloop.runner.write_boot_code`),
    #: so the runner need not compile it; None (or a mismatch) and the runner compiles it.
    boot_code_url: str | None = None
    #: Files the job writes into its working folder (the code folder it runs in) that match one
    #: of these patterns (``artefacts/``: a folder; ``*.log``: a glob) are kept at ``keep_url``.
    keep_patterns: list[str] = field(default_factory=list)
    keep_url: str | None = None
    #: What the job runs in, beyond the runner's interpreter (:func:`mloop.runner.envs.plan`):
    #: ``{"kind": "venv" | "engine" | "container" | "system", "requirements", "apt", ...}``.
    #: None: the runner's interpreter, as always. Every executor passes it on to the runner,
    #: which makes the environment where the job runs.
    environment: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The request as the runner reads it (plain JSON types).

        Written out by hand: ``dataclasses.asdict`` deep-copies recursively, a measurable
        share of the engine's time per step."""
        res = self.resources
        return {
            "run_id": self.run_id, "step_name": self.step_name, "code_url": self.code_url,
            "code_name": self.code_name, "log_url": self.log_url, "boot_file": self.boot_file,
            "boot_code_url": self.boot_code_url, "command": self.command,
            "parameters": [[name, value] for name, value in self.parameters],
            "inputs": [{"name": i.name, "url": i.url, "kind": i.kind,
                        "files": [{k: v for k, v in (("path", f.path), ("url", f.url), ("size", f.size),
                                                      ("offset", f.offset), ("text", f.text)) if v is not None}
                                  for f in i.files]} for i in self.inputs],
            "outputs": [{"name": o.name, "url": o.url, "kind": o.kind} for o in self.outputs],
            "metrics": [{"output": m.output, "url": m.url, "kind": m.kind} for m in self.metrics],
            "metrics_outputs": list(self.metrics_outputs), "env": dict(self.env),
            "resources": {"cpu": res.cpu, "gpu": res.gpu, "memory_gb": res.memory_gb,
                          "node_count": res.node_count, "flavor_id": res.flavor_id, "custom": dict(res.custom)},
            "timeout_seconds": self.timeout_seconds, "workdir": self.workdir, "workflow_name": self.workflow_name,
            "attempt": self.attempt, "log_header": self.log_header,
            "keep_patterns": list(self.keep_patterns), "keep_url": self.keep_url,
            "environment": self.environment,
        }


@dataclass
class JobExit:
    exit_code: int | None  # None: killed by a signal or lost
    signal: int | None = None
    timed_out: bool = False
    reason: str | None = None


@dataclass
class JobHandle:
    """What :meth:`Executor.launch` returns; ``ref`` is what the store keeps."""

    request: JobRequest
    ref: str | None = None  # ``"<executor>:..."``; None when the job could not start
    pid: int | None = None  # for display only
    native: Any = None  # the executor's own object (Popen, Ray ObjectRef, ...)
    exit: JobExit | None = None  # set once the job has ended
    cancelled: bool = False  # set by Executor.cancel: the job was killed on purpose


ExitCallback = Callable[[JobHandle, JobExit], None]


class Executor(abc.ABC):
    """Starts jobs and reports when they end."""

    #: The registry name, and the prefix of every ref this executor makes.
    name: str = ""

    @abc.abstractmethod
    def launch(self, request: JobRequest, on_exit: ExitCallback | None = None) -> JobHandle:
        """Start the job. If ``on_exit`` is given it is called (from any thread) when the job ends."""

    @abc.abstractmethod
    def poll(self, ref: str) -> JobExit | None:
        """The exit of the job ``ref`` names, None while it runs; works in any process.

        A job this process launched reports its real exit; one launched elsewhere that has
        gone reports ``JobExit(None, reason=...)`` (its exit code is not known here).
        """

    @abc.abstractmethod
    def cancel(self, ref: str, grace_seconds: float = 5.0) -> bool:
        """Stop the job ``ref`` names and everything it started (SIGTERM, then SIGKILL after
        the grace period); works in any process. False if it was not running."""


    def check_resources(self, resources: Resources) -> None:
        """Refuse, before a run starts, a job no machine of this executor can ever run (a
        cluster would otherwise queue it forever): raise a :class:`~mloop.errors.ConfigError`
        naming the flavor and what there is. By default every request is taken."""

    def jobs_of_run(self, run_id: str) -> list[str]:
        """Refs of jobs of ``run_id`` still running where this executor runs them, whether or
        not a step recorded them (reconcile ends those an engine started just before it died).
        By default none can be found."""
        return []


#: The environment variable every job process starts with: ``<run id>/<step>/<attempt>``, so
#: an executor can find a job nobody recorded.
JOB_MARKER = "MLOOP_JOB"

ExecutorFactory = Callable[[], Executor]
_REGISTRY: dict[str, ExecutorFactory] = {}


def register_executor(name: str, factory: ExecutorFactory) -> None:
    """Make ``get_executor(name)`` call ``factory`` (a class or a function)."""
    _REGISTRY[name] = factory


def get_executor(name: str) -> Executor:
    """The executor called ``name`` (``local`` | ``ray`` | one registered)."""
    _register_builtins()
    factory = _REGISTRY.get(name)
    if factory is None:
        from mloop.errors import ConfigError

        known = ", ".join(repr(n) for n in sorted(_REGISTRY))
        raise ConfigError(f"unknown executor {name!r}", hint=f"set MLOOP_EXECUTOR to one of {known}")
    return factory()


def executor_for_ref(ref: str) -> Executor:
    """The executor that made ``ref`` (its prefix), to poll or cancel that job.

    Raises:
        ConfigError: no executor of that name is registered.
    """
    return get_executor(ref.split(":", 1)[0])


def _register_builtins() -> None:
    if "local" not in _REGISTRY:
        def local() -> Executor:
            from mloop.executors.local import LocalExecutor

            return LocalExecutor()

        _REGISTRY["local"] = local
    if "ray" not in _REGISTRY:
        def ray() -> Executor:
            from mloop.executors.ray import RayExecutor

            return RayExecutor()

        _REGISTRY["ray"] = ray
