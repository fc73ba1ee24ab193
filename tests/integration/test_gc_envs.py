"""``mloop gc`` and per-job environments: an environment no job has used for ``env_expiry``
(default 30 days) is removed, a fresh one and one a running job is using are kept, and
``--dry-run`` only lists them with their sizes.

Real ``mloop`` processes, real jobs, real environments built by ``uv`` under one home for the
module (``six`` under three spellings that resolve to the same wheel: three environments, one
download). Ageing one is setting its files' times back, as 40 days of disuse would leave them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import Cli, wait_until, write_workflow
from mloop.commands._common import size
from mloop.runner import envs

pytestmark = pytest.mark.timeout(240)

#: The job: which six it sees; with a gate, it waits for that file first (a job in progress).
JOB = """\
import os, sys, time
import six
print("six", six.__version__, "prefix", sys.prefix, flush=True)
gate = os.environ.get("GATE_FILE")
if gate:
    open(gate + ".started", "w").close()
while gate and not os.path.exists(gate):
    time.sleep(0.05)
"""
FLOW = """
    algorithm = wf.BaseAlgorithm(code_dir=str(HERE / "code"), boot_file="job.py")
    workflow = wf.Workflow(name="gcenvs", desc="", steps=[job("train", algorithm=algorithm, outputs=())])
"""
SPELLINGS = {"old": "six==1.16.0", "fresh": "six>=1.16.0,<1.16.1", "busy": "six==1.16.*"}
DAY = 86400.0


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Path]]]:
    """A home with one environment per spelling, each built by a real run: (home, name -> folder)."""
    base = tmp_path_factory.mktemp("gc-envs")
    home = base / ".mloop"
    folders: dict[str, Path] = {}
    for name, requirement in SPELLINGS.items():
        folder = project(base / name, requirement)
        cli = Cli(folder, home)
        cli.ok("run", "flow.py", timeout=150)
        env = cli.show(cli.runs()[0]["id"])["steps"]["train"]["environment"]
        assert env["kind"] == "venv", env
        folders[name] = Path(env["path"])
    yield home, folders


def project(folder: Path, requirement: str) -> Path:
    code = folder / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "job.py").write_text(JOB)
    (code / "requirements.txt").write_text(requirement + "\n")
    write_workflow(folder, FLOW)
    return folder


def age(env: Path, days: float) -> None:
    """Set back every time gc reads as the environment's last use."""
    then = time.time() - days * DAY
    for path in (env.parent / (env.name + envs.USE_SUFFIX), env / envs.MARKER, env):
        if path.exists():
            os.utime(path, (then, then))


def size_of(env: Path) -> int:
    """Bytes of its files (links counted as links), as gc reports them."""
    return sum(os.lstat(os.path.join(folder, name)).st_size for folder, _, names in os.walk(env) for name in names)


