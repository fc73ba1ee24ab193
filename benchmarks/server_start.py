"""``mloop server``: seconds from the command to the first answered health check.

Each trial starts the server on a fresh home (first start: the schema is created and the admin
token made) and again on the same home (a restart), and, when ``benchmarks/.venv-mlflow``
holds MLflow, ``mlflow server`` on a fresh SQLite store the same way.

    python benchmarks/server_start.py [--trials 5]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
MLOOP = str(Path(sys.executable).with_name("mloop"))
MLFLOW = HERE / ".venv-mlflow" / "bin" / "mlflow"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _until_ready(url: str, proc: subprocess.Popen[str], started: float, limit: float = 120) -> float:
    while time.perf_counter() - started < limit:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return time.perf_counter() - started
        except httpx.TransportError:
            time.sleep(0.01)
    raise SystemExit(f"not ready within {limit} s")


def mloop_start(home: Path) -> float:
    port = _free_port()
    env = {**os.environ, "MLOOP_HOME": str(home), "COLUMNS": "200"}
    started = time.perf_counter()
    proc = subprocess.Popen([MLOOP, "server", "--port", str(port)], cwd=home.parent, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    try:
        return _until_ready(f"http://127.0.0.1:{port}/api/v1/health", proc, started)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def mlflow_start(folder: Path) -> float:
    port = _free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    started = time.perf_counter()
    proc = subprocess.Popen([str(MLFLOW), "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{folder}/mlflow.db",
                             "--default-artifact-root", str(folder / "artifacts"), "--workers", "1"],
                            cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    try:
        return _until_ready(f"http://127.0.0.1:{port}/health", proc, started, limit=300)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    first, again, peer = [], [], []
    # mloop's trials first, then the peer's: a stopped `mlflow server` leaves workers winding
    # down for seconds, which would land on the next trial's start-up (it tripled mloop's).
    for _ in range(args.trials):
        root = Path(tempfile.mkdtemp(prefix="mloop-start-"))
        try:
            first.append(mloop_start(root / ".mloop"))
            again.append(mloop_start(root / ".mloop"))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    for _ in range(args.trials if MLFLOW.exists() else 0):
        root = Path(tempfile.mkdtemp(prefix="mlflow-start-"))
        try:
            peer.append(mlflow_start(root))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    print(f"{'server':<28}{'median s':>10}{'max s':>10}")
    for name, values in (("mloop server, first start", first), ("mloop server, restart", again),
                         ("mlflow server (sqlite)", peer)):
        if values:
            print(f"{name:<28}{statistics.median(values):>10.2f}{max(values):>10.2f}")
    if not peer:
        print("(mlflow not measured: create benchmarks/.venv-mlflow with `pip install mlflow`)")


if __name__ == "__main__":
    main()
