"""Managed services end to end: real supervisor and worker processes, real HTTP on loopback.

Models are tiny ``customize_service.py`` folders (no torch import, so a worker is ready in about
a second) that answer with their own version, so a test can see which version served a request.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import httpx
import psutil
import pytest
from helpers import Cli, process_gone, wait_until

from mloop.config import Settings
from mloop.errors import DeployFailedError, ManagedServiceError, NotFoundError
from mloop.serving.manager import service_processes
from mloop.context import Context
from mloop.runs import open_backend
from mloop.services import serving
from mloop.services.models import register_model


def version_model(folder: Path, tag: str, *, broken: bool = False) -> Path:
    """A model folder whose service answers ``{"version": tag, "echo": <request>}``; ``broken``
    raises in ``__init__`` (the loader's error a deploy must report)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["from model_service.model_service import SingleNodeService", "", "",
             "class VersionService(SingleNodeService):"]
    if broken:
        lines += ["    def __init__(self, model_name, model_path):",
                  f"        raise RuntimeError('weights file is corrupt: cannot load {tag}')", ""]
    lines += ["    def _inference(self, data):", f"        return {{'version': '{tag}', 'echo': data}}", ""]
    (folder / "customize_service.py").write_text("\n".join(lines))
    (folder / "config.json").write_text(json.dumps({"model_type": "custom"}))
    return folder


def stop_all(backend: Context) -> None:
    """Teardown: stop every service the test started and check that no process is left."""
    home = backend.settings.home_path
    for rec in serving.list_services(backend):
        serving.stop_service(backend, rec.name, timeout=20)
        left = service_processes(home, rec.name)
        assert not left, f"processes left by service {rec.name}: {[p.pid for p in left]}"


@pytest.fixture
def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLOOP_HOME", str(tmp_path / ".mloop"))
    b = open_backend(Settings())
    try:
        yield b
    finally:
        try:
            stop_all(b)
        finally:
            b.close()


@pytest.fixture
def models(backend: Context, tmp_path: Path) -> dict[str, str]:
    """Versions 1 and 2 of model ``echo`` (answering "v1"/"v2") and version 3, which fails to load."""
    refs = {}
    for tag, broken in (("v1", False), ("v2", False), ("v3", True)):
        rec = register_model(backend, "echo", version_model(tmp_path / "src" / tag, tag, broken=broken))
        refs[tag] = rec.ref
    return refs


def answer(url: str, payload: Any = None) -> dict[str, Any]:
    response = httpx.post(url + "/predict", json=payload or {"x": 1}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


class Hammer:
    """Client threads that call the service without pause, each request on a new connection."""

    def __init__(self, url: str, threads: int = 2) -> None:
        self.url = url
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.versions: list[str] = []
        self.times: list[float] = []  # when each answer arrived (time.monotonic())
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, i: int) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            try:
                response = httpx.post(self.url + "/predict", json={"client": i, "n": n}, timeout=30)
                ok = response.status_code == 200 and response.json()["echo"] == {"client": i, "n": n}
                with self.lock:
                    if ok:
                        self.versions.append(response.json()["version"])
                        self.times.append(time.monotonic())
                    else:
                        self.failures.append(f"{response.status_code}: {response.text[:200]}")
            except httpx.HTTPError as exc:
                with self.lock:
                    self.failures.append(f"{type(exc).__name__}: {exc}")

    def __enter__(self) -> Hammer:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)


