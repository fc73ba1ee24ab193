"""Step handlers give each step kind its meaning. A new kind is a new handler, not an engine change."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

from mloop.engine.context import RunContext
from mloop.executors.base import Executor, JobExit, JobHandle
from mloop.spec.models import StepSpec


@dataclass
class Outcome:
    """How a step ended."""

    status: str  # succeeded | failed | stopped
    message: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    skip_steps: list[str] = field(default_factory=list)  # condition steps: the losing branch
    exit_code: int | None = None


@dataclass
class Launched:
    """A step whose work runs elsewhere; the engine hears when it ends."""

    handle: JobHandle
    state: dict[str, Any] = field(default_factory=dict)  # handler's own bookkeeping for finish()
    fields: dict[str, Any] = field(default_factory=dict)  # step fields to record (workdir, code_hash, ...)


class StepHandler(abc.ABC):
    """Runs one kind of step."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    @abc.abstractmethod
    def start(self, step: StepSpec, ctx: RunContext, attempt: int, on_exit: Any) -> Outcome | Launched:
        """Begin the step: return an Outcome if it finished at once, else what was launched.

        ``on_exit(handle, exit)`` must be passed to the executor so the engine hears the end.
        """

    def finish(self, step: StepSpec, ctx: RunContext, launched: Launched, exit: JobExit) -> Outcome:
        """Turn a launched job's exit into an Outcome (parse metrics, upload outputs, ...)."""
        raise NotImplementedError

    def cancel(self, launched: Launched, grace_seconds: float) -> None:
        self.executor.cancel(launched.handle, grace_seconds)
