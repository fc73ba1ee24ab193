"""Per-job environments: a job whose code folder holds a requirements.txt (or whose JobEngine the
settings map to requirements) runs in a virtual environment of its own, built with the real
``uv`` from the real index on first use, cached under the home and reused after.

One home for the whole module: the ``six==1.16.0`` environment is built once (the engine
itself has six 1.17.0, so a job printing 1.16.0 proves it ran in its own environment) and the
later tests reuse it, as users' runs do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import Cli, Embedded, Finished, process_gone, wait_until, write_workflow
from mloop.runner import envs

pytestmark = pytest.mark.timeout(180)

SIX = "six==1.16.0"
#: The job: which six it sees, where its interpreter lives, and that mloop is importable there.
JOB = """\
import os, sys
import six
from mloop.metrics import MetricLogger
print("six", six.__version__)
print("prefix", sys.prefix)
print("metric logger", MetricLogger.__module__)
print("step", os.environ["MLOOP_STEP_NAME"], "args", " ".join(sys.argv[1:]))
"""
FLOW = """
    n = wf.Placeholder(name="n", placeholder_type=wf.PlaceholderType.INT, default=1)
    algorithm = wf.BaseAlgorithm(code_dir=str(HERE / {code!r}), boot_file="job.py", engine={engine},
                                 parameters=[wf.AlgorithmParameters(name="n", value=n)])
    workflow = wf.Workflow(name="envs", desc="per-job environments",
                           steps=[job("train", algorithm=algorithm, outputs=())])
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("envs-home") / ".mloop"


def project(folder: Path, code: str = "code", *, requirements: str | None = SIX, apt: str | None = None,
            job: str = JOB, engine: str = "None") -> Path:
    """A code folder (job.py, requirements.txt, apt-pkgs.txt) and a one-job workflow using it."""
    code_dir = folder / code
    code_dir.mkdir(parents=True, exist_ok=True)
    (code_dir / "job.py").write_text(job)
    if requirements is not None:
        (code_dir / "requirements.txt").write_text(requirements + "\n")
    if apt is not None:
        (code_dir / "apt-pkgs.txt").write_text(apt + "\n")
    return write_workflow(folder, FLOW.format(code=code, engine=engine))


def run(home: Path, flow: Path, n: int = 1, **settings: object) -> Finished:
    backend = Embedded(home, **settings)
    try:
        return backend.run(flow, {"n": n})
    finally:
        backend.close()


class TestVenv:
    def test_first_run_builds_the_environment_and_a_second_reuses_it(self, home: Path, tmp_path: Path) -> None:
        flow = project(tmp_path)
        first = run(home, flow, 1)
        assert first.status == "succeeded", first.why()
        log = first.log("train")
        env = first.steps["train"].environment
        assert env is not None and env["kind"] == "venv", env
        path = Path(env["path"])
        assert env["key"] == envs.compute_key([SIX], [], None) and path == home.resolve() / "envs" / env["key"]
        assert "building with uv" in log and "+ six==1.16.0" in log, log
        assert "six 1.16.0" in log and f"prefix {path}" in log, log
        assert "metric logger mloop.metrics.logger" in log and "step train args --n=1" in log, log
        marker = os.stat(path / envs.MARKER)

        second = run(home, flow, 2)
        assert second.status == "succeeded", second.why()
        log = second.log("train")
        assert f"environment {env['key']} reused" in log and "building" not in log and "uv:" not in log, log
        assert "six 1.16.0" in log and "args --n=2" in log, log
        again = os.stat(path / envs.MARKER)
        assert (again.st_ino, again.st_mtime_ns) == (marker.st_ino, marker.st_mtime_ns), "rebuilt"
        assert second.steps["train"].environment == env
        assert not [p for p in (home / "envs").iterdir() if ".tmp-" in p.name], "a temporary build was left"

    def test_a_job_engine_the_settings_map_gets_that_environment(self, home: Path, tmp_path: Path) -> None:
        flow = project(tmp_path, requirements=None,
                       engine="wf.steps.JobEngine(engine_name='six-engine', engine_version='1')")
        finished = run(home, flow, engines={"six-engine==1": [SIX]})
        assert finished.status == "succeeded", finished.why()
        assert finished.steps["train"].environment["key"] == envs.compute_key([SIX], [], None)
        assert "six 1.16.0" in finished.log("train")

    def test_requirements_the_engine_already_has_need_no_environment(self, home: Path, tmp_path: Path) -> None:
        # Like the MNIST example listing torch: the engine has it, nothing is downloaded.
        flow = project(tmp_path, requirements="torch\nsix>=1.0", job="import sys\nprint('prefix', sys.prefix)\n")
        finished = run(home, flow)
        assert finished.status == "succeeded", finished.why()
        assert finished.steps["train"].environment["kind"] == "engine"
        log = finished.log("train")
        assert f"prefix {sys.prefix}" in log and "building" not in log, log

    def test_a_bad_requirement_fails_the_step_with_uvs_message(self, home: Path, tmp_path: Path) -> None:
        flow = project(tmp_path, requirements="mloop-surely-not-a-package==0.0.1")
        finished = run(home, flow)
        assert finished.status == "failed", finished.why()
        message = finished.steps["train"].message or ""
        assert "could not make the job's environment" in message and "uv pip install failed" in message, message
        assert "mloop-surely-not-a-package was not found in the package registry" in message, message
        key = finished.steps["train"].environment["key"]
        assert not (home / "envs" / key).exists()
        assert not [p for p in (home / "envs").iterdir() if p.name.startswith(f"{key}.tmp-")]