class TestDeploy:
    def test_deploy_then_predict(self, backend: Context, models: dict[str, str]) -> None:
        rec = serving.deploy(backend, "echo-svc", models["v1"])
        assert rec.status == "running" and rec.model_ref == models["v1"]
        assert rec.url == f"http://127.0.0.1:{rec.port}"
        assert answer(rec.url) == {"version": "v1", "echo": {"x": 1}}
        assert serving.predict(backend, "echo-svc", {"y": 2}) == {"version": "v1", "echo": {"y": 2}}
        assert psutil.Process(rec.supervisor_pid).is_running()
        [deployment] = serving.list_deployments(backend, "echo-svc")
        assert deployment.status == "succeeded" and deployment.model_version == "1"
        # The worker loads with the type the registry recorded, not a guess of its own.
        worker = psutil.Process(rec.worker_pid).cmdline()
        assert worker[worker.index("--model-type") + 1] == "custom"

    def test_switch_under_load_drops_no_request(self, backend: Context, models: dict[str, str]) -> None:
        first = serving.deploy(backend, "echo-svc", models["v1"])
        assert first.url is not None
        with Hammer(first.url) as hammer:
            wait_until(lambda: len(hammer.versions) >= 10, 30, "requests answered by v1")
            second = serving.deploy(backend, "echo-svc", models["v2"])
            switched, switched_at = time.monotonic(), len(hammer.versions)
            wait_until(lambda: len(hammer.versions) >= switched_at + 20 and hammer.times[-1] > switched + 2, 30,
                       "requests answered after the switch")
        assert hammer.failures == [], hammer.failures[:5]
        assert second.port == first.port and second.url == first.url
        assert second.model_ref == models["v2"] and second.worker_pid != first.worker_pid
        answers = list(zip(hammer.times, hammer.versions))
        assert answers[0][1] == "v1" and answers[-1][1] == "v2"
        # The old worker was told to stop when deploy() returned: it takes no new request after
        # that (it answers only what it had accepted), so a second later only v2 answers.
        late = Counter(v for t, v in answers if t > switched + 1.0)
        assert late["v1"] == 0 and late["v2"] > 0, late
        wait_until(lambda: process_gone(first.worker_pid), 30, "the old worker to exit")

    def test_a_connection_made_after_a_deploy_returns_reaches_the_new_version(
            self, backend: Context, models: dict[str, str]) -> None:
        # The old worker and its successor accept on one socket: until the old one has closed
        # its listener, either may take a new connection. deploy() returns only after that.
        serving.deploy(backend, "echo-flip", models["v1"])
        for version in ("v2", "v1", "v2", "v1"):
            rec = serving.deploy(backend, "echo-flip", models[version])
            assert [answer(rec.url or "")["version"] for _ in range(3)] == [version] * 3

    def test_failed_load_keeps_the_old_version_serving(self, backend: Context, models: dict[str, str]) -> None:
        first = serving.deploy(backend, "echo-svc", models["v1"])
        with pytest.raises(DeployFailedError) as caught:
            serving.deploy(backend, "echo-svc", models["v3"])
        assert "weights file is corrupt: cannot load v3" in str(caught.value)
        assert f"{models['v1']} keeps serving" in (caught.value.hint or "")
        rec = serving.get_service(backend, "echo-svc")
        assert rec.status == "running" and rec.model_ref == models["v1"] and rec.worker_pid == first.worker_pid
        assert answer(first.url or "")["version"] == "v1"
        latest = serving.list_deployments(backend, "echo-svc")[0]
        assert latest.status == "failed" and "cannot load v3" in (latest.message or "")

    def test_a_service_deployed_from_an_alias_follows_it(self, backend: Context, models: dict[str, str]) -> None:
        from mloop.services.models import move_alias

        move_alias(backend, "echo", "production", "1")
        rec = serving.deploy(backend, "echo-prod", "echo@production")
        pinned = serving.deploy(backend, "echo-pinned", models["v1"])  # an explicit version stays put
        assert rec.follows == "production" and pinned.follows is None
        assert answer(rec.url or "")["version"] == "v1"

        _, followers = move_alias(backend, "echo", "production", "2")
        assert [(f.service, f.model_ref, f.error) for f in followers] == [("echo-prod", models["v2"], None)]
        assert answer(rec.url or "")["version"] == "v2"
        assert answer(pinned.url or "")["version"] == "v1"

        # A version that fails to load: the alias moves, the service keeps serving what it had.
        _, followers = move_alias(backend, "echo", "production", "3")
        assert followers[0].service == "echo-prod" and "cannot load v3" in (followers[0].error or "")
        assert answer(rec.url or "")["version"] == "v2"

    def test_failed_first_deploy_leaves_nothing_running(self, backend: Context, models: dict[str, str]) -> None:
        with pytest.raises(DeployFailedError, match="cannot load v3") as caught:
            serving.deploy(backend, "broken", models["v3"])
        assert "nothing is served" in (caught.value.hint or "")
        rec = wait_until(lambda: (r := serving.get_service(backend, "broken")).supervisor_pid is None and r, 30,
                         "the supervisor to end")
        assert rec.status == "failed" and "cannot load v3" in (rec.message or "")
        wait_until(lambda: service_processes(backend.settings.home_path, "broken") == [], 20, "processes to end")

    def test_port_given_is_kept_and_a_taken_port_is_refused(self, backend: Context, models: dict[str, str]) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        rec = serving.deploy(backend, "fixed", models["v1"], port=free)
        assert rec.port == free and answer(f"http://127.0.0.1:{free}")["version"] == "v1"
        with pytest.raises(ManagedServiceError, match=f"cannot listen on 127.0.0.1:{free}"):
            serving.deploy(backend, "other", models["v1"], port=free)

    def test_bad_name_and_unknown_model(self, backend: Context, models: dict[str, str]) -> None:
        with pytest.raises(ManagedServiceError, match="invalid service name"):
            serving.deploy(backend, "no spaces", models["v1"])
        with pytest.raises(NotFoundError):
            serving.deploy(backend, "svc", "nosuchmodel")
        with pytest.raises(NotFoundError, match="no service named 'ghost'"):
            serving.get_service(backend, "ghost")
        assert serving.list_services(backend) == []


