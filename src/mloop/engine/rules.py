"""The run/step state machine as small named rules.

Allowed transitions are a table; anything else is a bug in mloop and raises at once
rather than writing an impossible history to the store.
"""

from __future__ import annotations

from mloop.errors import RunStateError
from mloop.spec.models import WorkflowSpec
from mloop.store.base import TERMINAL_RUN, TERMINAL_STEP

__all__ = ["TERMINAL_RUN", "TERMINAL_STEP", "STEP_TRANSITIONS", "RUN_TRANSITIONS", "check_step_transition",
           "check_run_transition", "dependencies"]

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
    "waiting_input": frozenset({"running", "failed", "stopped"}),
    "failed": frozenset({"pending"}),  # retry
    "stopped": frozenset({"pending"}),  # retry
    "succeeded": frozenset(),
}


def check_step_transition(current: str, new: str) -> None:
    if new not in STEP_TRANSITIONS.get(current, frozenset()):
        raise RunStateError(f"a step cannot go from {current} to {new}")


def check_run_transition(current: str, new: str) -> None:
    if new not in RUN_TRANSITIONS.get(current, frozenset()):
        raise RunStateError(f"a run cannot go from {current} to {new}")


def dependencies(spec: WorkflowSpec, in_run: set[str]) -> dict[str, list[str]]:
    """Each step's upstream steps within the run.

    Steps outside the run (a partial run) count as done. The branches of a condition step
    depend on it even if they don't say so, so a branch never starts before the decision.
    """
    deps: dict[str, list[str]] = {s.name: [d for d in s.depend_steps if d in in_run] for s in spec.steps
                                  if s.name in in_run}
    for step in spec.steps:
        if step.type != "condition" or step.name not in in_run:
            continue
        for target in [*step.if_then_steps, *step.else_then_steps]:
            if target in deps and step.name not in deps[target]:
                deps[target].append(step.name)
    return deps
