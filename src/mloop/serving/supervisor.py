"""The supervisor of one managed service: ``python -m mloop.serving.supervisor``.

Started detached (its own session) by :mod:`mloop.serving.manager`, it outlives the command
that deployed it. It inherits two listening sockets from the deployer:

* ``--listen-fd``: the service's socket, on the port the service keeps for its whole life.
  Every worker (``python -m mloop.serving.worker --fd``) inherits it and accepts on it, so
  connections that arrive while workers come and go wait in the kernel's accept queue and are
  taken by whichever worker is accepting: none is refused.
* ``--control-fd``: a loopback HTTP endpoint for the deployer (token in ``X-Mloop-Token``,
  from ``MLOOP_SERVICE_TOKEN``): ``GET /status``, ``POST /deploy``, ``POST /deploy/cancel``, ``POST /stop``.

A deploy starts a worker for the new version on the service socket, waits for its ready file,
then makes it current and SIGTERMs the old worker, which stops accepting and finishes its
in-flight requests (zero-downtime switch); the deploy returns once the old worker has closed
its listener, so every connection made after it reaches the new version. A worker that fails to load exits with code 3 and
its ``error:`` lines are the deploy's error; the old worker was never touched.

A current worker that exits is restarted with backoff (0.5 s, 1 s, 2 s ... up to 10 s); after
:data:`MAX_FAST_CRASHES` crashes in a row, each within :data:`STABLE_SECONDS` of its start, the
service is marked failed. A worker whose ``/health`` stops answering is killed (and so
restarted). A supervisor with nothing left to serve, or past the service's ``stop_at``, stops.

A worker whose ``/health`` says ``stuck`` (its model thread has been inside one call for longer
than its inference timeout) for longer than :data:`STUCK_GRACE`, or whose memory (RSS, its
children included) passes the deployment's ``max_memory_mb``, is replaced the way a deploy
replaces one: a new worker is started, made current once ready, and the old one is SIGTERMed
(SIGKILLed after :data:`STUCK_KILL_SECONDS` when stuck: its hung call will not finish). Each
replacement counts as a restart and its reason is recorded in the store and the log.

State goes to the metadata store (``MLOOP_DATABASE_URL``): status, current version, worker
pid, restarts, and each deployment's outcome. Every worker's output goes, line by line and
prefixed with its version and pid, to the service log (the supervisor's stderr). With
``--log-file`` (what the manager passes) that log rotates: past :data:`LOG_MAX_BYTES` it is
renamed ``service.log.1`` (older ones shift up to ``.LOG_BACKUPS``, the oldest is dropped) and a
new one is started, which the supervisor's stdout and stderr then point at.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hmac
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Sequence



def _env_number(name: str, default: float) -> float:
    """A positive number from the environment (tests shorten intervals with these), else ``default``."""
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 else default


#: Crashes in a row (each within STABLE_SECONDS of the worker's start) before giving up.
MAX_FAST_CRASHES = 5
STABLE_SECONDS = 30.0
#: Health checks: every HEALTH_INTERVAL s; a worker that fails HEALTH_FAILURES in a row is killed.
HEALTH_INTERVAL = _env_number("MLOOP_SERVICE_HEALTH_INTERVAL", 5.0)
HEALTH_TIMEOUT = 10.0
HEALTH_FAILURES = 3
#: How long a worker may report itself stuck before it is replaced.
STUCK_GRACE = _env_number("MLOOP_SERVICE_STUCK_GRACE", 2 * HEALTH_INTERVAL)
#: How long a replaced stuck worker gets after SIGTERM before SIGKILL.
STUCK_KILL_SECONDS = _env_number("MLOOP_SERVICE_STUCK_KILL_SECONDS", 5.0)
#: The service log rotates past this size, keeping this many older files.
LOG_MAX_BYTES = int(_env_number("MLOOP_SERVICE_LOG_MAX_BYTES", 10 * 1024 * 1024))
LOG_BACKUPS = int(_env_number("MLOOP_SERVICE_LOG_BACKUPS", 3))
#: How long a SIGTERMed worker gets before SIGKILL (its own graceful timeout is shorter).
RETIRE_SECONDS = 40.0
#: How long a deploy waits for the SIGTERMed worker to close its listener before it returns.
STOP_ACCEPTING_SECONDS = 10.0
TOKEN_HEADER = "X-Mloop-Token"


def log(message: str) -> None:
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    write_log(f"{stamp} supervisor: {message}\n")


def write_log(text: str) -> None:
    """Append ``text`` (whole lines) to the service log, rotating it first when it is full."""
    with _log_lock:
        if _log_file is not None:
            _log_file.before_write(len(text.encode("utf-8", "replace")))
        sys.stderr.write(text)
        sys.stderr.flush()


class RotatingLog:
    """The service log at ``path``, which is the supervisor's stdout and stderr: past
    ``max_bytes`` it becomes ``path.1`` (``path.1`` becomes ``path.2`` ... up to ``backups``)
    and a new ``path`` takes its place on file descriptors 1 and 2 (so stray output, a
    traceback included, lands in the current file too). Called under ``_log_lock``."""

    def __init__(self, path: Path, max_bytes: int = LOG_MAX_BYTES, backups: int = LOG_BACKUPS) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = max(1, backups)

    def before_write(self, size: int) -> None:
        try:
            current = os.fstat(sys.stderr.fileno()).st_size
        except (OSError, ValueError):
            return
        if current and current + size > self.max_bytes:
            try:
                self.rotate()
            except OSError as exc:  # a full disk or a removed folder: keep writing where we are
                sys.stderr.write(f"supervisor: could not rotate {self.path}: {exc}\n")

    def rotate(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        for i in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self.path.exists():
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.dup2(fd, sys.stdout.fileno())
            os.dup2(fd, sys.stderr.fileno())
        finally:
            os.close(fd)


_log_lock = threading.Lock()
_log_file: RotatingLog | None = None


@dataclass
class Deployment:
    """What a worker serves and how (everything the worker command line needs)."""

    model_dir: str
    model_name: str
    model_version: str
    model_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # max_batch_size, max_wait_ms, batching, ...
    envs: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Deployment:
        return cls(model_dir=str(data["model_dir"]), model_name=str(data["model_name"]),
                   model_version=str(data.get("model_version") or ""), model_id=data.get("model_id"),
                   options=dict(data.get("options") or {}),
                   envs={str(k): str(v) for k, v in (data.get("envs") or {}).items()})

    @property
    def label(self) -> str:
        return f"{self.model_name}:{self.model_version}"


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    deployment: Deployment
    ready_file: Path
    started: float
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=60))
    ready_at: float | None = None
    retiring: float | None = None  # when it was told to stop
    kill_after: float = RETIRE_SECONDS  # seconds after SIGTERM before SIGKILL
    stuck_since: float | None = None  # first health check that found it stuck (None: not stuck)
    ready_mb: float | None = None  # its memory once ready (measured when it has a max_memory_mb)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def error_text(self) -> str:
        """The worker's own account of why it ended: its ``error:``/``hint:`` lines, else its last lines."""
        lines = [line for line in self.tail if line.startswith(("error:", "hint:"))]
        return "\n".join(lines or list(self.tail)[-15:]).strip()


