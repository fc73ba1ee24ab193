"""Where a job's process runs: a three-verb seam (launch, poll, cancel).

The engine hands an executor a :class:`JobRequest` (the job contract, fully resolved:
argv, environment, working directory, log file, resources). Executors never see specs.
"""

from __future__ import annotations

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


@dataclass
class JobRequest:
    """A job ready to start: every path local, every value a string."""

    run_id: str
    step_name: str
    argv: list[str]
    cwd: str
    env: dict[str, str]
    log_path: str
    resources: Resources = field(default_factory=Resources)
    timeout_seconds: float | None = None


@dataclass
class JobExit:
    exit_code: int | None  # None: killed by a signal or lost
    signal: int | None = None
    timed_out: bool = False
    reason: str | None = None


@dataclass
class JobHandle:
    """What an executor returns from :meth:`Executor.launch`; ``pid`` is recorded in the store."""

    request: JobRequest
    pid: int | None
    native: Any = None  # the executor's own object (Popen, Ray ObjectRef, ...)
    exit: JobExit | None = None  # set once the job has ended
    cancelled: bool = False  # set by Executor.cancel: the job was killed on purpose


ExitCallback = Callable[[JobHandle, JobExit], None]


class Executor(abc.ABC):
    """Starts jobs and reports when they end."""

    @abc.abstractmethod
    def launch(self, request: JobRequest, on_exit: ExitCallback | None = None) -> JobHandle:
        """Start the job. If ``on_exit`` is given it is called (from any thread) when the job ends."""

    @abc.abstractmethod
    def poll(self, handle: JobHandle) -> JobExit | None:
        """The job's exit, or None while it runs."""

    @abc.abstractmethod
    def cancel(self, handle: JobHandle, grace_seconds: float = 5.0) -> None:
        """Stop the job and everything it started: SIGTERM, then SIGKILL after the grace period."""


def get_executor(name: str) -> Executor:
    """The executor called ``name`` (``local`` | ``ray``)."""
    if name == "local":
        from mloop.executors.local import LocalExecutor

        return LocalExecutor()
    if name == "ray":
        from mloop.executors.ray import RayExecutor

        return RayExecutor()
    from mloop.errors import ConfigError

    raise ConfigError(f"unknown executor {name!r}", hint="set MLOOP_EXECUTOR to 'local' or 'ray'")
