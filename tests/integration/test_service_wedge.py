"""A service that hung user code cannot wedge (issue 9, item 6): real workers, real supervisors.

* a prediction that outlasts the inference timeout is answered 504; the worker then says it is
  stuck (``/health`` and ``/ready`` 503) until the call returns;
* the supervisor replaces a worker that stays stuck (new worker first, old one killed), and
  one whose memory passes ``max_memory_mb``;
* the service log rotates at its size limit, ``service_logs`` reads across the rotation, and
  requests are not logged one by one.

The user code blocks on a file the test creates (a gate), so nothing here sleeps for a fixed
time: every wait is on a condition, with a deadline. Intervals are shortened through the
supervisor's environment variables.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from helpers import process_gone, wait_until
from serving_helpers import serve_folder

from mloop.config import Settings
from mloop.context import Context
from mloop.runs import open_backend
from mloop.serving.manager import service_processes
from mloop.services import serving
from mloop.services.models import register_model

GATE_SERVICE = '''\
import os
import time

from model_service.model_service import SingleNodeService


class GateService(SingleNodeService):
    def _inference(self, data):
        gate = data.get("gate")
        if gate:  # hang until the test creates the gate file
            open(gate + ".entered", "w").close()
            while not os.path.exists(gate):
                time.sleep(0.02)
        if data.get("allocate_mb"):
            self.hog = b"x" * (int(data["allocate_mb"]) * 1024 * 1024)
        if data.get("say"):
            print(data["say"], flush=True)
        return {"pid": os.getpid()}
'''


def gate_model(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "customize_service.py").write_text(GATE_SERVICE)
    (folder / "config.json").write_text(json.dumps({"model_type": "custom"}))
    return folder


@pytest.fixture
def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLOOP_HOME", str(tmp_path / ".mloop"))
    monkeypatch.setenv("MLOOP_SERVICE_HEALTH_INTERVAL", "0.2")
    monkeypatch.setenv("MLOOP_SERVICE_STUCK_GRACE", "1.0")
    monkeypatch.setenv("MLOOP_SERVICE_STUCK_KILL_SECONDS", "2")
    b = open_backend(Settings())
    try:
        yield b
    finally:
        home = b.settings.home_path
        for rec in serving.list_services(b):
            serving.stop_service(b, rec.name, timeout=20)
            assert not service_processes(home, rec.name)
        b.close()


@pytest.fixture
def gate_ref(backend: Context, tmp_path: Path) -> str:
    return register_model(backend, "gate", gate_model(tmp_path / "src" / "gate")).ref


def post(url: str, payload: dict[str, Any], timeout: float = 30) -> httpx.Response:
    return httpx.post(f"{url}/predict", json=payload, timeout=timeout)


def get_json(url: str, path: str) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"{url}{path}", timeout=10)
    return response.status_code, response.json()


def test_a_hung_call_is_answered_504_and_the_server_says_it_is_stuck(tmp_path: Path) -> None:
    folder = gate_model(tmp_path / "gate")
    gate = tmp_path / "gate.open"
    with serve_folder(folder, inference_timeout=0.5) as url:
        try:
            started = time.monotonic()
            hung = post(url, {"gate": str(gate)})
            took = time.monotonic() - started
            assert hung.status_code == 504, hung.text
            assert hung.json()["code"] == "inference_timeout"
            assert "inference timeout (0.5 s)" in hung.json()["error"]
            assert took < 5
            # Still inside the call past the timeout: stuck, for /health, /ready and new requests.
            wait_until(lambda: get_json(url, "/health")[0] == 503, 10, "/health to say stuck")
            status, body = get_json(url, "/health")
            assert status == 503 and body["status"] == "stuck" and body["inference_timeout"] == 0.5
            status, body = get_json(url, "/ready")
            assert status == 503 and body["status"] == "stuck" and "inference timeout" in body["reason"]
            refused = post(url, {})
            assert refused.status_code == 503 and refused.json()["code"] == "model_stuck"
        finally:
            gate.touch()
        # The call returned: the server is itself again.
        wait_until(lambda: get_json(url, "/ready")[0] == 200, 10, "/ready to say ready again")
        assert get_json(url, "/health") == (200, {"status": "ok"})
        assert post(url, {}).status_code == 200


def test_the_supervisor_replaces_a_stuck_worker(backend: Context, gate_ref: str, tmp_path: Path) -> None:
    gate = tmp_path / "never.open"
    rec = serving.deploy(backend, "wedge", gate_ref, inference_timeout=1)
    old_pid = rec.worker_pid
    assert old_pid and rec.url
    hung = post(rec.url, {"gate": str(gate)})
    assert hung.status_code == 504 and "inference timeout (1 s)" in hung.json()["error"]

    def replaced() -> Any:
        now = serving.get_service(backend, "wedge")
        return now if now.worker_pid not in (None, old_pid) and now.status == "running" else None

    now = wait_until(replaced, 30, "a replacement worker")
    wait_until(lambda: process_gone(old_pid), 15, f"the stuck worker {old_pid} to be killed")
    answer = post(rec.url, {})
    assert answer.status_code == 200 and answer.json()["pid"] == now.worker_pid
    assert now.restarts >= 1 and "stuck" in (now.message or "")
    text = "\n".join(serving.service_logs(backend, "wedge", tail=None))
    assert f"worker pid {old_pid}" in text and "stuck" in text and "starting a replacement" in text


def test_a_worker_past_its_memory_limit_is_recycled(backend: Context, gate_ref: str) -> None:
    rec = serving.deploy(backend, "fat", gate_ref, max_memory_mb=400)
    old_pid = rec.worker_pid
    assert rec.url and old_pid
    assert post(rec.url, {"allocate_mb": 600}).status_code == 200

    def replaced() -> Any:
        now = serving.get_service(backend, "fat")
        return now if now.worker_pid not in (None, old_pid) and now.status == "running" else None

    now = wait_until(replaced, 30, "a replacement worker")
    assert "max_memory_mb" in (now.message or "") and now.restarts >= 1
    wait_until(lambda: process_gone(old_pid), 20, f"the old worker {old_pid} to end")
    assert post(rec.url, {}).json()["pid"] == now.worker_pid


def test_the_service_log_rotates_and_requests_are_not_logged_one_by_one(
        backend: Context, gate_ref: str, monkeypatch: pytest.MonkeyPatch) -> None:
    limit = 20_000
    monkeypatch.setenv("MLOOP_SERVICE_LOG_MAX_BYTES", str(limit))
    monkeypatch.setenv("MLOOP_SERVICE_LOG_BACKUPS", "2")
    rec = serving.deploy(backend, "chatty", gate_ref)
    assert rec.url
    log = Path(rec.log_path)
    with httpx.Client(timeout=30) as client:
        for _ in range(20):
            assert client.post(f"{rec.url}/predict", json={}).status_code == 200
        for i in range(100):
            assert client.post(f"{rec.url}/predict", json={"say": f"line {i:03d} " + "x" * 500}).status_code == 200
    wait_until(lambda: "line 099" in log.read_text(), 20, "the last line in the log")
    rotated = [log.with_name(f"{log.name}.{i}") for i in (1, 2, 3)]
    assert log.stat().st_size <= limit
    assert rotated[0].is_file() and rotated[1].is_file() and not rotated[2].exists()
    assert all(p.stat().st_size <= limit for p in rotated[:2])
    current = log.read_text().splitlines()
    lines = list(serving.service_logs(backend, "chatty", tail=len(current) + 10))
    assert len(lines) == len(current) + 10  # the older ten come from service.log.1
    assert lines[-len(current):] == current
    everything = "\n".join(serving.service_logs(backend, "chatty", tail=None))
    assert "line 099" in everything and "POST /predict" not in everything  # no access log by default
