"""The state machine's transition table and dependency rules."""

from __future__ import annotations

import pytest

from mloop.engine.rules import dependencies
from mloop.engine.transitions import check_run as check_run_transition, check_step as check_step_transition
from mloop.errors import RunStateError
from mloop.spec.models import StepSpec, WorkflowSpec


@pytest.mark.parametrize("a,b", [("pending", "running"), ("running", "succeeded"), ("running", "failed"),
                                 ("running", "stopped"), ("pending", "skipped"), ("failed", "pending"),
                                 ("stopped", "pending")])
def test_allowed_step_transitions(a: str, b: str) -> None:
    check_step_transition(a, b)


@pytest.mark.parametrize("a,b", [("succeeded", "running"), ("skipped", "running"), ("pending", "succeeded"),
                                 ("succeeded", "pending")])
def test_impossible_step_transitions_raise(a: str, b: str) -> None:
    with pytest.raises(RunStateError):
        check_step_transition(a, b)


def test_a_succeeded_run_cannot_be_retried() -> None:
    with pytest.raises(RunStateError):
        check_run_transition("succeeded", "pending")
    check_run_transition("failed", "pending")


def test_condition_branches_depend_on_the_condition_step() -> None:
    spec = WorkflowSpec(name="w", steps=[
        StepSpec(name="train", type="job"),
        StepSpec(name="gate", type="condition", depend_steps=["train"], if_then_steps=["ok"], else_then_steps=["no"]),
        StepSpec(name="ok", type="job"),
        StepSpec(name="no", type="job", depend_steps=["train"]),
    ])
    deps = dependencies(spec, {"train", "gate", "ok", "no"})
    assert deps["ok"] == ["gate"] and set(deps["no"]) == {"train", "gate"}


def test_steps_outside_a_partial_run_count_as_done() -> None:
    spec = WorkflowSpec(name="w", steps=[StepSpec(name="a", type="job"), StepSpec(name="b", type="job", depend_steps=["a"])])
    assert dependencies(spec, {"b"}) == {"b": []}
