"""Waiting for input: delayed placeholders and handlers that wait (labeling), across
processes and across a restart of the process that ran the run.

Real ``mloop`` processes on a real SQLite store; values arrive with ``mloop input`` from
another process, as a person would give them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import Cli, Embedded, process_gone, wait_until, write_job, write_workflow
from mloop.engine.context import RunContext
from mloop.spec.models import StepSpec
from mloop.steps import Outcome, StepHandler, Waiting  # (importing mloop.steps registers the built-in kinds)

pytestmark = pytest.mark.timeout(120)

FLOW = """
    epochs = wf.Placeholder(name="epochs", placeholder_type=wf.PlaceholderType.INT, delay=True)
    prepare = job("prepare")
    train = job("train", params={"epochs": epochs}, depend=[prepare])
    workflow = wf.Workflow(name="delayed", desc="", steps=[prepare, train])
"""

JOB = """
import pathlib
out = pathlib.Path(args.out)
out.mkdir(parents=True, exist_ok=True)
(out / "epochs.txt").write_text(str(args.epochs))
"""


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    write_job(tmp_path / "code", JOB, args=("out", "epochs"))
    write_workflow(tmp_path, FLOW)
    c = Cli(tmp_path, tmp_path / ".mloop")
    yield c
    c.cleanup()


def _run_id(cli: Cli) -> str:
    return str(cli.runs()[0]["id"])


def test_no_wait_leaves_the_run_waiting_and_input_resumes_it(cli: Cli, tmp_path: Path) -> None:
    result = cli.ok("run", "flow.py", "--no-wait")
    assert "waiting for input: epochs" in result.text
    assert "mloop input" in result.text
    run_id = _run_id(cli)
    shown = cli.show(run_id)
    assert shown["run"]["status"] == "waiting_input"
    assert shown["steps"]["prepare"]["status"] == "succeeded"
    assert shown["steps"]["train"]["status"] == "waiting_input"

    bad = cli("input", run_id[:8], "epochs=many")
    assert bad.code != 0 and "expected INT" in bad.text
    assert cli.show(run_id)["run"]["status"] == "waiting_input"  # nothing recorded, nothing lost

    cli.ok("input", run_id[:8], "epochs=7")
    shown = cli.show(run_id)
    assert shown["run"]["status"] == "succeeded", shown
    train_out = tmp_path / "out" / run_id / "train" / "out" / "epochs.txt"
    assert train_out.read_text() == "7"
    # prepare ran once: its attempt was not repeated by the resume
    assert shown["steps"]["prepare"]["attempt"] == 1


def test_a_live_engine_picks_up_input_given_from_another_process(cli: Cli, tmp_path: Path) -> None:
    bg = cli.start("run", "flow.py")
    wait_until(lambda: cli.runs() and cli.runs()[0]["status"] == "waiting_input", 60, bg.output)
    run_id = _run_id(cli)
    result = cli.ok("input", run_id, "epochs=3")
    assert "resumed" not in result.text  # the live engine continues it, not this command
    finished = bg.wait(60)
    assert finished.code == 0, str(finished)
    assert cli.show(run_id)["run"]["status"] == "succeeded"
    assert (tmp_path / "out" / run_id / "train" / "out" / "epochs.txt").read_text() == "3"


def test_run_waiting_for_input_survives_the_death_of_its_engine(cli: Cli, tmp_path: Path) -> None:
    bg = cli.start("run", "flow.py")
    wait_until(lambda: cli.runs() and cli.runs()[0]["status"] == "waiting_input", 60, bg.output)
    run_id = _run_id(cli)
    bg.kill()  # SIGKILL: no chance to clean up
    wait_until(lambda: process_gone(bg.pid), 10, "the engine to die")
    # The next command reconciles: the run lost nothing, so it stays waiting (not failed).
    shown = cli.show(run_id)
    assert shown["run"]["status"] == "waiting_input", shown
    assert shown["steps"]["train"]["status"] == "waiting_input"
    cli.ok("input", run_id, "epochs=11")
    assert cli.show(run_id)["run"]["status"] == "succeeded"
    assert (tmp_path / "out" / run_id / "train" / "out" / "epochs.txt").read_text() == "11"


def test_stop_of_a_waiting_run_stops_its_waiting_steps(cli: Cli) -> None:
    cli.ok("run", "flow.py", "--no-wait")
    run_id = _run_id(cli)
    cli.ok("stop", run_id)
    shown = cli.show(run_id)
    assert shown["run"]["status"] == "stopped"
    assert shown["steps"]["train"]["status"] == "stopped"
    assert cli("resume", run_id).code != 0


def test_resume_refuses_a_run_that_does_not_wait(cli: Cli) -> None:
    cli.ok("run", "flow.py", "-p", "epochs=2")
    result = cli("resume", _run_id(cli))
    assert result.code != 0 and "not waiting for input" in result.text


def test_values_for_unknown_placeholders_are_refused(cli: Cli) -> None:
    cli.ok("run", "flow.py", "--no-wait")
    result = cli("input", _run_id(cli), "epoch=3")
    assert result.code != 0 and "no placeholder named 'epoch'" in result.text and "epochs" in result.text


class FileGate(StepHandler):
    """A step kind that waits, like a labeling step, until something outside the run is done
    (here: a file appears). Its start is idempotent, so the default ``poll`` applies."""

    def start(self, step: StepSpec, ctx: RunContext, attempt: int, on_exit: Any) -> Outcome | Waiting:
        gate = Path(ctx.run_dir) / "gate"
        if not gate.exists():
            return Waiting(f"waiting for {gate.name}", poll_seconds=0.05)
        return Outcome("succeeded", outputs={"out": {"gate": json.loads(gate.read_text())}})


def test_handler_wait_resumes_in_a_new_engine(tmp_path: Path) -> None:
    write_job(tmp_path / "code", JOB, args=("out", "epochs"))
    flow = write_workflow(tmp_path, """
        gate = job("gate")
        after = job("after", params={"epochs": 1}, depend=[gate])
        workflow = wf.Workflow(name="gated", desc="", steps=[gate, after])
    """)
    backend = Embedded(tmp_path / ".mloop")
    run = backend.create(flow)
    from mloop.engine.engine import Engine

    engine = Engine(backend.store, backend.settings, backend.backend.artifacts, detach_when_waiting=True)
    engine._handlers["job"] = FileGate(engine.executor)
    waiting = engine.execute(run.id)
    assert waiting.status == "waiting_input" and waiting.engine_pid is None
    step = backend.store.get_step(run.id, "gate")
    assert step.status == "waiting_input" and step.message == "waiting for gate"

    # Still nothing to do: a resumed engine polls, finds the gate shut, and waits again.
    again = Engine(backend.store, backend.settings, backend.backend.artifacts, detach_when_waiting=True)
    again._handlers["job"] = FileGate(again.executor)
    assert again.execute(run.id, resume=True).status == "waiting_input"

    (Path(backend.settings.home_path) / "runs" / run.id / "gate").write_text('"open"')
    last = Engine(backend.store, backend.settings, backend.backend.artifacts)
    last._handlers["job"] = FileGate(last.executor)
    done = last.execute(run.id, resume=True)
    assert done.status == "succeeded", done
    assert backend.store.get_step(run.id, "gate").outputs == {"out": {"gate": "open"}}
    events = [(e.step_name, e.to_status) for e in backend.store.list_events(run.id)]
    assert ("gate", "waiting_input") in events and ("gate", "succeeded") in events
    assert (None, "waiting_input") in events  # the run itself showed it was waiting
