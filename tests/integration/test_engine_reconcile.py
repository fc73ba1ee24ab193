"""Reconciling runs whose engine died: which leftover process is the job's, and which is not.

A run is put in the state a dead engine leaves (real store rows, real processes), then the
next ``open_backend`` reconciles it.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from helpers import Embedded, process_gone, wait_until, write_job, write_workflow
from mloop.config import Settings
from mloop.runs import open_backend

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes standing in for jobs; killed at the end whatever happened."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def sleeper(started: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)  # a job leads its own session
    started.append(proc)
    return proc


def orphaned_run(tmp_path: Path, job_pid_after_start: Callable[[], int]) -> tuple[Embedded, str]:
    """A run left 'running' by an engine that died, its step 'running' with the pid the callback gives."""
    write_job(tmp_path / "code", "pass\n")
    flow = write_workflow(tmp_path, """
        workflow = wf.Workflow(name="orphan", desc="", steps=[job("train")])
    """)
    backend = Embedded(tmp_path / ".mloop")
    run = backend.create(flow)
    dead = subprocess.Popen(["true"])
    dead.wait()
    backend.store.transition_run(run.id, "running", engine_pid=dead.pid, engine_host=socket.gethostname(),
                                 engine_started_at=time.time() - 5)
    backend.store.transition_step(run.id, "train", "running", attempt=1)
    backend.store.update_step(run.id, "train", pid=job_pid_after_start())
    return backend, run.id


def reconcile(tmp_path: Path) -> None:
    open_backend(Settings(home=tmp_path / ".mloop", stop_grace_seconds=1)).close()


class TestReconcileKillsOnlyTheJob:
    def test_job_whose_running_state_was_recorded_late_is_still_killed(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sleepers: list) -> None:
        monkeypatch.chdir(tmp_path)
        job = sleeper(sleepers)
        time.sleep(1.5)  # a slow machine or a busy database: 'running' is committed well after the launch

        backend, run_id = orphaned_run(tmp_path, lambda: job.pid)
        reconcile(tmp_path)

        done = backend.result(run_id)
        backend.close()
        assert done.steps["train"].status == "failed" and "orphaned" in done.steps["train"].message
        wait_until(lambda: job.poll() is not None, 10, "the orphaned job to be killed")

    def test_unrelated_process_that_reuses_the_pid_later_is_left_alone(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sleepers: list) -> None:
        monkeypatch.chdir(tmp_path)

        def newer_process() -> int:
            time.sleep(2.5)  # the job ended long ago; the pid now belongs to a newer process
            return sleeper(sleepers).pid

        backend, run_id = orphaned_run(tmp_path, newer_process)
        stranger = sleepers[-1]
        reconcile(tmp_path)

        done = backend.result(run_id)
        backend.close()
        assert done.steps["train"].status == "failed" and done.run.status == "failed"
        assert stranger.poll() is None and not process_gone(stranger.pid), "reconcile killed a stranger"
        assert psutil.Process(stranger.pid).status() != psutil.STATUS_ZOMBIE
