"""The job runner and the local executor, with real processes: staging from local and
``memory://`` roots, the job contract, exit codes, and jobs reached through their ref from
another process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from helpers import process_gone, wait_until
from mloop import runner
from mloop.errors import ConfigError
from mloop.executors.base import (JobExit, JobHandle, JobInput, JobOutput, JobRequest, MetricsFile, Resources,
                                  StagedFile, executor_for_ref, get_executor, register_executor)
from mloop.executors.local import RUNNER_BOOT, LocalExecutor, make_ref

pytestmark = pytest.mark.timeout(60)

ENV_REPORT = """
import json, os, sys
json.dump({"argv": sys.argv, "cwd": os.getcwd(), "path0": sys.path[0], "name": __name__,
           "env": {k: v for k, v in os.environ.items() if k.startswith(("MLOOP_", "MA_"))}},
          open(os.path.join(os.environ["MA_JOB_DIR"], "..", "report.json"), "w"))
"""


def code_folder(root: Path, body: str, name: str = "train.py") -> Path:
    code = root / "code" / "abc123"
    code.mkdir(parents=True)
    (code / name).write_text(textwrap.dedent(body))
    return code


def request(tmp_path: Path, code_url: str, **kw: Any) -> JobRequest:
    run_dir = tmp_path / "run"
    base: dict[str, Any] = dict(boot_file="train.py", workdir=str(run_dir / "steps" / "s" / "attempt-1"),
                                log_header="mloop: attempt 1 of step s on flavor cpu.small (code abc from here)",
                                resources=Resources(cpu=1, flavor_id="cpu.small"), workflow_name="wf")
    base.update(kw)
    return JobRequest("run1", "s", code_url, "mycode", str(run_dir / "steps" / "s" / "job.log"), **base)


def run_runner(req: JobRequest) -> int:
    payload = json.dumps(req.to_dict())
    return subprocess.run([sys.executable, "-c", RUNNER_BOOT, payload], timeout=30).returncode


DRIVER = """
import json, os, sys
from mloop.artifacts import ArtifactStore
from mloop import runner
seed, out, req = sys.argv[1], sys.argv[2], json.loads(open(sys.argv[3]).read())
store = ArtifactStore("memory://root")
store.put_dir(seed, "memory://root")
code = runner.run(req)
if store.exists("memory://root/results"):
    store.get_dir("memory://root/results", out)