class TestStop:
    #: Reports its pid and interpreter, then waits until it is killed.
    WAITER = """\
import os, sys, threading, six
with open(os.path.join(os.environ["PID_DIR"], "job.pid.tmp"), "w") as fh:
    fh.write(f"{os.getpid()} {sys.prefix}")
os.replace(os.path.join(os.environ["PID_DIR"], "job.pid.tmp"), os.path.join(os.environ["PID_DIR"], "job.pid"))
threading.Event().wait()
"""

    def test_stop_ends_the_job_running_in_its_environment(self, home: Path, tmp_path: Path) -> None:
        flow = project(tmp_path, job=self.WAITER)
        cli = Cli(tmp_path, home, {"PID_DIR": str(tmp_path)})
        engine = cli.start("run", str(flow))
        try:
            wait_until(lambda: (tmp_path / "job.pid").exists() or engine.proc.poll() is not None, 120,
                       lambda: f"the job to start:\n{engine.output()}")
            pid_text, prefix = (tmp_path / "job.pid").read_text().split(" ", 1)
            pid = int(pid_text)
            assert prefix.startswith(str(home.resolve() / "envs")), prefix
            run_id = cli.runs()[0]["id"]
            assert cli("stop", run_id).code == 0
            wait_until(lambda: process_gone(pid), 30, "the job's process to end")
            assert engine.wait(timeout=30).code != 0
            assert cli.show(run_id)["steps"]["train"]["status"] == "stopped"
        finally:
            cli.cleanup()


