"""The run and step state machines: every pair of statuses, legal or not, through the one
module that writes them (mloop.engine.transitions), against a real SQLite store."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from mloop.engine import transitions
from mloop.errors import RunStateError
from mloop.store import open_store
from mloop.store.base import StepTransition

RUN_STATUSES = ["pending", "running", "waiting_input", "succeeded", "failed", "stopped"]
STEP_STATUSES = ["pending", "running", "waiting_input", "succeeded", "failed", "skipped", "stopped"]

#: The legal moves, written out by hand (not read from the module), so a change to the
#: tables shows up here as a change of behaviour to review.
LEGAL_RUN = {
    ("pending", "running"), ("pending", "failed"), ("pending", "stopped"),
    ("running", "succeeded"), ("running", "failed"), ("running", "stopped"), ("running", "waiting_input"),
    ("waiting_input", "running"), ("waiting_input", "succeeded"), ("waiting_input", "failed"),
    ("waiting_input", "stopped"),
    ("failed", "pending"), ("stopped", "pending"),
}
LEGAL_STEP = {
    ("pending", "running"), ("pending", "skipped"), ("pending", "failed"), ("pending", "stopped"),
    ("pending", "waiting_input"),
    ("waiting_input", "running"), ("waiting_input", "failed"), ("waiting_input", "stopped"),
    ("waiting_input", "skipped"), ("waiting_input", "waiting_input"),
    ("running", "succeeded"), ("running", "failed"), ("running", "stopped"),
    ("failed", "pending"), ("stopped", "pending"),
}


def test_the_tables_cover_every_status() -> None:
    assert sorted(transitions.RUN_STATUSES) == sorted(RUN_STATUSES)
    assert sorted(transitions.STEP_STATUSES) == sorted(STEP_STATUSES)


@pytest.mark.parametrize("current, new", list(itertools.product(RUN_STATUSES, RUN_STATUSES)))
def test_run_pair(current: str, new: str) -> None:
    if (current, new) in LEGAL_RUN:
        transitions.check_run(current, new)
    else:
        with pytest.raises(RunStateError, match=f"a run cannot go from {current} to {new}"):
            transitions.check_run(current, new)


@pytest.mark.parametrize("current, new", list(itertools.product(STEP_STATUSES, STEP_STATUSES)))
def test_step_pair(current: str, new: str) -> None:
    if (current, new) in LEGAL_STEP:
        transitions.check_step(current, new)
    else:
        with pytest.raises(RunStateError, match=f"a step cannot go from {current} to {new}"):
            transitions.check_step(current, new)


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = open_store(f"sqlite:///{tmp_path / 'mloop.db'}")
    yield s
    s.close()


def _run(store):  # type: ignore[no-untyped-def]
    release = store.create_release("flow", {"name": "flow", "steps": []})
    return store.create_run(release.id, [("a", "job"), ("b", "job")])


class TestWrites:
    def test_a_legal_run_transition_is_written(self, store) -> None:  # type: ignore[no-untyped-def]
        run = _run(store)
        assert transitions.run(store, run.id, "running", expected_from=["pending"])
        assert store.get_run(run.id).status == "running"
        assert [e.to_status for e in store.list_events(run.id)] == ["running"]

    def test_an_illegal_run_transition_raises_and_writes_nothing(self, store) -> None:  # type: ignore[no-untyped-def]
        run = _run(store)
        with pytest.raises(RunStateError, match="from pending to succeeded"):
            transitions.run(store, run.id, "succeeded", expected_from=["pending"])
        assert store.get_run(run.id).status == "pending" and store.list_events(run.id) == []

    def test_one_illegal_source_among_several_refuses_the_write(self, store) -> None:  # type: ignore[no-untyped-def]
        run = _run(store)
        transitions.run(store, run.id, "running", expected_from=["pending"])
        with pytest.raises(RunStateError, match="from succeeded to pending"):
            transitions.run(store, run.id, "pending", expected_from=["failed", "succeeded"])
        assert store.get_run(run.id).status == "running"

    def test_compare_and_set_loses_quietly(self, store) -> None:  # type: ignore[no-untyped-def]
        run = _run(store)
        assert not transitions.run(store, run.id, "pending", expected_from=["failed"])
        assert store.get_run(run.id).status == "pending"

    def test_an_illegal_step_transition_raises_and_writes_nothing(self, store) -> None:  # type: ignore[no-untyped-def]
        run = _run(store)
        with pytest.raises(RunStateError, match="from pending to succeeded"):
            transitions.step(store, run.id, "a", "succeeded", expected_from=["pending"])
        assert store.get_step(run.id, "a").status == "pending"

    def test_a_batch_with_one_illegal_change_writes_none(self, store) -> None:  # type: ignore[no-untyped-def]
        run = _run(store)
        changes = [StepTransition("a", "running", expected_from=("pending",)),
                   StepTransition("b", "succeeded", expected_from=("pending",))]
        with pytest.raises(RunStateError, match="from pending to succeeded"):
            transitions.steps(store, run.id, changes)
        assert [s.status for s in store.list_steps(run.id)] == ["pending", "pending"]

    def test_a_batch_change_must_say_what_it_expects(self, store) -> None:  # type: ignore[no-untyped-def]
        run = _run(store)
        with pytest.raises(RunStateError, match="expected_from"):
            transitions.steps(store, run.id, [StepTransition("a", "running")])