class TestSupervision:
    def test_killed_worker_is_restarted(self, backend: Context, models: dict[str, str]) -> None:
        rec = serving.deploy(backend, "echo-svc", models["v1"])
        assert rec.worker_pid is not None
        os.kill(rec.worker_pid, signal.SIGKILL)
        again = wait_until(lambda: (r := serving.get_service(backend, "echo-svc")).status == "running"
                           and r.worker_pid not in (None, rec.worker_pid) and r, 30, "the worker to be restarted")
        assert again.restarts == 1 and again.port == rec.port
        assert answer(rec.url or "")["version"] == "v1"
        assert "exited with signal 9; restarting" in "\n".join(serving.service_logs(backend, "echo-svc"))

    @pytest.mark.slow
    def test_dead_supervisor_is_noticed_and_started_again(self, backend: Context, models: dict[str, str]) -> None:
        rec = serving.deploy(backend, "echo-svc", models["v1"])
        assert rec.supervisor_pid is not None and rec.worker_pid is not None
        os.kill(rec.supervisor_pid, signal.SIGKILL)
        wait_until(lambda: process_gone(rec.supervisor_pid or 0), 10, "the supervisor to die")
        dead = serving.get_service(backend, "echo-svc")
        assert dead.status == "failed" and "mloop service start echo-svc" in (dead.message or "")
        back = serving.start_service(backend, "echo-svc")
        assert back.status == "running" and back.port == rec.port and back.supervisor_pid != rec.supervisor_pid
        assert process_gone(rec.worker_pid), "the orphaned worker was not ended"
        assert answer(back.url or "")["version"] == "v1"

    def test_schedule_stops_the_service(self, backend: Context, models: dict[str, str]) -> None:
        # 12 s: the worker must be up before the stop falls due (a loaded CI machine can take
        # several seconds to start one); a stop due during the deploy fails the deploy instead.
        rec = serving.deploy(backend, "brief", models["v1"], schedule_hours=12 / 3600)
        assert rec.stop_at is not None
        stopped = wait_until(lambda: (r := serving.get_service(backend, "brief")).status == "stopped" and r, 45,
                             "the scheduled stop")
        assert "schedule" in (stopped.message or "")
        wait_until(lambda: service_processes(backend.settings.home_path, "brief") == [], 20, "processes to end")


    def test_a_deleted_home_stops_the_service(self, backend: Context, models: dict[str, str]) -> None:
        import shutil

        rec = serving.deploy(backend, "orphan", models["v1"])
        pids = [p.pid for p in service_processes(backend.settings.home_path, "orphan")]
        shutil.rmtree(backend.settings.home_path / "services" / "orphan")
        wait_until(lambda: all(process_gone(pid) for pid in pids), 20, "the service to end itself")
        assert rec.supervisor_pid in pids


class TestCli:
    @pytest.mark.slow  # five mloop processes
    def test_deploy_list_predict_stop(self, backend: Context, models: dict[str, str], tmp_path: Path) -> None:
        cli = Cli(tmp_path, backend.settings.home_path)
        assert "echo:1 is live at http://127.0.0.1:" in cli.ok("service", "deploy", "svc", models["v1"], timeout=60).out
        failed = cli("service", "deploy", "svc", models["v3"], timeout=60)
        assert failed.code != 0
        assert "cannot load v3" in failed.err and "echo:1 keeps serving" in failed.err
        [listed] = cli.json("service", "list")
        assert (listed["name"], listed["status"], listed["model_version"]) == ("svc", "running", "1")
        assert "token" not in listed
        predicted = json.loads(cli.ok("service", "predict", "svc", "--json", '{"z": 3}').out)
        assert predicted == {"version": "v1", "echo": {"z": 3}}
        pids = [p.pid for p in service_processes(backend.settings.home_path, "svc")]
        assert listed["supervisor_pid"] in pids and listed["worker_pid"] in pids
        assert "svc: stopped" in cli.ok("service", "stop", "svc").out
        assert all(process_gone(pid) for pid in pids), [p for p in pids if not process_gone(p)]
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{listed['url']}/health", timeout=5)
        with pytest.raises(ManagedServiceError, match="is stopped") as caught:
            serving.predict(backend, "svc", {})
        assert "mloop service start svc" in (caught.value.hint or "")