class TestConcurrentBuilds:
    BUILD = """\
import json, sys
from mloop.runner import envs
print("ready", flush=True)
sys.stdin.read()  # the test's starting gun: both processes go at once
path, reused = envs.ensure({"kind": "venv", "requirements": ["tomli==2.0.1"], "root": sys.argv[1],
                            "find_links": [], "index_url": None})
print(json.dumps({"path": path, "reused": reused}))
"""

    def test_two_processes_needing_the_same_new_environment_build_it_once(self, tmp_path: Path) -> None:
        root = str(tmp_path / "envs")
        procs = [subprocess.Popen([sys.executable, "-c", self.BUILD, root], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
        for proc in procs:  # both have imported everything and wait for the gun
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.close()
        outputs = [proc.stdout.read() for proc in procs]  # type: ignore[union-attr]
        for proc in procs:
            proc.wait(timeout=150)
        assert [p.returncode for p in procs] == [0, 0], outputs
        results = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
        assert sorted(r["reused"] for r in results) == [False, True], outputs
        assert results[0]["path"] == results[1]["path"]
        waited = outputs[[r["reused"] for r in results].index(True)]
        assert "being built by another job; waiting" in waited or "reused, built by another job" in waited, waited
        assert sum("building with uv" in out for out in outputs) == 1, outputs
        version = subprocess.run([envs.interpreter(results[0]["path"]), "-c", "import tomli; print(tomli.__file__)"],
                                 capture_output=True, text=True, check=True).stdout
        assert version.startswith(results[0]["path"]), version


class TestAptPackages:
    def test_missing_packages_are_refused_unless_allowed(self, home: Path, tmp_path: Path) -> None:
        flow = project(tmp_path, requirements=None, apt="coreutils\nmloop-no-such-deb",
                       job="print('ran')\n")
        finished = run(home, flow)
        assert finished.status == "failed", finished.why()
        message = finished.steps["train"].message or ""
        assert "mloop-no-such-deb" in message and "allow_apt_install" in message, message
        assert "coreutils" not in message.split("needs", 1)[1].split("not installed")[0], message
        log = finished.log("train")
        assert "apt-pkgs.txt: 2 package(s): coreutils, mloop-no-such-deb; missing: mloop-no-such-deb" in log, log
        assert "ran" not in log.splitlines()

    @pytest.mark.parametrize("line", ["-oDPkg::Pre-Invoke::=touch /tmp/owned", "--allow-unauthenticated",
                                      "Coreutils", "core utils", "../coreutils", "coreutils;id"])
    def test_a_line_that_is_not_a_package_name_is_refused_before_apt_runs(self, home: Path, tmp_path: Path,
                                                                          line: str) -> None:
        flow = project(tmp_path, requirements=None, apt=f"coreutils\n{line}", job="print('ran')\n")
        finished = run(home, flow, allow_apt_install=True)
        assert finished.status == "failed", finished.why()
        log = finished.log("train")
        assert "is not a Debian package name" in log and "ran" not in log.splitlines(), log
        assert "package(s)" not in log  # refused before dpkg-query or apt-get saw any of it

    def test_installed_packages_pass_the_check(self, home: Path, tmp_path: Path) -> None:
        flow = project(tmp_path, requirements=None, apt="coreutils", job="print('ran')\n")
        finished = run(home, flow)
        assert finished.status == "succeeded", finished.why()
        assert finished.steps["train"].environment == {"kind": "system", "requirements": envs.requirements_digest([]),
                                                       "apt": ["coreutils"]}
        log = finished.log("train")
        assert "apt-pkgs.txt: 1 package(s): coreutils; all installed" in log and "ran" in log.splitlines(), log


class TestImages:
    IMAGE = "swr.cn-north-4.myhuaweicloud.com/team/trainer:1.0"

    def test_an_image_without_a_container_runtime_is_refused_before_the_run_starts(self, tmp_path: Path) -> None:
        flow = project(tmp_path, requirements=None, job="print('ran')\n",
                       engine=f"wf.steps.JobEngine(engine_name='pytorch', image_url={self.IMAGE!r})")
        cli = Cli(tmp_path, tmp_path / ".mloop")
        # PATH without docker and podman (this machine's docker client sits in /usr/local/bin).
        path = os.pathsep.join(p for p in (os.path.dirname(sys.executable), "/usr/bin", "/bin")
                               if not any(os.path.exists(os.path.join(p, r)) for r in ("docker", "podman")))
        result = cli("run", str(flow), PATH=path)
        assert result.code != 0, str(result)
        assert "neither docker nor podman is on PATH" in result.text and self.IMAGE in result.text, str(result)
        shown = cli.json("runs")
        steps = cli.show(shown[0]["id"])["steps"] if shown else {}
        assert not steps or steps["train"].get("pid") is None, steps  # no job process ever started

    def test_with_a_runtime_the_job_runs_in_the_image_with_its_folder_mounted(self) -> None:
        # Variables by name only: the runtime takes their values from its own environment, so
        # no token is on a command line (ps shows command lines to every user).
        argv = envs.container_argv("docker", self.IMAGE, [sys.executable, "/w/job/code/job.py", "--n=1"],
                                   {"MLOOP_RUN_ID": "r1", "HOME": "/root", "PYTHONUNBUFFERED": "1"},
                                   "/w/job", "/w/job/code", gpu=True)
        assert argv == ["docker", "run", "--rm", "--init", "-v", "/w/job:/w/job", "-w", "/w/job/code",
                        "--gpus", "all", "-e", "MLOOP_RUN_ID", "-e", "PYTHONUNBUFFERED",
                        self.IMAGE, "python", "/w/job/code/job.py", "--n=1"]


class TestTorch:
    def test_a_torch_requirement_resolves_to_the_local_cpu_build(self) -> None:
        wheels = [n for n in os.listdir("/opt/wheels") if n.startswith("torch-")] \
            if os.path.isdir("/opt/wheels") else []
        if not wheels:
            pytest.skip("no local torch wheel in /opt/wheels on this machine")
        pinned = envs.local_wheels(["torch==2.13.0", "six==1.16.0", "torch==1.0.0"], ["/opt/wheels"])
        assert pinned[0] == f"torch @ file:///opt/wheels/{wheels[0]}" and pinned[1:] == ["six==1.16.0",
                                                                                          "torch==1.0.0"]

    def test_uv_resolves_the_pinned_torch_without_cuda_packages(self, tmp_path: Path) -> None:
        pinned = envs.local_wheels(["torch==2.13.0"], ["/opt/wheels"])
        if not pinned[0].startswith("torch @ file://"):
            pytest.skip("no local torch 2.13.0 wheel in /opt/wheels on this machine")
        (tmp_path / "requirements.txt").write_text(pinned[0] + "\n")
        resolved = subprocess.run([envs._uv(), "pip", "compile", "--no-header", "--find-links", "/opt/wheels",
                                   str(tmp_path / "requirements.txt")], capture_output=True, text=True, timeout=120)
        assert resolved.returncode == 0, resolved.stderr
        assert "torch @ file:///opt/wheels/" in resolved.stdout and "nvidia" not in resolved.stdout, resolved.stdout
