"""The step-handler interface and its registry: how the engine runs a step it knows nothing about.

Layer: engine (the interface); the handlers themselves live in :mod:`mloop.steps`, which
registers them here, and the run service (the composition root) makes sure it has. A new
kind is a new handler plus one :meth:`HandlerRegistry.register`, not an engine change.

The engine calls, for every step, whatever its kind: :meth:`StepHandler.preflight`
before the run starts anything, :meth:`~StepHandler.start` (done at once, launched, or waiting),
:meth:`~StepHandler.poll` for a waiting step, :meth:`~StepHandler.finish` when a launched step
ends and :meth:`~StepHandler.cancel` on a stop. Work that takes a while inside the engine's
process (a deploy, a dataset import) runs through :func:`run_in_thread`, so it is launched like
a job and stoppable like one.
"""

from __future__ import annotations

import abc
import importlib
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, cast

from mloop.engine.context import RunContext
from mloop.errors import MloopError
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
    #: Step fields to record with the terminal transition (e.g. where a cached result came from).
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class Launched:
    """A step whose work runs elsewhere; the engine hears when it ends."""

    handle: Any  # JobHandle of an executor, ThreadHandle of run_in_thread, or the handler's own
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


class StepCancelled(MloopError):
    """Raised inside :func:`run_in_thread` work once its step is asked to stop."""

    code = "step_cancelled"


@dataclass
class ThreadHandle:
    """The handle of work :func:`run_in_thread` started: ``cancelled`` is set on a stop."""

    step_name: str
    cancelled: threading.Event = field(default_factory=threading.Event)
    exit: JobExit | None = None

    def check(self) -> None:
        """Raise :class:`StepCancelled` if the step was asked to stop (call it between units of work)."""
        if self.cancelled.is_set():
            raise StepCancelled(f"step {self.step_name!r} was stopped")


def run_in_thread(step: StepSpec, work: Callable[[ThreadHandle], Outcome], on_exit: Any, *,
                  fields: dict[str, Any] | None = None, state: dict[str, Any] | None = None) -> Launched:
    """Start ``work(handle)`` in a thread and return it as launched; the engine hears its end
    through ``on_exit`` like a job's, and :meth:`StepHandler.cancel` sets ``handle.cancelled``.

    ``state`` is shared as it is (not copied): what ``work`` records there, ``cancel`` sees.
    ``work`` returns the step's Outcome; an MloopError it raises fails the step with its
    message and hint, :class:`StepCancelled` stops it, anything else fails it with the type.
    """
    handle = ThreadHandle(step.name)
    launched = Launched(handle, state=state if state is not None else {}, fields=dict(fields or {}))

    def target() -> None:
        try:
            outcome = work(handle)
        except StepCancelled:
            outcome = Outcome("stopped", "stopped on request")
        except MloopError as exc:
            outcome = Outcome("failed", f"{exc}" + (f" ({exc.hint})" if exc.hint else ""))
        except Exception as exc:  # noqa: BLE001 - reported as the step's failure, never lost
            outcome = Outcome("failed", f"{type(exc).__name__}: {exc}")
        launched.state["outcome"] = outcome
        exit = JobExit(0 if outcome.status == "succeeded" else 1)
        handle.exit = exit
        on_exit(handle, exit)

    threading.Thread(target=target, daemon=True, name=f"step-{step.name}").start()
    return launched


class StepHandler(abc.ABC):
    """Runs one kind of step."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    def preflight(self, step: StepSpec, ctx: RunContext) -> None:
        """Check what can be checked before the run starts anything (raise an MloopError to
        fail the step, and so the run, at once). Values that depend on earlier steps' outputs
        are checked when the step starts. By default: nothing."""
        return None

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
        """Turn a launched step's end into an Outcome (parse metrics, upload outputs, ...).

        By default, the outcome :func:`run_in_thread` work returned."""
        outcome = launched.state.get("outcome")
        if isinstance(outcome, Outcome):
            return outcome
        raise NotImplementedError(f"{type(self).__name__} launched work but has no finish()")

    def cancel(self, launched: Launched, grace_seconds: float) -> None:
        """Stop launched work: thread work is told to stop, an executor's job is cancelled."""
        if isinstance(launched.handle, ThreadHandle):
            launched.handle.cancelled.set()
        else:
            self.executor.cancel(launched.handle, grace_seconds)


HandlerFactory = Callable[[Executor], StepHandler]


class _UnknownKind(StepHandler):
    """What a kind nobody registered gets: the step fails, saying so."""

    def start(self, step: StepSpec, ctx: RunContext, attempt: int, on_exit: Any) -> Outcome | Launched | Waiting:
        return Outcome("failed", f"no handler is registered for {step.type!r} steps in this mloop; the step "
                                 "compiles and validates, but cannot run. Skip it with a StepPolicy skip "
                                 "condition, or run the other steps with --steps")


class HandlerRegistry:
    """Step kind -> handler factory; a factory may be given as ``"module:Class"`` and is then
    imported on first use, so a run imports only the handlers its steps use."""

    def __init__(self) -> None:
        self._factories: dict[str, HandlerFactory | str] = {}

    def register(self, kind: str, factory: HandlerFactory | str) -> None:
        """Make steps of ``kind`` run with ``factory(executor)`` (replaces any earlier one)."""
        self._factories[kind] = factory

    def kinds(self) -> list[str]:
        return sorted(self._factories)

    def handler_for(self, kind: str, executor: Executor) -> StepHandler:
        """A new handler for steps of ``kind``."""
        entry = self._factories.get(kind)
        if entry is None:
            return _UnknownKind(executor)
        if isinstance(entry, str):
            module, _, name = entry.partition(":")
            entry = cast(HandlerFactory, getattr(importlib.import_module(module), name))
            self._factories[kind] = entry
        return entry(executor)


#: The registry engines use unless given another; :mod:`mloop.steps` fills it on import.
registry = HandlerRegistry()
