"""An unexpected error inside the engine fails the run and ends its jobs; nothing stays running."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from mloop import workflow as wf
from mloop.config import Settings
from mloop.runs import create_run, execute_run, open_backend


def _workflow(code: Path) -> wf.Workflow:
    (code / "sleep.py").write_text("import os, time\nopen(os.environ['PIDFILE'], 'w').write(str(os.getpid()))\n"
                                   "time.sleep(60)\n")
    # "quick" ends once "slow" is surely running, and its exit hits the simulated bug.
    (code / "quick.py").write_text("import os, time\nwhile not os.path.exists(os.environ['PIDFILE']):\n"
                                   "    time.sleep(0.02)\n")
    spec = wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"}))
    slow = wf.steps.JobStep(name="slow", algorithm=wf.BaseAlgorithm(code_dir=str(code), boot_file="sleep.py"),
                            spec=spec)
    quick = wf.steps.JobStep(name="quick", algorithm=wf.BaseAlgorithm(code_dir=str(code), boot_file="quick.py"),
                             spec=spec)
    return wf.Workflow(name="abort", desc="engine bug while a job runs", steps=[slow, quick])


def test_an_engine_error_fails_the_run_and_kills_its_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = tmp_path / "code"
    code.mkdir()
    pidfile = tmp_path / "pid"
    monkeypatch.setenv("PIDFILE", str(pidfile))
    settings = Settings(home=tmp_path / ".mloop", stop_grace_seconds=1)
    from mloop.engine import engine as engine_module

    original = engine_module._Execution._finished

    def broken(self: object, handle: object, exit: object) -> None:
        raise RuntimeError("simulated engine bug")

    monkeypatch.setattr(engine_module._Execution, "_finished", broken)
    with open_backend(settings) as backend:
        run = create_run(backend, _workflow(code).compile())
        with pytest.raises(RuntimeError, match="simulated engine bug"):
            execute_run(backend, run.id)  # "quick" ends first and hits the bug while "slow" runs
        monkeypatch.setattr(engine_module._Execution, "_finished", original)
        record = backend.store.get_run(run.id)
        steps = {s.name: s for s in backend.store.list_steps(run.id)}
    assert record.status == "failed" and "simulated engine bug" in (record.message or "")
    assert steps["slow"].status == "failed"
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the running job was left alive"
        time.sleep(0.1)
