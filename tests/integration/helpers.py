"""Builders for the engine and CLI integration tests: workflow files, job scripts, the
``mloop`` command in a subprocess, an in-process backend, and wait loops with deadlines.

Nothing here stands in for a part of mloop: workflows are real Python files, jobs are real
processes, the store is a real SQLite file (or the real PostgreSQL).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import psutil
import pytest

from mloop.cli import load_workflow
from mloop.config import Settings
from mloop.context import Context
from mloop.runs import create_run, execute_run, open_backend, retry_run
from mloop.store.base import MetricRecord, RunRecord, StepRecord

PYTHON = sys.executable
MLOOP = str(Path(sys.executable).with_name("mloop"))

# -- workflow files --------------------------------------------------------------------------------

#: Put in front of every test workflow. ``job(...)`` builds a JobStep running ``<code>/<script>``
#: with one OBS output folder per name in ``outputs`` (under ``out/<run id>/<step>/<output>/``).
WORKFLOW_HEADER = '''\
from pathlib import Path

from mloop import workflow as wf

HERE = Path(__file__).resolve().parent
work = wf.data.OutputStorage(name="work", default=str(HERE / "out") + "/")


def resources(flavor="cpu.small"):
    return wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": flavor}))


def job(name, script="job.py", code="code", params=None, inputs=None, outputs=("out",), metric_file=None,
        policy=None, depend=None, command=None, flavor="cpu.small", algorithm=None, metrics_files=None):
    parameters = [wf.AlgorithmParameters(name=k, value=v) for k, v in (params or {}).items()]
    algorithm = algorithm or wf.BaseAlgorithm(code_dir=str(HERE / code), boot_file=None if command else script,
                                              command=command, parameters=parameters)
    outs = [wf.steps.JobOutput(name=o, obs_config=wf.data.OBSOutputConfig(
                obs_path=work.join(f"{name}/{o}/"), metric_file=metric_file if i == 0 else None))
            for i, o in enumerate(outputs)]
    if metrics_files:
        outs.append(wf.steps.JobOutput(name="metrics", metrics_config=wf.data.MetricsConfig(
            metric_files=[work.join(f, create_dir=False) for f in metrics_files])))
    ins = [wf.steps.JobInput(name=k, data=v) for k, v in (inputs or {}).items()]
    return wf.steps.JobStep(name=name, algorithm=algorithm, inputs=ins or None, outputs=outs or None,
                            spec=resources(flavor), policy=policy, depend_steps=depend)


def skip_if_true(placeholder_name, default=False):
    flag = wf.Placeholder(name=placeholder_name, placeholder_type=wf.PlaceholderType.BOOL, default=default)
    return wf.steps.StepPolicy(skip_conditions=wf.steps.Condition(wf.steps.ConditionTypeEnum.EQ, flag, True))

'''


def write_workflow(folder: Path, body: str, name: str = "flow.py") -> Path:
    """A workflow file: :data:`WORKFLOW_HEADER` followed by ``body`` (which assigns ``workflow``)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(WORKFLOW_HEADER + "\n" + textwrap.dedent(body))
    return path


# -- data ------------------------------------------------------------------------------------------

#: The images :func:`pets` leaves outside any class folder (so unlabeled).
UNLABELED = ["u0.png", "u1.png", "u2.png", "u3.png"]


def pets(folder: Path) -> Path:
    """3 cats and 3 dogs in class folders, and the :data:`UNLABELED` images with no class folder."""
    from PIL import Image

    for i in range(3):
        for k, label in enumerate(("cat", "dog")):
            path = folder / label / f"{label}{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (i * 20, 60 + k * 80, 200)).save(path)
    for i, name in enumerate(UNLABELED):
        Image.new("RGB", (8, 8), (i * 40, 10, 20)).save(folder / name)
    return folder


# -- job scripts -----------------------------------------------------------------------------------

