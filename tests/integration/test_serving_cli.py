"""``mloop serve``: a registered model (or a folder) served in the foreground until Ctrl-C."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from serving_helpers import sklearn_model, worker_env

MLOOP = str(Path(sys.executable).with_name("mloop"))


def _serve(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([MLOOP, "serve", *args, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"at (http://127\.0\.0\.1:\d+)", line)
        if match:
            return proc, match.group(1)
    proc.kill()
    raise AssertionError("mloop serve printed no URL:\n" + "".join(lines))


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=30)
    return rest


@pytest.mark.parametrize("registered", [False, True], ids=["folder", "registry"])
def test_serve_prints_the_url_and_an_example_and_answers(tmp_path: Path, registered: bool) -> None:
    model = sklearn_model(tmp_path / "model")
    env = worker_env()
    env["MLOOP_HOME"] = str(tmp_path / "home")
    if registered:
        reg = subprocess.run([MLOOP, "model", "register", "iris", "--from", str(tmp_path / "model")], env=env,
                             capture_output=True, text=True, timeout=60)
        assert reg.returncode == 0, reg.stdout + reg.stderr
        args = ["iris:1"]
    else:
        args = ["--path", str(tmp_path / "model")]
    proc, url = _serve(args, env)
    try:
        x = [[0.1, 0.2, 0.3, 0.4]]
        r = httpx.post(f"{url}/predict", json={"inputs": x}, timeout=30)
        info = httpx.get(f"{url}/info").json()
    finally:
        rest = _stop(proc)
    assert r.status_code == 200 and r.json()["predictions"] == model.predict(x).tolist()
    assert info["model_name"] == ("iris" if registered else "model")
    assert info["model_version"] == ("1" if registered else "")
    assert proc.returncode == 0, rest


def test_serve_needs_exactly_one_model(tmp_path: Path) -> None:
    env = worker_env()
    env["MLOOP_HOME"] = str(tmp_path / "home")
    r = subprocess.run([MLOOP, "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "--path" in (r.stdout + r.stderr)
