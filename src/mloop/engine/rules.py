"""Named rules of the run state machine that are not the transition table itself.

Layer: engine. The table of allowed transitions, and the only functions that write them,
are in :mod:`mloop.engine.transitions`.
"""

from __future__ import annotations

from mloop.engine.transitions import RUN_TRANSITIONS, STEP_TRANSITIONS, TERMINAL_RUN, TERMINAL_STEP
from mloop.spec.models import WorkflowSpec

__all__ = ["TERMINAL_RUN", "TERMINAL_STEP", "STEP_TRANSITIONS", "RUN_TRANSITIONS", "dependencies"]


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