class DeployFailed(Exception):
    pass


class Supervisor:
    def __init__(self, service_id: str, listen_sock: socket.socket, service_dir: Path, store: Any) -> None:
        self.service_id = service_id
        self.listen_sock = listen_sock
        self.dir = service_dir
        self.store = store
        self.current: Worker | None = None
        self.retiring: list[Worker] = []
        self.deploy_lock = threading.Lock()
        self.state_lock = threading.RLock()
        self.stopping = threading.Event()
        self.stopped = threading.Event()
        #: Set by ``POST /deploy/cancel``: the deploy in flight (if its id matches) gives up,
        #: kills its new worker and leaves the previous version serving.
        self.cancel_deploy = threading.Event()
        self.deploying_id: str | None = None
        self.fast_crashes = 0
        self.restarts = 0
        self.seq = 0
        self.stop_at: float | None = None
        self.health_failures = 0
        self._last_health = time.monotonic()
        self._stop_called = False
        #: (status, message) the service ends with when the supervisor ends by itself.
        self.final: tuple[str, str] = ("stopped", "stopped")
        host, port = listen_sock.getsockname()[:2]
        self.port = int(port)
        self.host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else str(host)

    # -- store ---------------------------------------------------------------------------------
    def record(self, **fields: Any) -> None:
        try:
            self.store.services.update(self.service_id, **fields)
        except Exception as exc:  # noqa: BLE001 - the service keeps serving even if the store is down
            log(f"could not record {sorted(fields)} in the store: {exc}")

    def finish_deployment(self, deployment_id: str | None, status: str, message: str | None) -> None:
        if not deployment_id:
            return
        try:
            self.store.services.finish_deployment(deployment_id, status, message)
        except Exception as exc:  # noqa: BLE001
            log(f"could not record deployment {deployment_id}: {exc}")

    # -- workers -------------------------------------------------------------------------------
    def spawn(self, dep: Deployment) -> Worker:
        self.seq += 1
        ready = self.dir / "run" / f"worker-{self.seq}.ready.json"
        ready.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            ready.unlink()
        fd = self.listen_sock.fileno()
        opts = dep.options
        argv = [sys.executable, "-m", "mloop.serving.worker", "--model-dir", dep.model_dir,
                "--model-name", dep.model_name, "--model-version", dep.model_version, "--fd", str(fd),
                "--ready-file", str(ready)]
        if opts.get("model_type"):
            argv += ["--model-type", str(opts["model_type"])]
        if opts.get("max_batch_size") is not None:
            argv += ["--max-batch-size", str(int(opts["max_batch_size"]))]
        if opts.get("max_wait_ms") is not None:
            argv += ["--max-wait-ms", str(float(opts["max_wait_ms"]))]
        if opts.get("batching") is False:
            argv.append("--no-batching")
        if opts.get("max_body_bytes"):
            argv += ["--max-body-bytes", str(int(opts["max_body_bytes"]))]
        if opts.get("threads"):
            argv += ["--threads", str(int(opts["threads"]))]
        if opts.get("graceful_timeout") is not None:
            argv += ["--graceful-timeout", str(float(opts["graceful_timeout"]))]
        if opts.get("inference_timeout") is not None:
            argv += ["--inference-timeout", str(float(opts["inference_timeout"]))]
        if opts.get("access_log"):
            argv.append("--access-log")
        env = {**os.environ, **dep.envs}
        env.pop("MLOOP_SERVICE_TOKEN", None)
        env["PYTHONUNBUFFERED"] = "1"
        proc = subprocess.Popen(argv, pass_fds=(fd,), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=env, cwd=str(self.dir))
        worker = Worker(proc, dep, ready, time.monotonic())
        threading.Thread(target=self._pump, args=(worker,), daemon=True, name=f"log-{proc.pid}").start()
        log(f"started worker pid {proc.pid} for {dep.label} ({dep.model_dir})")
        return worker

    def _pump(self, worker: Worker) -> None:
        """Copy a worker's output into the service log, prefixed, and keep its tail."""
        assert worker.proc.stdout is not None
        prefix = f"worker {worker.deployment.label} pid {worker.pid}: "
        for raw in worker.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            worker.tail.append(line)
            write_log(prefix + line + "\n")

    def wait_ready(self, worker: Worker, timeout: float) -> None:
        """Return once ``worker`` accepts connections.

        Raises:
            DeployFailed: it exited first (the loader's error), or was not ready in time (killed).
        """
        deadline = time.monotonic() + timeout
        while True:
            code = worker.proc.poll()
            if code is not None:
                time.sleep(0.1)  # let the log pump read its last lines
                reason = worker.error_text() or f"the worker exited with code {code} before it was ready"
                raise DeployFailed(reason)
            if worker.ready_file.exists():
                try:
                    data = json.loads(worker.ready_file.read_text())
                except (OSError, ValueError):
                    data = {}
                if data.get("pid") == worker.pid:
                    worker.ready_at = time.monotonic()
                    limit = worker.deployment.options.get("max_memory_mb")
                    if limit:
                        worker.ready_mb = memory_mb(worker.pid)
                        if worker.ready_mb is not None and worker.ready_mb > float(limit):
                            log(f"worker pid {worker.pid} uses {worker.ready_mb:.0f} MB once loaded, more than "
                                f"max_memory_mb {float(limit):g}: the limit is too low for this model, it is "
                                "not enforced on this worker")
                    return
            if self.cancel_deploy.is_set():
                self.kill(worker)
                raise DeployFailed("stopped on request")
            if time.monotonic() > deadline or self.stopping.is_set():
                self.kill(worker)
                why = "the service is stopping" if self.stopping.is_set() else \
                    f"the worker was not ready within {timeout:g} s"
                raise DeployFailed(f"{why}; its last output:\n{worker.error_text()}")
            time.sleep(0.05)

    def retire(self, worker: Worker, *, wait: float = STOP_ACCEPTING_SECONDS,
               kill_after: float = RETIRE_SECONDS) -> None:
        """Ask a worker to stop: it stops accepting and finishes its in-flight requests.

        Returns once the worker has closed its listener (it says so in its ready file) or
        exited, so a connection made after a deploy returns reaches the new version; a worker
        that does not say so within ``wait`` seconds is logged and left to drain.
        """
        worker.retiring = time.monotonic()
        worker.kill_after = kill_after
        with self.state_lock:
            self.retiring.append(worker)
        with contextlib.suppress(ProcessLookupError):
            worker.proc.send_signal(signal.SIGTERM)
        log(f"retiring worker pid {worker.pid} ({worker.deployment.label})")
        deadline = time.monotonic() + wait
        while worker.proc.poll() is None and not self._stopped_accepting(worker):
            if time.monotonic() > deadline:
                log(f"retiring worker pid {worker.pid} still accepts after {wait:g} s")
                return
            time.sleep(0.01)

    @staticmethod
    def _stopped_accepting(worker: Worker) -> bool:
        try:
            data = json.loads(worker.ready_file.read_text())
        except (OSError, ValueError):
            return False
        return data.get("pid") == worker.pid and data.get("accepting") is False

    @staticmethod
    def kill(worker: Worker) -> None:
        with contextlib.suppress(ProcessLookupError):
            worker.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.proc.wait(5)

    # -- deploy --------------------------------------------------------------------------------
    def deploy(self, dep: Deployment, *, timeout: float, deployment_id: str | None) -> dict[str, Any]:
        """Bring ``dep`` live, replacing the current worker only once the new one is ready."""
        with self.deploy_lock:
            if self.stopping.is_set():
                raise DeployFailed("the service is stopping")
            self.cancel_deploy.clear()
            self.deploying_id = deployment_id
            try:
                return self._deploy_locked(dep, timeout=timeout, deployment_id=deployment_id)
            finally:
                self.deploying_id = None

    def _deploy_locked(self, dep: Deployment, *, timeout: float, deployment_id: str | None) -> dict[str, Any]:
        """The body of :meth:`deploy`, under its lock."""
        previous = self.current
        self.record(status="deploying", desired_model_name=dep.model_name, desired_model_version=dep.model_version,
                    message=f"deploying {dep.label}" + (f" (serving {previous.deployment.label} meanwhile)"
                                                        if previous else ""))
        worker = self.spawn(dep)
        try:
            self.wait_ready(worker, timeout)
        except DeployFailed as exc:
            message = f"{dep.label} failed to load: {exc}"
            log(message)
            self.finish_deployment(deployment_id, "failed", str(exc))
            if previous is not None and previous.proc.poll() is None:
                self.record(status="running", message=f"last deploy failed ({dep.label}); still serving "
                                                      f"{previous.deployment.label}")
            else:
                self.record(status="failed", message=message, worker_pid=None)
                if previous is None:
                    self.final = ("failed", message)
                    self.stopping.set()  # nothing to serve: the supervisor ends
            raise
        with self.state_lock:
            self.current = worker
            self.fast_crashes = 0
            self.health_failures = 0
        self.record(status="running", message=None, worker_pid=worker.pid, model_name=dep.model_name,
                    model_version=dep.model_version, model_id=dep.model_id,
                    config=self.config_of(dep))
        self.finish_deployment(deployment_id, "succeeded", None)
        if previous is not None:
            self.retire(previous)
        log(f"{dep.label} is live (worker pid {worker.pid})")
        return {"ok": True, "worker_pid": worker.pid, "model_name": dep.model_name,
                "model_version": dep.model_version}

    def config_of(self, dep: Deployment) -> dict[str, Any]:
        return {"model_dir": dep.model_dir, "options": dep.options, "envs": dep.envs}

    # -- monitor -------------------------------------------------------------------------------
    def monitor(self) -> None:
        """Reap retiring workers, restart a crashed current one, health-check, auto-stop."""
        while not self.stopping.is_set():
            self._reap_retiring()
            self._check_current()
            self._check_health()
            if self.stop_at is not None and time.time() >= self.stop_at:
                log("the service's schedule ends now: stopping")
                self.stop(message="stopped on schedule (ServiceConfig.schedule)")
                return
            if not self.dir.is_dir():
                # Its mloop home was deleted (a test's temporary folder, a wiped .mloop/):
                # nobody can reach or stop this service any more, so it ends itself.
                log(f"the service folder {self.dir} is gone: stopping")
                self.stop(message="stopped: its folder was deleted")
                return
            self.stopping.wait(0.2)

    def _reap_retiring(self) -> None:
        with self.state_lock:
            for worker in list(self.retiring):
                code = worker.proc.poll()
                if code is not None:
                    log(f"retired worker pid {worker.pid} exited with code {code}")
                    self.retiring.remove(worker)
                elif worker.retiring is not None and time.monotonic() - worker.retiring > worker.kill_after:
                    log(f"retired worker pid {worker.pid} did not stop in {worker.kill_after:g} s: killing it")
                    worker.proc.kill()

    def _check_current(self) -> None:
        with self.state_lock:
            worker = self.current
        if worker is None or self.deploy_lock.locked():
            return
        code = worker.proc.poll()
        if code is None:
            if worker.ready_at is not None and time.monotonic() - worker.ready_at > STABLE_SECONDS:
                self.fast_crashes = 0
            return
        with self.deploy_lock:
            if self.current is not worker or self.stopping.is_set():
                return
            ran = time.monotonic() - (worker.ready_at or worker.started)
            self.fast_crashes = self.fast_crashes + 1 if ran < STABLE_SECONDS else 1
            self.restarts += 1
            how = f"signal {-code}" if code < 0 else f"code {code}"
            if self.fast_crashes > MAX_FAST_CRASHES:
                message = (f"worker for {worker.deployment.label} crashed {self.fast_crashes - 1} times in a row "
                           f"(last: {how}); giving up. Its last output:\n{worker.error_text()}")
                log(message)
                self.current = None
                self.record(status="failed", message=message, worker_pid=None, restarts=self.restarts)
                self.final = ("failed", message)
                self.stopping.set()
                return
            delay = min(0.5 * 2 ** (self.fast_crashes - 1), 10.0)
            log(f"worker pid {worker.pid} ({worker.deployment.label}) exited with {how}; restarting in {delay:g} s "
                f"(restart {self.restarts})")
            self.record(status="deploying", worker_pid=None, restarts=self.restarts,
                        message=f"worker exited with {how}; restarting (restart {self.restarts})")
            if self.stopping.wait(delay):
                return
            new = self.spawn(worker.deployment)
            try:
                self.wait_ready(new, float(worker.deployment.options.get("ready_timeout", 120)))
            except DeployFailed as exc:
                log(f"restart failed: {exc}")
                self.current = new  # counted as the next crash by the following pass
                return
            self.current = new
            self.health_failures = 0
            self.record(status="running", worker_pid=new.pid, message=f"restarted after the worker exited with {how}")
            log(f"restarted: worker pid {new.pid}")

    def _check_health(self) -> None:
        now = time.monotonic()
        if now - self._last_health < HEALTH_INTERVAL:
            return
        self._last_health = now
        worker = self.current
        if worker is None or worker.proc.poll() is not None or self.deploy_lock.locked():
            return
        limit = worker.deployment.options.get("max_memory_mb")
        if limit:
            used = memory_mb(worker.pid)
            # A worker over the limit from its start is not recycled: that would only start another like it.
            if used is not None and used > float(limit) and (worker.ready_mb or 0) <= float(limit):
                self.replace(worker, f"uses {used:.0f} MB of memory, more than its limit of {float(limit):g} MB "
                                     "(max_memory_mb)")
                return
        if self.retiring:
            return
        status, body = None, {}
        try:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=HEALTH_TIMEOUT)
            conn.request("GET", "/health")
            response = conn.getresponse()
            status = response.status
            with contextlib.suppress(ValueError):
                body = json.loads(response.read() or b"{}")
            conn.close()
        except (OSError, http.client.HTTPException):
            pass
        if status == 503 and isinstance(body, dict) and body.get("status") == "stuck":
            # Alive, but its model thread hangs in a call: replaced (not just killed) once it stays so.
            self.health_failures = 0
            if worker.stuck_since is None:
                worker.stuck_since = now
                log(f"worker pid {worker.pid} is stuck: {body.get('reason')}")
            elif now - worker.stuck_since >= STUCK_GRACE:
                self.replace(worker, f"stuck for more than {STUCK_GRACE:g} s ({body.get('reason')})", stuck=True)
            return
        worker.stuck_since = None
        ok = status == 200
        self.health_failures = 0 if ok else self.health_failures + 1
        if self.health_failures >= HEALTH_FAILURES:
            log(f"worker pid {worker.pid} did not answer /health {self.health_failures} times: killing it")
            self.health_failures = 0
            worker.proc.kill()

    def replace(self, worker: Worker, why: str, *, stuck: bool = False) -> bool:
        """Replace the current ``worker`` (stuck, or over its memory limit) as a deploy would:
        start a new one, switch once it is ready, then retire the old one (SIGKILLed after
        :data:`STUCK_KILL_SECONDS` when ``stuck``). A replacement that fails to start leaves the
        old one killed, so the crash path restarts it with backoff. True if replaced."""
        with self.deploy_lock:
            if self.current is not worker or self.stopping.is_set() or worker.proc.poll() is not None:
                return False
            self.cancel_deploy.clear()
            self.restarts += 1
            log(f"worker pid {worker.pid} ({worker.deployment.label}) {why}: starting a replacement "
                f"(restart {self.restarts})")
            self.record(restarts=self.restarts, message=f"replacing worker pid {worker.pid}: it {why}")
            new = self.spawn(worker.deployment)
            try:
                self.wait_ready(new, float(worker.deployment.options.get("ready_timeout", 120)))
            except DeployFailed as exc:
                log(f"the replacement of worker pid {worker.pid} failed to start: {exc}; killing the old one")
                self.kill(worker)
                return False
            with self.state_lock:
                self.current = new
                self.health_failures = 0
            self.record(status="running", worker_pid=new.pid, restarts=self.restarts,
                        message=f"replaced worker pid {worker.pid}: it {why}")
            self.retire(worker, kill_after=STUCK_KILL_SECONDS if stuck else RETIRE_SECONDS)
            log(f"replaced worker pid {worker.pid} by pid {new.pid}")
            return True

    # -- stop ----------------------------------------------------------------------------------
    def stop(self, message: str = "stopped", status: str = "stopped") -> None:
        """Stop every worker gracefully (SIGTERM, then SIGKILL after RETIRE_SECONDS) and end.
        A second call waits for the first to finish."""
        self.stopping.set()
        with self.state_lock:
            again, self._stop_called = self._stop_called, True
        if again:
            self.stopped.wait(RETIRE_SECONDS + 10)
            return
        with self.state_lock:
            workers = ([self.current] if self.current else []) + list(self.retiring)
            self.current = None
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                worker.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + RETIRE_SECONDS
        for worker in workers:
            try:
                worker.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait(5)
        self.record(status=status, message=message, worker_pid=None, supervisor_pid=None,
                    supervisor_started_at=None, control_port=None)
        log(f"{message}; supervisor exits")
        self.stopped.set()


