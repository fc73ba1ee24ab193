"""Every change of a run's or a step's status goes through here, checked against the tables.

Layer: engine. The tables below are the whole state machine; the engine, the run service
(stop, retry, resume, reconcile) and nothing else write statuses, and only through these
functions. An illegal transition is a bug in mloop: it raises :class:`RunStateError` before
anything is written, instead of recording an impossible history. Writes are compare-and-set
(``expected_from``): when another process changed the status first, nothing is written and
False comes back, so a stop and the engine can't both win.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from mloop.errors import RunStateError
from mloop.store.base import TERMINAL_RUN, TERMINAL_STEP, StepTransition, Store

__all__ = ["RUN_STATUSES", "RUN_TRANSITIONS", "STEP_STATUSES", "STEP_TRANSITIONS", "TERMINAL_RUN",
           "TERMINAL_STEP", "check_run", "check_step", "run", "step", "steps"]

STEP_TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"running", "skipped", "failed", "stopped", "waiting_input"}),
    # waiting_input -> waiting_input: what it waits for changed (e.g. labeling progress).
    "waiting_input": frozenset({"running", "failed", "stopped", "skipped", "waiting_input"}),
    "running": frozenset({"succeeded", "failed", "stopped"}),
    # RetryFailedStep: a failed or stopped step goes back to pending on `mloop retry`.
    "failed": frozenset({"pending"}),
    "stopped": frozenset({"pending"}),
    "succeeded": frozenset(),
    "skipped": frozenset(),
}

RUN_TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"running", "failed", "stopped"}),
    "running": frozenset({"succeeded", "failed", "stopped", "waiting_input"}),
    # waiting_input -> running: an engine claims (resumes) the run, or input arrived;
    # -> succeeded: the input arrived and the last waiting step finished at once (a labeling
    # task found completed), in the same scheduling pass.
    "waiting_input": frozenset({"running", "succeeded", "failed", "stopped"}),
    "failed": frozenset({"pending"}),  # retry
    "stopped": frozenset({"pending"}),  # retry
    "succeeded": frozenset(),
}

STEP_STATUSES: frozenset[str] = frozenset(STEP_TRANSITIONS)
RUN_STATUSES: frozenset[str] = frozenset(RUN_TRANSITIONS)


def check_step(current: str, new: str) -> None:
    """Raises RunStateError unless a step may go from ``current`` to ``new``."""
    if new not in STEP_TRANSITIONS.get(current, frozenset()):
        raise RunStateError(f"a step cannot go from {current} to {new}")


def check_run(current: str, new: str) -> None:
    """Raises RunStateError unless a run may go from ``current`` to ``new``."""
    if new not in RUN_TRANSITIONS.get(current, frozenset()):
        raise RunStateError(f"a run cannot go from {current} to {new}")


def _check_all(check: Any, sources: Iterable[str], new: str) -> None:
    for source in sources:
        check(source, new)


def run(store: Store, run_id: str, to_status: str, *, expected_from: Sequence[str], message: str | None = None,
        **fields: Any) -> bool:
    """Move a run to ``to_status`` if it is in one of ``expected_from``; whether it moved.

    Raises:
        RunStateError: some status in ``expected_from`` may not go to ``to_status`` (nothing
            is written).
    """
    _check_all(check_run, expected_from, to_status)
    return store.transition_run(run_id, to_status, message=message, expected_from=list(expected_from), **fields)


def step(store: Store, run_id: str, name: str, to_status: str, *, expected_from: Sequence[str],
         message: str | None = None, **fields: Any) -> bool:
    """Move one step, like :func:`run`."""
    _check_all(check_step, expected_from, to_status)
    return store.transition_step(run_id, name, to_status, message=message, expected_from=list(expected_from),
                                 **fields)


def steps(store: Store, run_id: str, changes: Sequence[StepTransition]) -> list[bool]:
    """Several step changes in one transaction (each with its ``expected_from``); whether
    each applied. A change's metrics and artifacts are written with it, in that transaction."""
    for change in changes:
        if change.expected_from is None:
            raise RunStateError(f"step {change.name!r}: a transition to {change.to_status} must say which "
                                "status it expects (expected_from)")
        _check_all(check_step, change.expected_from, change.to_status)
    return store.transition_steps(run_id, changes)