JOB_HEADER = '''\
import argparse, json, os, subprocess, sys, time

_parser = argparse.ArgumentParser()
for _name in {args!r}:
    _parser.add_argument("--" + _name)
args, unknown = _parser.parse_known_args()


def write_metrics(folder, file="metrics.json", **values):
    os.makedirs(folder, exist_ok=True)
    entries = [{{"key": k, "title": k, "type": "float", "data": {{"value": v}}}} for k, v in values.items()]
    with open(os.path.join(folder, file), "w") as fh:
        json.dump(entries, fh)


def wait_for_file(path, timeout=60):
    end = time.time() + timeout
    while not os.path.exists(path):
        if time.time() > end:
            sys.exit("gave up waiting for " + path)
        time.sleep(0.05)

'''


def job_script(body: str, args: Iterable[str] = ("out",)) -> str:
    """A job: argparse ``parse_known_args`` over ``--<arg>`` for each of ``args``, then ``body``."""
    return JOB_HEADER.format(args=tuple(args)) + textwrap.dedent(body)


def write_job(code_dir: Path, body: str, args: Iterable[str] = ("out",), name: str = "job.py") -> Path:
    code_dir.mkdir(parents=True, exist_ok=True)
    path = code_dir / name
    path.write_text(job_script(body, args))
    return path


# -- waiting ---------------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], Any], timeout: float, what: str | Callable[[], str],
               interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout`` s.

    ``what`` names what is awaited; a callable is asked only on failure (e.g. for output so far).
    """
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what() if callable(what) else what}")
        time.sleep(interval)


def process_gone(pid: int) -> bool:
    """True when ``pid`` does not run any more (a zombie waiting to be reaped counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def kill_if_alive(pids: Iterable[int]) -> None:
    """Cleanup after a failed test: SIGKILL processes the test started and may have left."""
    for pid in pids:
        try:
            psutil.Process(pid).kill()
        except psutil.Error:
            pass


# -- the mloop command -----------------------------------------------------------------------------


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    def __str__(self) -> str:  # what an assertion shows
        return f"exit {self.code}\n--- stdout ---\n{self.out}\n--- stderr ---\n{self.err}"


@dataclass
class Background:
    """A ``mloop`` process started with :meth:`Cli.start`; output goes to files (no pipe to fill)."""

    proc: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self, timeout: float) -> Result:
        code = self.proc.wait(timeout=timeout)
        return Result(code, self.out_path.read_text(), self.err_path.read_text())

    def output(self) -> str:
        return self.out_path.read_text() + self.err_path.read_text()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