def memory_mb(pid: int) -> float | None:
    """Resident memory of process ``pid`` and its children, in MiB (None: it is gone)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        total = proc.memory_info().rss
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
    except psutil.Error:
        return None
    return total / (1024 * 1024)


class ControlHandler(BaseHTTPRequestHandler):
    server: ControlServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        given = (self.headers.get(TOKEN_HEADER) or "").encode("utf-8", "replace")
        if not self.server.token or not hmac.compare_digest(given, self.server.token.encode()):
            self._reply(401, {"ok": False, "error": "wrong or missing token"})
            return False
        return True

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        data = json.loads(self.rfile.read(length) or b"{}") if length else {}
        return data if isinstance(data, dict) else {}

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        if not self._authorized():
            return
        sup = self.server.supervisor
        if self.path == "/status":
            current = sup.current
            self._reply(200, {"ok": True, "pid": os.getpid(), "port": sup.port,
                              "worker_pid": current.pid if current else None,
                              "model": current.deployment.label if current else None,
                              "retiring": [w.pid for w in sup.retiring], "restarts": sup.restarts,
                              "stopping": sup.stopping.is_set()})
        else:
            self._reply(404, {"ok": False, "error": f"no {self.path}"})

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        if not self._authorized():
            return
        sup = self.server.supervisor
        try:
            body = self._body()
        except ValueError as exc:
            self._reply(400, {"ok": False, "error": f"bad JSON: {exc}"})
            return
        if self.path == "/deploy":
            try:
                dep = Deployment.from_dict(body["deployment"])
            except (KeyError, TypeError) as exc:
                self._reply(400, {"ok": False, "error": f"bad deployment: {exc}"})
                return
            if body.get("stop_at") is not None or body.get("clear_stop_at"):
                sup.stop_at = body.get("stop_at")
            timeout = float(body.get("timeout") or 120)
            dep.options.setdefault("ready_timeout", timeout)
            deployment_id = body.get("deployment_id")
            if not body.get("wait", True):
                threading.Thread(target=self._deploy_quietly, args=(dep, timeout, deployment_id), daemon=True).start()
                self._reply(202, {"ok": True, "accepted": True})
                return
            try:
                self._reply(200, sup.deploy(dep, timeout=timeout, deployment_id=deployment_id))
            except DeployFailed as exc:
                self._reply(422, {"ok": False, "error": str(exc), "serving": sup.current.deployment.label
                                  if sup.current else None})
        elif self.path == "/deploy/cancel":
            wanted = body.get("deployment_id")
            in_flight = sup.deploying_id
            cancelled = in_flight is not None and (wanted is None or wanted == in_flight)
            if cancelled:
                sup.cancel_deploy.set()
                log(f"cancelling deployment {in_flight} on request")
            self._reply(200, {"ok": True, "cancelled": cancelled, "deployment_id": in_flight})
        elif self.path == "/stop":
            self._reply(200, {"ok": True, "stopping": True})
            message = str(body.get("message") or "stopped on request")
            threading.Thread(target=sup.stop, args=(message,), daemon=True).start()
        else:
            self._reply(404, {"ok": False, "error": f"no {self.path}"})

    def _deploy_quietly(self, dep: Deployment, timeout: float, deployment_id: str | None) -> None:
        with contextlib.suppress(DeployFailed):
            self.server.supervisor.deploy(dep, timeout=timeout, deployment_id=deployment_id)


class ControlServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sock: socket.socket, supervisor: Supervisor, token: str) -> None:
        super().__init__(sock.getsockname()[:2], ControlHandler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.supervisor = supervisor
        self.token = token


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m mloop.serving.supervisor",
                                description="Supervise the workers of one managed service (started by mloop).")
    p.add_argument("--service-id", required=True)
    p.add_argument("--listen-fd", type=int, required=True, help="the service's listening socket")
    p.add_argument("--control-fd", type=int, required=True, help="the loopback control socket")
    p.add_argument("--dir", required=True, help="the service's folder")
    p.add_argument("--log-file", default=None,
                   help="the service log, this process's stdout and stderr: rotated past its size limit")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    global _log_file
    if args.log_file:
        _log_file = RotatingLog(Path(args.log_file))
    token = os.environ.pop("MLOOP_SERVICE_TOKEN", "")
    url = os.environ.get("MLOOP_DATABASE_URL")
    if not token or not url:
        print("error: MLOOP_SERVICE_TOKEN and MLOOP_DATABASE_URL must be set (mloop starts this process)",
              file=sys.stderr)
        return 2
    from mloop.store import open_store

    store = open_store(url)
    listen_sock = socket.socket(fileno=args.listen_fd)
    listen_sock.set_inheritable(True)
    control_sock = socket.socket(fileno=args.control_fd)
    sup = Supervisor(args.service_id, listen_sock, Path(args.dir), store)
    server = ControlServer(control_sock, sup, token)

    def on_signal(signum: int, frame: Any) -> None:
        threading.Thread(target=sup.stop, args=(f"stopped by signal {signum}",), daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    log(f"pid {os.getpid()} supervises service {args.service_id} on port {sup.port}")
    sup.monitor()
    # Ended by a stop request, a signal, the schedule, or by itself (gave up, nothing to serve).
    status, message = sup.final
    sup.stop(message=message, status=status)
    time.sleep(0.2)  # let the control server answer a last /stop
    server.server_close()
    listen_sock.close()
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
