"""Step handlers give each step kind its meaning. A new kind is a new handler, not an engine change."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

from mloop.engine.context import RunContext
from mloop.executors.base import Executor, JobExit, JobHandle
from mloop.spec.models import StepSpec
from mloop.store.base import MetricRecord, NewArtifact


@dataclass
class Outcome:
    """How a step ended."""

    status: str  # succeeded | failed | stopped
    message: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    skip_steps: list[str] = field(default_factory=list)  # condition steps: the losing branch
    exit_code: int | None = None
    #: Committed by the engine with the step's terminal transition (one transaction), never
    #: written by the handler itself.
    metrics: list[MetricRecord] = field(default_factory=list)
    artifacts: list[NewArtifact] = field(default_factory=list)


@dataclass
class Launched:
    """A step whose work runs elsewhere; the engine hears when it ends."""

    handle: JobHandle
    state: dict[str, Any] = field(default_factory=dict)  # handler's own bookkeeping for finish()
    fields: dict[str, Any] = field(default_factory=dict)  # step fields to record (workdir, code_hash, ...)


@dataclass
class Waiting:
    """A step that can't go on until something outside the run happens (a person finishes a
    labeling task, ...). The engine marks it ``waiting_input`` with ``reason`` as its message
    and calls :meth:`StepHandler.poll` every ``poll_seconds`` while it lives; after a restart,
    ``mloop resume`` (or whatever delivers the input) polls it again."""

    reason: str
    poll_seconds: float = 1.0


class StepHandler(abc.ABC):
    """Runs one kind of step."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    @abc.abstractmethod
    def start(self, step: StepSpec, ctx: RunContext, attempt: int, on_exit: Any) -> Outcome | Launched | Waiting:
        """Begin the step: return an Outcome if it finished at once, what was launched, or
        that it waits for input.

        ``on_exit(handle, exit)`` must be passed to the executor so the engine hears the end.
        """

    def poll(self, step: StepSpec, ctx: RunContext, attempt: int, on_exit: Any) -> Outcome | Launched | Waiting:
        """Check again on a step that returned :class:`Waiting` (also after a restart, so it
        must work from the store alone). By default, :meth:`start` again: handlers whose start
        is idempotent (find-or-create, then check) need nothing more."""
        return self.start(step, ctx, attempt, on_exit)

    def input_default(self, step: StepSpec, ctx: RunContext, name: str) -> Any:
        """A value for the delayed placeholder ``name`` this step uses, when the handler can
        derive one (e.g. the model version a ModelStep of this run registered); None makes
        the step wait for a person to give it."""
        return None

    def finish(self, step: StepSpec, ctx: RunContext, launched: Launched, exit: JobExit) -> Outcome:
        """Turn a launched job's exit into an Outcome (parse metrics, upload outputs, ...)."""
        raise NotImplementedError

    def cancel(self, launched: Launched, grace_seconds: float) -> None:
        self.executor.cancel(launched.handle, grace_seconds)
