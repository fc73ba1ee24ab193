"""``python -m mloop.serving.worker``: the process the service manager supervises. Real
subprocesses, real sockets (an inherited listening fd included), real signals."""

from __future__ import annotations

import concurrent.futures
import signal
import time
from pathlib import Path

import httpx

from serving_helpers import free_socket, start_worker, stdlib_service, wait_for_file


def test_load_failure_exits_3_with_the_loader_error_and_serves_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "customize_service.py").write_text("raise ImportError('needs the frobnicate package')\n")
    ready = tmp_path / "ready.json"
    proc = start_worker(folder, "--port", "0", "--ready-file", str(ready))
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 3
    text = stderr.decode()
    assert "error:" in text and "needs the frobnicate package" in text
    assert not ready.exists()


def test_ready_file_then_serving_then_sigterm_finishes_the_in_flight_request(tmp_path: Path) -> None:
    folder = stdlib_service(tmp_path / "model")
    ready = tmp_path / "run" / "ready.json"
    log = tmp_path / "worker.log"
    proc = start_worker(folder, "--port", "0", "--ready-file", str(ready), log=log)
    try:
        info = wait_for_file(ready, proc)
        assert info["pid"] == proc.pid and info["model_name"] == "m" and info["model_version"] == "1"
        url = info["url"]
        assert httpx.get(f"{url}/ready").json()["status"] == "ready"
        started = tmp_path / "started"
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            slow = pool.submit(httpx.post, f"{url}/predict",
                               json={"value": 7, "sleep": 1.0, "started_file": str(started)}, timeout=30)
            deadline = time.monotonic() + 20
            while not started.exists():
                assert time.monotonic() < deadline, "the slow request never reached the service"
                time.sleep(0.01)
            proc.send_signal(signal.SIGTERM)
            response = slow.result(timeout=30)
        assert response.status_code == 200 and response.json()["echo"] == 7
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Shutting down" in log.read_text()


def test_workers_share_an_inherited_socket_and_hand_over_without_failures(tmp_path: Path) -> None:
    sock = free_socket()
    port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    old = start_worker(stdlib_service(tmp_path / "v1", tag="v1"), "--fd", str(sock.fileno()),
                       "--ready-file", str(tmp_path / "old.json"), pass_fds=(sock.fileno(),), log=tmp_path / "old.log")
    new = None
    try:
        assert wait_for_file(tmp_path / "old.json", old)["port"] == port
        assert httpx.post(f"{url}/predict", json={"value": 1}).json()["tag"] == "v1"
        new = start_worker(stdlib_service(tmp_path / "v2", tag="v2"), "--fd", str(sock.fileno()),
                           "--ready-file", str(tmp_path / "new.json"), pass_fds=(sock.fileno(),),
                           log=tmp_path / "new.log")
        wait_for_file(tmp_path / "new.json", new)
        sock.close()  # the workers hold their own copies
        tags: list[str] = []
        failures: list[str] = []
        stop_at = time.monotonic() + 1.5
        old.send_signal(signal.SIGTERM)
        while time.monotonic() < stop_at:
            try:  # a fresh connection each time: the listening socket must always answer
                r = httpx.post(f"{url}/predict", json={"value": 2}, headers={"connection": "close"}, timeout=10)
                tags.append(r.json()["tag"]) if r.status_code == 200 else failures.append(r.text)
            except httpx.HTTPError as exc:
                failures.append(repr(exc))
        assert old.wait(timeout=30) == 0
        assert not failures, failures[:3]
        assert tags and tags[-1] == "v2"
    finally:
        for proc in (old, new):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
