"""Client mode: the same ``mloop`` commands, run through both doors — embedded (the run happens in
the command's process) and a real ``mloop server`` process on loopback (the command uploads the
code, the server runs it) — with the same outcomes, output and exit codes."""

from __future__ import annotations

import json
import re
import stat
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helpers import Cli, wait_until, write_job, write_workflow
from test_server_api import serve_home

pytestmark = pytest.mark.timeout(240)

JOB = """
print("hello from", os.environ["MLOOP_STEP_NAME"], "attempt", os.environ["MLOOP_ATTEMPT"], flush=True)
if args.fail == "yes":
    print("about to fail", flush=True)
    sys.exit(3)
if args.gate:
    wait_for_file(args.gate, timeout=120)
"""

FLOW = """
    fail = wf.Placeholder(name="fail", placeholder_type=wf.PlaceholderType.STR, default="no")
    gate = wf.Placeholder(name="gate", placeholder_type=wf.PlaceholderType.STR, default="")
    prep = job("prep", code="code")
    train = job("train", code="code", params={"fail": fail, "gate": gate}, depend=[prep])
    workflow = wf.Workflow(name="parity", desc="", steps=[prep, train])
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    yield from serve_home(tmp_path_factory.mktemp("server-home"), "--concurrency", "2")


def door_cli(door: str, folder: Path, server: tuple[str, str, Path]) -> Cli:
    write_job(folder / "code", JOB, args=("out", "fail", "gate"))
    write_workflow(folder, FLOW)
    env = {"MLOOP_SERVER_URL": server[0], "MLOOP_TOKEN": server[1]} if door == "client" else {}
    return Cli(folder, folder / ".mloop", extra_env={"XDG_CONFIG_HOME": str(folder / "config"), **env})


@pytest.mark.parametrize("door", ["embedded", "client"])
def test_a_run_that_succeeds_reads_the_same_through_both_doors(door: str, tmp_path: Path,
                                                              server: tuple[str, str, Path]) -> None:
    cli = door_cli(door, tmp_path, server)
    done = cli("run", "flow.py")
    assert done.code == 0, str(done)
    assert "parity" in done.out and "succeeded" in done.out
    run_id = cli.ok("run", "flow.py", "-q").out.strip().splitlines()[0]
    listed = cli.ok("runs", "--json").out
    assert run_id in listed
    shown = cli.ok("show", run_id).out
    assert "prep" in shown and "train" in shown and "succeeded" in shown
    assert "hello from train attempt 1" in cli.ok("logs", run_id, "train").out
    # Client mode ran nothing here: this folder's home holds no database.
    assert (tmp_path / ".mloop" / "mloop.db").exists() == (door == "embedded")


@pytest.mark.parametrize("door", ["embedded", "client"])
def test_a_failed_run_exits_the_same_with_the_log_tail(door: str, tmp_path: Path,
                                                       server: tuple[str, str, Path]) -> None:
    cli = door_cli(door, tmp_path, server)
    failed = cli("run", "flow.py", "-p", "fail=yes")
    embedded_code = 1  # StepFailed's exit code, as tests/integration/test_cli.py checks it
    assert failed.code == embedded_code, str(failed)
    assert "step 'train' failed; last lines of its log:" in failed.out + failed.err
    assert "about to fail" in failed.out + failed.err
    bad_value = cli("run", "flow.py", "-p", "nosuch=1")
    assert bad_value.code == 2 and "nosuch" in bad_value.out + bad_value.err


@pytest.mark.parametrize("door", ["embedded", "client"])
def test_stop_and_retry_through_both_doors(door: str, tmp_path: Path, server: tuple[str, str, Path]) -> None:
    cli = door_cli(door, tmp_path, server)
    gate = tmp_path / "gate"
    runner = cli.start("run", "flow.py", "-q", "-p", f"gate={gate}")
    run_id = wait_until(lambda: runner.out_path.read_text().strip().splitlines()[0]
                        if runner.out_path.read_text().strip() else None, 60, runner.output)
    wait_until(lambda: _train_running(cli, run_id), 60, lambda: cli("show", run_id).out)
    cli.ok("stop", run_id)
    assert runner.proc.wait(timeout=60) != 0
    gate.write_text("open")
    retried = cli("retry", run_id)
    assert retried.code == 0, str(retried)
    assert "succeeded" in cli.ok("show", run_id).out


def _train_running(cli: Cli, run_id: str) -> bool:
    return any(re.search(r"\btrain\b.*\brunning\b", line) for line in cli.ok("show", run_id).out.splitlines())


def test_only_changed_code_travels(tmp_path: Path, server: tuple[str, str, Path]) -> None:
    cli = door_cli("client", tmp_path, server)
    blobs = server[2] / "code-store" / "blobs"
    cli.ok("release", "flow.py")
    before = sorted(p.name for p in blobs.rglob("*") if p.is_file())
    cli.ok("release", "flow.py")
    assert sorted(p.name for p in blobs.rglob("*") if p.is_file()) == before  # nothing new sent
    (tmp_path / "code" / "extra.py").write_text("X = 1\n")
    cli.ok("release", "flow.py")
    after = sorted(p.name for p in blobs.rglob("*") if p.is_file())
    assert len(after) == len(before) + 1


def test_a_bad_token_or_server_is_a_clear_error(tmp_path: Path, server: tuple[str, str, Path]) -> None:
    cli = door_cli("client", tmp_path, server)
    wrong = cli("runs", MLOOP_TOKEN="mlp_0000_nope")
    assert wrong.code == 4 and "unknown or revoked" in wrong.err
    gone = cli("runs", MLOOP_SERVER_URL="http://127.0.0.1:9")
    assert gone.code == 5 and "cannot reach the mloop server" in gone.err


def test_the_server_refuses_code_it_did_not_build(server: tuple[str, str, Path], tmp_path: Path) -> None:
    url, admin, _ = server
    spec = {"name": "sneaky", "steps": [{"name": "s", "type": "job", "properties": {"kind": "job", "algorithm": {
        "code_dir": "/etc", "boot_file": "passwd"}}}]}
    with httpx.Client(base_url=url + "/api/v1", headers={"Authorization": f"Bearer {admin}"}) as client:
        refused = client.post("/releases", json={"spec": spec})
        assert refused.status_code in (400, 422), refused.text
        for bad in ("../x", "/abs", "a/../../b", "a//b", "./a"):
            answer = client.post("/code/trees", json={"files": {bad: {"digest": "0" * 64}}})
            assert answer.status_code == 400 and "bad file path" in answer.json()["message"], (bad, answer.text)
        wrong = client.put("/code/blobs/" + "0" * 64, content=b"not those bytes")
        assert wrong.status_code == 400 and "do not match" in wrong.json()["message"]


def test_the_sdk_verbs_and_login_use_the_server(tmp_path: Path, server: tuple[str, str, Path]) -> None:
    url, admin, _ = server
    cli = door_cli("embedded", tmp_path, server)  # no server in the environment: login provides it
    logged = cli("login", url, "--token", admin)
    assert logged.code == 0, str(logged)
    saved = tmp_path / "config" / "mloop" / "credentials.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600 and json.loads(saved.read_text())["server_url"] == url
    script = tmp_path / "sdk.py"
    script.write_text(textwrap.dedent("""
        import runpy
        workflow = runpy.run_path("flow.py")["workflow"]
        print("RUN", workflow.run(quiet=True))
    """))
    result = _python(cli, script)
    run_id = next(line.split()[1] for line in result.splitlines() if line.startswith("RUN "))
    with httpx.Client(base_url=url + "/api/v1", headers={"Authorization": f"Bearer {admin}"}) as client:
        assert client.get(f"/runs/{run_id}").json()["status"] == "succeeded"
    assert not (tmp_path / ".mloop" / "mloop.db").exists()
    assert "logged out" in cli.ok("logout").out and not saved.exists()


def _python(cli: Cli, script: Path) -> str:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(script)], cwd=cli.cwd, env=cli.env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout
