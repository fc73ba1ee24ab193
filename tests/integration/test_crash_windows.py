"""Crash windows of the run path: a process that dies between creating a run and an engine
claiming it, and an engine that dies between starting a job and recording it. Real processes
die (``os._exit``) at the exact moment; reconcile must leave nothing behind, and ``retry``
must not run a second copy of a job."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest
from helpers import Embedded, database_url, embedded, wait_until, write_job, write_workflow  # noqa: F401

from mloop.runs import open_backend

pytestmark = pytest.mark.timeout(180)

#: Create a run of the workflow at argv[2] and die before executing it.
CREATE_AND_DIE = textwrap.dedent("""
    import os, sys
    from mloop.cli import load_workflow
    from mloop.config import Settings
    from mloop.runs import create_run, open_backend

    with open_backend(Settings(home=sys.argv[1])) as ctx:
        run = create_run(ctx, load_workflow(sys.argv[2]))
        print(run.id, flush=True)
        os._exit(9)
""")

#: Execute run argv[2]; die right after the first job has started, before its step is recorded.
LAUNCH_AND_DIE = textwrap.dedent("""
    import os, sys
    from mloop.engine import transitions

    real = transitions.steps

    def steps(store, run_id, changes):
        if any(c.to_status == "running" and c.fields.get("executor_ref") for c in changes):
            os._exit(9)
        return real(store, run_id, changes)

    transitions.steps = steps
    from mloop.config import Settings
    from mloop.runs import execute_run, open_backend

    with open_backend(Settings(home=sys.argv[1])) as ctx:
        execute_run(ctx, sys.argv[2])
""")

FLOW = """
train = job("train", outputs=())
workflow = wf.Workflow(name="crashy", desc="", steps=[train])
"""


def test_a_run_whose_creator_died_before_it_started_is_reconciled_and_retried(tmp_path: Path,
                                                                              embedded: Embedded) -> None:
    write_job(tmp_path / "code", "print('trained', flush=True)\n", args=())
    flow = write_workflow(tmp_path, FLOW)

    died = subprocess.run([sys.executable, "-c", CREATE_AND_DIE, str(embedded.settings.home_path), str(flow)],
                          capture_output=True, text=True, timeout=120)
    assert died.returncode == 9, died.stderr
    run_id = died.stdout.strip()

    with open_backend(embedded.settings) as ctx:  # the next command reconciles it
        run = ctx.store.get_run(run_id)
    assert run.status == "failed" and "ended before it started" in (run.message or ""), run
    done = embedded.retry(run_id)
    assert done.status == "succeeded", done.why()
    assert "trained" in done.log("train")


def test_a_run_created_by_a_live_process_waits_for_its_engine(tmp_path: Path, embedded: Embedded) -> None:
    write_job(tmp_path / "code", "print('trained', flush=True)\n", args=())
    run = embedded.create(write_workflow(tmp_path, FLOW))  # this process created it and lives on

    with open_backend(embedded.settings) as ctx:
        assert ctx.store.get_run(run.id).status == "pending"


def test_a_job_started_but_never_recorded_is_ended_by_reconcile_and_retry_runs_one_copy(
        tmp_path: Path, embedded: Embedded) -> None:
    block = tmp_path / "block"
    block.touch()
    write_job(tmp_path / "code", f"""
        with open({str(tmp_path)!r} + "/pid-" + str(os.getpid()), "w") as fh:
            fh.write("started")
        deadline = time.time() + 60
        while os.path.exists({str(block)!r}) and time.time() < deadline:
            time.sleep(0.05)
        print("trained", flush=True)
    """, args=())
    flow = write_workflow(tmp_path, FLOW)
    run = embedded.create(flow)

    died = subprocess.run([sys.executable, "-c", LAUNCH_AND_DIE, str(embedded.settings.home_path), run.id],
                          capture_output=True, text=True, timeout=120)
    assert died.returncode == 9, died.stderr
    pid_files = wait_until(lambda: list(tmp_path.glob("pid-*")), 30, "the job never started")
    first = int(pid_files[0].name.split("-")[1])
    assert psutil.pid_exists(first)
    assert embedded.store.get_step(run.id, "train").status == "pending"  # nothing recorded it

    with open_backend(embedded.settings) as ctx:  # reconcile: the run failed, its job ended
        assert ctx.store.get_run(run.id).status == "failed"
    wait_until(lambda: not psutil.pid_exists(first) or psutil.Process(first).status() == psutil.STATUS_ZOMBIE,
               30, f"job process {first} survived reconcile")

    block.unlink()
    done = embedded.retry(run.id)
    assert done.status == "succeeded", done.why()
    assert len(list(tmp_path.glob("pid-*"))) == 2  # the first copy, ended, and the retry's one
    assert not any(f"MLOOP_JOB={run.id}/" in " ".join(_environ(p)) for p in psutil.process_iter())


def _environ(proc: psutil.Process) -> list[str]:
    try:
        with open(f"/proc/{proc.pid}/environ", "rb") as fh:
            return fh.read().decode("utf-8", "replace").split("\0")
    except OSError:
        return []