os._exit(code)
"""


class TestRunnerContract:
    def test_boot_file_runs_in_the_runner_process_with_todays_contract(self, tmp_path: Path) -> None:
        code = code_folder(tmp_path / "artifacts", ENV_REPORT + "print('hello from the job')\n")
        data = tmp_path / "elsewhere" / "data"  # a second local root, not the engine's folder
        data.mkdir(parents=True)
        out = tmp_path / "elsewhere" / "out"
        req = request(tmp_path, str(code), inputs=[JobInput("data", str(data), "local")],
                      outputs=[JobOutput("model", str(out) + "/", "local")], parameters=[("lr", "0.5")],
                      env={"EXTRA": "1"})

        assert run_runner(req) == 0

        report = json.loads((tmp_path / "run/steps/s/report.json").read_text())
        workdir = req.workdir
        script = os.path.join(workdir, "mycode", "train.py")
        assert report["argv"] == [script, f"--data={data}", f"--model={out}/", "--lr=0.5"]
        assert report["cwd"] == os.path.join(workdir, "mycode") and report["path0"] == os.path.dirname(script)
        assert report["name"] == "__main__"
        env = report["env"]
        assert env["MA_JOB_DIR"] == workdir and env["MLOOP_INPUT_DATA"] == str(data)
        assert env["MLOOP_OUTPUT_MODEL"] == f"{out}/" and env["MLOOP_PARAM_LR"] == "0.5"
        assert (env["MLOOP_RUN_ID"], env["MLOOP_STEP_NAME"], env["MLOOP_ATTEMPT"]) == ("run1", "s", "1")
        assert out.is_dir()
        log = Path(req.log_url).read_text()
        assert log.splitlines()[0].startswith("mloop: attempt 1 of step s") and "hello from the job" in log

    def test_memory_root_code_inputs_outputs_and_metrics(self, tmp_path: Path) -> None:
        seed = tmp_path / "seed"
        code_folder(seed, """
            import argparse, os
            p = argparse.ArgumentParser(); p.add_argument("--data"); p.add_argument("--ds"); p.add_argument("--model")
            a = p.parse_args()
            text = open(os.path.join(a.data, "x.txt")).read()
            open(os.path.join(a.model, "model.txt"), "w").write(text.upper())
            open(os.environ["MLOOP_METRICS_SCORES"], "w").write('{"acc": 0.5}')
            print("staged", text)
        """)
        (seed / "datasets").mkdir()
        (seed / "datasets" / "x.txt").write_text("abc")
        (seed / "pack").write_bytes(b"0123456789")
        req = request(tmp_path, "memory://root/code/abc123",
                      inputs=[JobInput("data", "memory://root/datasets", "download"),
                              JobInput("ds", "", "files", [StagedFile("a/b.txt", "memory://root/pack", 4, offset=3),
                                                           StagedFile("manifest.json", None, 2, text="{}")])],
                      outputs=[JobOutput("model", "memory://root/results/model", "upload")],
                      metrics=[MetricsFile("scores", "memory://root/results/metrics.json", "upload")],
                      metrics_outputs=["scores"])
        (tmp_path / "req.json").write_text(json.dumps(req.to_dict()))
        result = subprocess.run([sys.executable, "-c", DRIVER, str(seed), str(tmp_path / "got"),
                                 str(tmp_path / "req.json")], timeout=30)

        assert result.returncode == 0, Path(req.log_url).read_text()
        assert (tmp_path / "got/model/model.txt").read_text() == "ABC"
        assert (tmp_path / "got/metrics.json").read_text() == '{"acc": 0.5}'
        staged = Path(req.workdir, "inputs", "ds")
        assert (staged / "a/b.txt").read_bytes() == b"3456" and (staged / "manifest.json").read_text() == "{}"
        assert "staged abc" in Path(req.log_url).read_text()

    def test_remote_log_url_is_uploaded_at_the_end(self, tmp_path: Path) -> None:
        seed = tmp_path / "seed"
        code_folder(seed, "print('to the remote log')\n")
        req = request(tmp_path, "memory://root/code/abc123")
        req.log_url = "memory://root/results/job.log"
        (tmp_path / "req.json").write_text(json.dumps(req.to_dict()))

        result = subprocess.run([sys.executable, "-c", DRIVER, str(seed), str(tmp_path / "got"),
                                 str(tmp_path / "req.json")], timeout=30)

        assert result.returncode == 0
        assert "to the remote log" in (tmp_path / "got/job.log").read_text()


class TestRunnerExitCodes:
    def test_script_exit_code_is_the_runners(self, tmp_path: Path) -> None:
        code = code_folder(tmp_path, "import sys\nprint('bye')\nsys.exit(3)\n")
        req = request(tmp_path, str(code))
        assert run_runner(req) == 3
        assert "bye" in Path(req.log_url).read_text()

    def test_uncaught_exception_prints_traceback_and_exits_1(self, tmp_path: Path) -> None:
        code = code_folder(tmp_path, "def boom():\n    raise ValueError('bad data')\nboom()\n")
        req = request(tmp_path, str(code))
        assert run_runner(req) == 1
        log = Path(req.log_url).read_text()
        assert "Traceback (most recent call last)" in log and "ValueError: bad data" in log
        assert "mloop/runner" not in log, "the runner's own frames are not the user's business"

    def test_staging_failure_has_its_own_code_and_log_line(self, tmp_path: Path) -> None:
        req = request(tmp_path, str(tmp_path / "no-such-snapshot"))
        assert run_runner(req) == runner.EXIT_STAGE_IN
        assert f"{runner.FAILURE_PREFIX}could not stage the job in: the code snapshot" in Path(req.log_url).read_text()

    def test_command_jobs_run_under_sh(self, tmp_path: Path) -> None:
        code = code_folder(tmp_path, "")
        req = request(tmp_path, str(code), boot_file=None, command="echo args: ; exit 4",
                      parameters=[("n", "1")])
        assert run_runner(req) == 4
        assert "args:" in Path(req.log_url).read_text()


LAUNCHER = """
import json, sys, time
from mloop.executors.base import JobRequest, Resources
from mloop.executors.local import LocalExecutor
req = JobRequest(**{**json.loads(sys.argv[1]), "resources": Resources()})
handle = LocalExecutor().launch(req)
print(handle.ref, flush=True)
time.sleep(60)
"""


class TestLocalExecutorRefs:
    def test_another_process_polls_and_cancels_a_job_by_its_ref(self, tmp_path: Path) -> None:
        code = code_folder(tmp_path, "import time\nprint('started', flush=True)\ntime.sleep(60)\n")
        req = request(tmp_path, str(code))
        data = {k: v for k, v in req.to_dict().items() if k != "resources"}
        launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, json.dumps(data)], stdout=subprocess.PIPE,
                                    text=True)
        try:
            ref = launcher.stdout.readline().strip()  # type: ignore[union-attr]
            assert ref.startswith("local:")
            wait_until(lambda: "started" in Path(req.log_url).read_text(), 15, "the job to start")
            executor = executor_for_ref(ref)
            pid = int(ref.split(":")[1])

            assert isinstance(executor, LocalExecutor) and executor.poll(ref) is None
            assert executor.cancel(ref, grace_seconds=2) is True

            wait_until(lambda: process_gone(pid), 10, "the job to end")
            assert isinstance(executor.poll(ref), JobExit)
            assert executor.cancel(ref) is False
        finally:
            launcher.kill()
            launcher.wait()

    def test_a_reused_pid_is_not_the_job(self, tmp_path: Path) -> None:
        stranger = subprocess.Popen(["sleep", "30"], start_new_session=True)
        try:
            created = psutil.Process(stranger.pid).create_time()
            ref = make_ref(stranger.pid, created - 100)  # a job that had this pid long ago
            executor = LocalExecutor()

            assert executor.poll(ref) is not None
            assert executor.cancel(ref, grace_seconds=0.5) is False
            assert stranger.poll() is None, "a stranger with a reused pid was killed"
            assert executor.poll(make_ref(stranger.pid, created)) is None
        finally:
            stranger.kill()
            stranger.wait()

    def test_timeout_is_enforced_and_never_reads_as_success(self, tmp_path: Path) -> None:
        code = code_folder(tmp_path, "import time\ntime.sleep(60)\n")
        req = request(tmp_path, str(code), timeout_seconds=1.0)
        ended: list[JobExit] = []
        done = threading.Event()

        handle = LocalExecutor().launch(req, lambda h, e: (ended.append(e), done.set()))

        assert done.wait(20), "the timed out job never ended"
        assert ended[0].timed_out and ended[0].exit_code is None
        assert handle.exit is ended[0]

    def test_cancelled_own_job_reports_no_exit_code(self, tmp_path: Path) -> None:
        code = code_folder(tmp_path, "import time\nprint('up', flush=True)\ntime.sleep(60)\n")
        req = request(tmp_path, str(code))
        ended: list[JobExit] = []
        done = threading.Event()
        executor = LocalExecutor()
        handle = executor.launch(req, lambda h, e: (ended.append(e), done.set()))
        wait_until(lambda: "up" in Path(req.log_url).read_text(), 15, "the job to start")

        assert handle.ref is not None and executor.cancel(handle.ref, grace_seconds=2)

        assert done.wait(15)
        assert ended[0].exit_code is None and executor.poll(handle.ref) is ended[0]

    def test_exit_code_arrives_through_on_exit(self, tmp_path: Path) -> None:
        code = code_folder(tmp_path, "raise SystemExit(5)\n")
        done = threading.Event()
        ended: list[JobExit] = []
        LocalExecutor().launch(request(tmp_path, str(code)), lambda h, e: (ended.append(e), done.set()))
        assert done.wait(20) and ended[0].exit_code == 5


class TestRegistry:
    def test_executors_are_found_by_name_and_by_ref(self) -> None:
        assert isinstance(get_executor("local"), LocalExecutor)
        assert isinstance(executor_for_ref("local:1:2.0"), LocalExecutor)
        with pytest.raises(ConfigError, match="unknown executor 'nope'"):
            get_executor("nope")

    def test_a_registered_executor_is_used(self) -> None:
        class Fake(LocalExecutor):
            name = "fake"

        register_executor("fake", Fake)
        assert isinstance(executor_for_ref("fake:whatever"), Fake)

    def test_ray_registers_by_name_and_by_ref_without_connecting(self) -> None:
        pytest.importorskip("ray")
        from mloop.executors.ray import RayExecutor

        assert isinstance(get_executor("ray"), RayExecutor)  # connecting waits for the first job
        assert isinstance(executor_for_ref("ray:run/step/1"), RayExecutor)