def test_gc_removes_only_the_expired_environment_nobody_uses(built: tuple[Path, dict[str, Path]]) -> None:
    home, env = built
    root = home.resolve() / "envs"
    # A job of the "busy" environment in progress: it waits on a gate file.
    busy = Cli(home.parent / "busy", home, {"GATE_FILE": str(home.parent / "busy" / "gate")})
    running = busy.start("run", "flow.py", "--no-cache")  # the job itself, not its cached result
    try:
        wait_until(lambda: (home.parent / "busy" / "gate.started").exists() or running.proc.poll() is not None,
                   120, running.output)
        assert running.proc.poll() is None, running.output()
        age(env["old"], 40)
        age(env["busy"], 40)  # as if the job had started 40 days ago and still ran
        left_over = root / (env["old"].name + ".tmp-99999999")  # a build that died half-way
        left_over.mkdir()
        (left_over / "half").write_bytes(b"x" * 100)
        old_size = size_of(env["old"])

        dry = Cli(home.parent / "old", home).ok("gc", "--dry-run")

        assert f"would remove environment {env['old']} (" in dry.out, str(dry)
        assert f"would remove unfinished environment {left_over} (" in dry.out, str(dry)
        assert f"{env['old']} ({size(old_size)})" in dry.out, str(dry)
        assert str(env["fresh"]) not in dry.out and f"would remove environment {env['busy']}" not in dry.out, str(dry)
        assert f"environment {env['busy']} is in use by a running job; kept" in dry.err, str(dry)
        assert "would free" in dry.err, str(dry)
        for folder in env.values():
            assert (folder / envs.MARKER).is_file(), f"--dry-run touched {folder}"
        assert left_over.is_dir()

        done = Cli(home.parent / "old", home).ok("gc")

        assert f"removed environment {env['old']}" in done.out, str(done)
        assert f"environment {env['busy']} is in use by a running job; kept" in done.err, str(done)
        assert not env["old"].exists() and not left_over.exists()
        assert not (root / (env["old"].name + envs.USE_SUFFIX)).exists()
        assert not [p for p in root.iterdir() if envs.TRASH_INFIX in p.name], "a removal left its trash"
        for name in ("fresh", "busy"):
            assert (env[name] / envs.MARKER).is_file(), f"gc removed the {name} environment"
    finally:
        (home.parent / "busy" / "gate").write_text("open")
        assert running.wait(timeout=60).code == 0, running.output()
        busy.cleanup()

    # Its job has ended: now nothing holds the busy one, and it is 40 days unused.
    age(env["busy"], 40)
    assert f"removed environment {env['busy']}" in Cli(home.parent / "busy", home).ok("gc").out
    assert (env["fresh"] / envs.MARKER).is_file()
    # A run that needs a removed environment builds it again (nothing half-removed looks ready).
    again = Cli(home.parent / "old", home)
    again.ok("run", "flow.py", "--no-cache", timeout=150)
    log = _last_log(again)
    assert "building with uv" in log and "six 1.16.0" in log, log


def test_env_expiry_is_a_setting(built: tuple[Path, dict[str, Path]]) -> None:
    home, env = built
    cli = Cli(home.parent / "fresh", home)
    assert str(env["fresh"]) not in cli.ok("gc", "--dry-run").out
    listed = cli.ok("gc", "--dry-run", MLOOP_ENV_EXPIRY="0s").out
    assert f"would remove environment {env['fresh']}" in listed, listed
    assert str(env["fresh"]) not in cli.ok("gc", MLOOP_ENV_EXPIRY="never").out
    assert (env["fresh"] / envs.MARKER).is_file()
    bad = cli("gc", MLOOP_ENV_EXPIRY="soon")
    assert bad.code != 0 and "env_expiry" in bad.text, str(bad)


def test_a_job_holds_its_environment_until_its_process_ends(tmp_path: Path) -> None:
    """The hold outlives the runner's own checks: a process that took it (as a runner does in
    ensure) keeps gc off the environment until it exits, however old the environment looks."""
    root = tmp_path / "envs"
    key = "0123456789abcdef"
    (root / key).mkdir(parents=True)
    (root / key / envs.MARKER).write_text("{}")
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from mloop.runner import envs; "
                               f"envs.hold({str(root)!r}, {key!r}); print('held', flush=True); sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        age(root / key, 400)
        found, notes = envs.collect(str(root), 30 * DAY)
        assert found == [] and notes and "in use" in notes[0], (found, notes)
        assert (root / key / envs.MARKER).is_file()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    found, _ = envs.collect(str(root), 30 * DAY)
    assert [(kind, path) for kind, path, _ in found] == [("environment", str(root / key))]
    assert not (root / key).exists()


def _last_log(cli: Cli) -> str:
    runs = cli("runs", "--json")
    if runs.code != 0 or not runs.out.strip().startswith("["):
        return ""
    found = json.loads(runs.out)
    if not found:
        return ""
    return cli("logs", found[0]["id"], "train").out
