"""The deployer's side of managed services: start a service's supervisor, talk to it, stop it.

A managed service is a detached supervisor process (:mod:`mloop.serving.supervisor`) plus
its workers. The deployer binds the service's listening socket itself (so a taken port is
reported at once, to the caller) together with a loopback control socket, and hands both to
the supervisor it starts (``pass_fds``, ``start_new_session=True``: the supervisor outlives
``mloop run``). Everything needed to find the supervisor again is in the ``services`` row:
``supervisor_pid`` and ``supervisor_started_at`` (a dead supervisor whose pid was reused is
not mistaken for alive), ``control_port`` and ``token``: the SHA-256 of the control token
(``sha256:<hex>``), never the token itself, which lives in an owner-only file in the service's
folder (:func:`token_path`; 0600 in a 0700 folder). A row holding a plain token (written by an
older mloop) is legacy: it is used once more and rewritten as hash + file on the next deploy.

The control protocol is small JSON over HTTP on 127.0.0.1 (see the supervisor):
``GET /status``, ``POST /deploy`` (answers once the new version is live, or with the loader's
error), ``POST /stop``.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from mloop.errors import ManagedServiceError
from mloop.store.services import ServiceRecord, ServiceRepository

__all__ = ["SUPERVISOR_MODULE", "bind_service_socket", "control", "kill_orphans", "service_dir", "start_supervisor",
           "stop_supervisor", "supervisor_alive", "wait_gone"]

SUPERVISOR_MODULE = "mloop.serving.supervisor"
WORKER_MODULE = "mloop.serving.worker"
TOKEN_HEADER = "X-Mloop-Token"
TOKEN_FILE = "control.token"
TOKEN_DIGEST_PREFIX = "sha256:"


def service_dir(home: Path, name: str) -> Path:
    """The folder of service ``name`` (its log, the workers' ready files)."""
    return home / "services" / name


def token_digest(token: str) -> str:
    """What the ``services`` row stores for a control token: ``sha256:<hex>`` (it authorises nothing)."""
    return TOKEN_DIGEST_PREFIX + hashlib.sha256(token.encode()).hexdigest()


def token_path(record: ServiceRecord) -> Path:
    """The owner-only file holding the control token of ``record``'s supervisor (in the
    service's folder, beside its log)."""
    return Path(record.log_path).parent / TOKEN_FILE


def _write_token_file(path: Path, token: str) -> None:
    # Owner-only whatever the umask: the folder 0700, the file created 0600 (then renamed into
    # place, so a reader never sees it half written or with looser bits).
    from mloop.context import make_private_home

    make_private_home(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, token.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def control_token(record: ServiceRecord) -> str | None:
    """The token to send to ``record``'s supervisor: from its owner-only file (checked against
    the hash the row holds), or the plain token of a legacy row. None: the row has none.

    Raises:
        ManagedServiceError: the file is missing or unreadable, or holds another token.
    """
    stored = record.token
    if not stored:
        return None
    if not stored.startswith(TOKEN_DIGEST_PREFIX):
        return stored  # legacy row: rewritten as hash + file on the next deploy
    path = token_path(record)
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise ManagedServiceError(f"cannot read the control token of service {record.name!r} ({path}): "
                                  f"{exc.strerror or exc}",
                                  hint=f"`mloop service stop {record.name}` then `mloop service start "
                                       f"{record.name}` gives it a new one", service=record.name) from exc
    if token_digest(token) != stored:
        raise ManagedServiceError(f"the control token file of service {record.name!r} ({path}) does not match "
                                  f"its supervisor", hint=f"`mloop service stop {record.name}` then `mloop service "
                                  f"start {record.name}` gives it a new one", service=record.name)
    return token


def secure_legacy_token(repo: ServiceRepository, record: ServiceRecord) -> ServiceRecord:
    """A row holding a plain control token (older mloop): move the token to the owner-only
    file and keep only its hash in the row. Other rows are returned as they are."""
    stored = record.token
    if not stored or stored.startswith(TOKEN_DIGEST_PREFIX):
        return record
    _write_token_file(token_path(record), stored)
    return repo.update(record.id, token=token_digest(stored))


def supervisor_alive(record: ServiceRecord) -> bool:
    """Whether the service's recorded supervisor is still that process (not a reused pid, not a zombie)."""
    if not record.supervisor_pid:
        return False
    if record.supervisor_host and record.supervisor_host != socket.gethostname():
        return True  # another machine's supervisor: not ours to judge
    try:
        process = psutil.Process(record.supervisor_pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        started = process.create_time()
    except psutil.Error:
        return False
    return record.supervisor_started_at is None or abs(started - record.supervisor_started_at) < 1.0


def require_local(record: ServiceRecord) -> None:
    """Refuse to manage a service whose supervisor runs on another machine (its control
    endpoint is loopback-only there).

    Raises:
        ManagedServiceError: it does.
    """
    if record.supervisor_pid and record.supervisor_host and record.supervisor_host != socket.gethostname() \
            and supervisor_alive(record):
        raise ManagedServiceError(f"service {record.name!r} runs on {record.supervisor_host}, not on this machine",
                                  hint=f"run the command on {record.supervisor_host}", service=record.name)


def bind_service_socket(host: str, port: int | None) -> socket.socket:
    """The service's listening socket (port None or 0: a free one).

    Raises:
        ManagedServiceError: the port is taken (or the host is not an address of this machine).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port or 0))
    except OSError as exc:
        sock.close()
        raise ManagedServiceError(f"cannot listen on {host}:{port or 0}: {exc.strerror or exc}",
                                  hint="choose another port (--port), or stop what uses this one") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def control(record: ServiceRecord, method: str, path: str, body: dict[str, Any] | None = None, *,
            timeout: float = 10.0) -> tuple[int, dict[str, Any]]:
    """One request to the service's supervisor; returns (HTTP status, JSON body).

    Raises:
        ManagedServiceError: the supervisor did not answer.
    """
    token = control_token(record) if record.control_port else None
    if not record.control_port or not token:
        raise ManagedServiceError(f"service {record.name!r} has no supervisor to talk to",
                                  hint=f"start it with `mloop service start {record.name}`", service=record.name)
    conn = http.client.HTTPConnection("127.0.0.1", record.control_port, timeout=timeout)
    try:
        data = json.dumps(body or {}).encode()
        conn.request(method, path, body=data if method == "POST" else None,
                     headers={TOKEN_HEADER: token, "Content-Type": "application/json"})
        response = conn.getresponse()
        raw = response.read()
        try:
            parsed = json.loads(raw or b"{}")
        except ValueError:
            parsed = {"error": raw.decode("utf-8", "replace")}
        return response.status, parsed if isinstance(parsed, dict) else {"value": parsed}
    except (OSError, http.client.HTTPException) as exc:
        raise ManagedServiceError(f"the supervisor of service {record.name!r} (pid {record.supervisor_pid}) did "
                                  f"not answer on control port {record.control_port}: {exc}",
                                  hint=f"see `mloop service logs {record.name}`; `mloop service start "
                                       f"{record.name}` restarts it", service=record.name) from exc
    finally:
        conn.close()


def _reap(proc: subprocess.Popen[bytes]) -> None:
    # The supervisor is our child until we exit: wait for it in the background, so one that
    # ends while we live does not stay a zombie (which still "exists" to pid checks).
    threading.Thread(target=proc.wait, daemon=True, name=f"reap-{proc.pid}").start()


def start_supervisor(repo: ServiceRepository, record: ServiceRecord, *, database_url: str, home: Path,
                     timeout: float = 60.0) -> ServiceRecord:
    """Start the supervisor of ``record`` (whose old one, if any, is gone) on its port.

    Binds the service socket (``record.port``, or a free port for a service that has none) and
    a loopback control socket, starts ``python -m mloop.serving.supervisor`` detached with both,
    records its pid, ports and token, and waits until it answers.

    Raises:
        ManagedServiceError: the port is taken, or the supervisor died or did not answer in time.
    """
    folder = service_dir(home, record.name)
    folder.mkdir(parents=True, exist_ok=True)
    listen = bind_service_socket(record.host, record.port)
    ctl = bind_service_socket("127.0.0.1", 0)
    token = secrets.token_hex(16)
    port, ctl_port = int(listen.getsockname()[1]), int(ctl.getsockname()[1])
    shown = "127.0.0.1" if record.host in ("0.0.0.0", "", "::") else record.host
    url = f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"
    env = {**os.environ, "MLOOP_DATABASE_URL": database_url, "MLOOP_SERVICE_TOKEN": token,
           "MLOOP_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    log_path = Path(record.log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        _write_token_file(token_path(record), token)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", SUPERVISOR_MODULE, "--service-id", record.id,
                 "--listen-fd", str(listen.fileno()), "--control-fd", str(ctl.fileno()), "--dir", str(folder),
                 "--log-file", str(log_path)],
                pass_fds=(listen.fileno(), ctl.fileno()), stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                cwd=str(folder), start_new_session=True)
    finally:
        listen.close()
        ctl.close()
    _reap(proc)
    try:
        started = psutil.Process(proc.pid).create_time()
    except psutil.Error:
        started = None
    record = repo.update(record.id, port=port, url=url, control_port=ctl_port, token=token_digest(token),
                         supervisor_pid=proc.pid,
                         supervisor_started_at=started, supervisor_host=socket.gethostname())
    return _await_supervisor(record, proc, timeout=timeout)


def _await_supervisor(record: ServiceRecord, proc: subprocess.Popen[bytes], *, timeout: float) -> ServiceRecord:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ManagedServiceError(
                f"the supervisor of service {record.name!r} exited with code {proc.returncode} at start",
                hint=f"see its log: {record.log_path}\n{log_tail(Path(record.log_path), 10)}", service=record.name)
        try:
            status, body = control(record, "GET", "/status", timeout=max(1.0, deadline - time.monotonic()))
        except ManagedServiceError as exc:
            last = exc
            time.sleep(0.1)
            continue
        if status == 200 and body.get("ok"):
            return record
        last = ManagedServiceError(f"unexpected answer {status}: {body}")
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    raise ManagedServiceError(f"the supervisor of service {record.name!r} did not answer within {timeout:g} s ({last})",
                              hint=f"see its log: {record.log_path}", service=record.name)


def log_tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a log file ('' if it has none)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def service_processes(home: Path, name: str) -> list[psutil.Process]:
    """Every live supervisor and worker process of service ``name`` (found by their command lines)."""
    folder = str(service_dir(home, name))
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if len(cmd) < 3 or cmd[1:3] not in (["-m", SUPERVISOR_MODULE], ["-m", WORKER_MODULE]):
            continue
        if any(arg == folder or arg.startswith(folder + os.sep) for arg in cmd):
            with contextlib.suppress(psutil.Error):
                if proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
    return found


def kill_orphans(home: Path, name: str, grace: float = 5.0) -> list[int]:
    """End what is left of a service whose supervisor died (its workers still hold the port):
    SIGTERM, then SIGKILL after ``grace`` seconds. Returns the pids ended."""
    procs = service_processes(home, name)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)
    return [p.pid for p in procs]


def wait_gone(pid: int, started: float | None, timeout: float) -> bool:
    """Wait until process ``pid`` (started at ``started``) has ended; True if it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            proc = psutil.Process(pid)
            reused = started is not None and abs(proc.create_time() - started) >= 1
            if reused or proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.Error:
            return True
        time.sleep(0.05)
    return False


def stop_supervisor(repo: ServiceRepository, record: ServiceRecord, *, home: Path, timeout: float = 60.0,
                    message: str = "stopped on request") -> ServiceRecord:
    """Stop a service: its supervisor drains and ends its workers, then exits; whatever is left
    after ``timeout`` (or of a supervisor already dead) is killed. Returns the stopped record."""
    require_local(record)
    if supervisor_alive(record):
        with contextlib.suppress(ManagedServiceError):
            control(record, "POST", "/stop", {"message": message}, timeout=10)
        assert record.supervisor_pid is not None
        if not wait_gone(record.supervisor_pid, record.supervisor_started_at, timeout):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(record.supervisor_pid, signal.SIGKILL)
    kill_orphans(home, record.name)
    current = repo.get(record.id)
    if current.status != "stopped" or current.supervisor_pid is not None:
        keep_failed = current.status == "failed" and not supervisor_alive(record)
        current = repo.update(record.id, status="failed" if keep_failed else "stopped",
                              message=current.message if keep_failed else message, worker_pid=None,
                              supervisor_pid=None, supervisor_started_at=None, control_port=None)
    return current
