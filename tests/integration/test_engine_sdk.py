"""The SDK verbs (``workflow.run()``, ``release()``, ``release_and_run()``) on a real home."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest

from helpers import Embedded, write_job, write_workflow
from mloop.errors import PlaceholderValueError, StepFailed

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """What the SDK verbs use: ``MLOOP_HOME`` in the environment, run from ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLOOP_HOME", str(tmp_path / ".mloop"))
    return tmp_path / ".mloop"


def load(flow: Path) -> Any:
    return runpy.run_path(str(flow))["workflow"]


def records(home: Path) -> tuple[list[Any], list[Any]]:
    backend = Embedded(home)
    try:
        return backend.store.list_runs(), backend.store.list_releases()
    finally:
        backend.close()


class TestWorkflowRun:
    def test_run_returns_the_id_of_the_succeeded_run(self, tmp_path: Path, home: Path) -> None:
        write_job(tmp_path / "code", "print('sdk job', args.n)\n", args=("out", "n"))
        workflow = load(write_workflow(tmp_path, """
            n = wf.Placeholder(name="n", placeholder_type=wf.PlaceholderType.INT, default=1)
            workflow = wf.Workflow(name="sdk-run", desc="", steps=[job("train", params={"n": n})])
        """))

        run_id = workflow.run(parameters={"n": 6}, quiet=True)

        runs, _ = records(home)
        assert [(r.id, r.status, r.params) for r in runs] == [(run_id, "succeeded", {"n": 6})]
        log = Path(home / "runs" / run_id / "steps" / "train" / "job.log").read_text()
        assert "sdk job 6" in log

    def test_run_raises_step_failed_naming_the_step_and_its_log(self, tmp_path: Path, home: Path) -> None:
        write_job(tmp_path / "code", "print('sdk job is broken 8812'); sys.exit(3)\n")
        workflow = load(write_workflow(tmp_path, """
            workflow = wf.Workflow(name="sdk-fail", desc="", steps=[job("broken")])
        """))

        with pytest.raises(StepFailed) as caught:
            workflow.run(quiet=True)

        assert caught.value.step == "broken"
        assert caught.value.exit_code_of_job == 3
        assert any("sdk job is broken 8812" in line for line in caught.value.log_tail)
        runs, _ = records(home)
        assert [r.status for r in runs] == ["failed"]


class TestRelease:
    def test_release_and_run_refuses_a_placeholder_without_default_before_recording_anything(
            self, tmp_path: Path, home: Path) -> None:
        write_job(tmp_path / "code", "print('must not run')\n", args=("out", "lr"))
        workflow = load(write_workflow(tmp_path, """
            lr = wf.Placeholder(name="lr", placeholder_type=wf.PlaceholderType.FLOAT)
            workflow = wf.Workflow(name="sdk-release-run", desc="", steps=[job("train", params={"lr": lr})])
        """))

        with pytest.raises(PlaceholderValueError) as caught:
            workflow.release_and_run()

        assert "lr" in str(caught.value) and "FLOAT" in str(caught.value)
        assert "release_and_run" in str(caught.value)
        assert caught.value.placeholder == "lr"
        assert records(home) == ([], [])

    def test_release_and_run_runs_with_defaults(self, tmp_path: Path, home: Path) -> None:
        write_job(tmp_path / "code", "print('lr is', args.lr)\n", args=("out", "lr"))
        workflow = load(write_workflow(tmp_path, """
            lr = wf.Placeholder(name="lr", placeholder_type=wf.PlaceholderType.FLOAT, default=0.25)
            workflow = wf.Workflow(name="sdk-release-run", desc="", steps=[job("train", params={"lr": lr})])
        """))

        run_id = workflow.release_and_run()

        runs, releases = records(home)
        assert [(r.id, r.status, r.params) for r in runs] == [(run_id, "succeeded", {"lr": 0.25})]
        assert [r.id for r in releases] == [runs[0].release_id]

    def test_release_twice_unchanged_returns_the_same_release(self, tmp_path: Path, home: Path) -> None:
        write_job(tmp_path / "code", "pass\n")
        flow = write_workflow(tmp_path, """
            workflow = wf.Workflow(name="sdk-release", desc="first", steps=[job("train")])
        """)
        workflow = load(flow)

        first = workflow.release()
        again = workflow.release()
        again_from_file = load(flow).release()
        flow.write_text(flow.read_text().replace('desc="first"', 'desc="second"'))
        changed = load(flow).release()

        assert isinstance(first, str) and first
        assert again == first and again_from_file == first
        assert changed != first
        _, releases = records(home)
        assert sorted((r.version, r.id) for r in releases) == [(1, first), (2, changed)]