@dataclass
class Cli:
    """``mloop`` run as a real subprocess in ``cwd`` with its own ``MLOOP_HOME``."""

    cwd: Path
    home: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    started: list[Background] = field(default_factory=list)

    def env(self, **more: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_")}
        # Wide, colourless output, so messages are not wrapped or split by escape codes.
        env.update(MLOOP_HOME=str(self.home), COLUMNS="250", NO_COLOR="1", TERM="dumb", PYTHONUNBUFFERED="1")
        env.update(self.extra_env)
        env.update(more)
        return env

    def __call__(self, *args: str, timeout: float = 90, **env: str) -> Result:
        proc = subprocess.run([MLOOP, *args], cwd=self.cwd, env=self.env(**env), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def ok(self, *args: str, timeout: float = 90, **env: str) -> Result:
        result = self(*args, timeout=timeout, **env)
        assert result.code == 0, str(result)
        return result

    def json(self, *args: str, timeout: float = 90) -> Any:
        return json.loads(self.ok(*args, "--json", timeout=timeout).out)

    def runs(self) -> list[dict[str, Any]]:
        return self.json("runs")

    def show(self, run_id: str) -> dict[str, Any]:
        """``mloop show RUN --json`` with ``steps`` turned into a dict by step name."""
        data = self.json("show", run_id)
        data["steps"] = {s["name"]: s for s in data["steps"]}
        return data

    def start(self, *args: str, **env: str) -> Background:
        n = len(self.started)
        out_path, err_path = self.cwd / f"mloop-{n}.out", self.cwd / f"mloop-{n}.err"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen([MLOOP, *args], cwd=self.cwd, env=self.env(**env), stdout=out, stderr=err,
                                    stdin=subprocess.DEVNULL)
        bg = Background(proc, out_path, err_path)
        self.started.append(bg)
        return bg

    def cleanup(self) -> None:
        for bg in self.started:
            bg.kill()


# -- mloop in this process -------------------------------------------------------------------------


@dataclass
class Finished:
    """A run and its steps as the store recorded them."""

    run: RunRecord
    steps: dict[str, StepRecord]
    metrics: list[MetricRecord]

    @property
    def status(self) -> str:
        return self.run.status

    def statuses(self) -> dict[str, str]:
        return {name: s.status for name, s in self.steps.items()}

    def log(self, step: str) -> str:
        path = self.steps[step].log_path
        assert path, f"step {step} has no log"
        return Path(path).read_text()

    def metric(self, step: str, key: str) -> float | None:
        found = [m.value for m in self.metrics if m.step_name == step and m.key == key]
        assert found, f"step {step} recorded no metric {key}: {self.metrics}"
        return found[0]

    def why(self) -> str:
        """What to show when an assertion about the run fails."""
        lines = [f"run {self.run.status}: {self.run.message}"]
        for s in self.steps.values():
            lines.append(f"  {s.name}: {s.status} attempt={s.attempt} {s.message or ''}")
            if s.status == "failed" and s.log_path and os.path.exists(s.log_path):
                lines.extend("    | " + line for line in Path(s.log_path).read_text().splitlines()[-10:])
        return "\n".join(lines)


class Embedded:
    """The embedded backend of one test: ``open_backend(Settings(home=...))`` + create/execute/retry."""

    def __init__(self, home: Path, database_url: str | None = None, **settings: Any) -> None:
        self.settings = Settings(home=home, database_url=database_url, **settings)
        self.backend: Context = open_backend(self.settings)

    @property
    def store(self) -> Any:
        return self.backend.store

    def create(self, workflow_file: Path, values: dict[str, Any] | None = None, **kwargs: Any) -> RunRecord:
        return create_run(self.backend, load_workflow(str(workflow_file)), values, **kwargs)

    def run(self, workflow_file: Path, values: dict[str, Any] | None = None, **kwargs: Any) -> Finished:
        run = self.create(workflow_file, values, **kwargs)
        execute_run(self.backend, run.id)
        return self.result(run.id)

    def retry(self, run_id: str) -> Finished:
        run = retry_run(self.backend, run_id)
        execute_run(self.backend, run.id)
        return self.result(run.id)

    def result(self, run_id: str) -> Finished:
        run = self.store.get_run(run_id)
        steps = {s.name: s for s in self.store.list_steps(run.id)}
        return Finished(run, steps, self.store.list_metrics(run.id))

    def close(self) -> None:
        self.backend.close()


# -- fixtures (test modules import them by name) ---------------------------------------------------

@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str | None:
    """The metadata database of an mloop test: None (the default SQLite file under the home).

    A test runs on both databases with
    ``@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)``;
    the PostgreSQL case is skipped when the server is unreachable.
    """
    kind = getattr(request, "param", "sqlite")
    if kind == "sqlite":
        return None
    if kind == "postgresql":
        return request.getfixturevalue("pg_url")
    raise ValueError(f"unknown database kind {kind!r}")


#: Run a test on SQLite and on PostgreSQL (skipped when the server is unreachable).
BOTH_DATABASES = pytest.mark.parametrize(
    "database_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str | None) -> Any:
    """``mloop`` subprocesses working in ``tmp_path`` with home ``tmp_path/.mloop`` (and the
    PostgreSQL database where the test asks for it)."""
    monkeypatch.chdir(tmp_path)
    runner = Cli(tmp_path, tmp_path / ".mloop", {"MLOOP_DATABASE_URL": database_url} if database_url else {})
    yield runner
    runner.cleanup()


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str | None) -> Any:
    """The embedded backend (``tmp_path/.mloop``) on SQLite, or on PostgreSQL where the test asks."""
    monkeypatch.chdir(tmp_path)  # no stray mloop.toml; relative paths land in tmp_path
    backend = Embedded(tmp_path / ".mloop", database_url)
    yield backend
    backend.close()
