"""Managed inference services: deploy a registered model version, switch versions with no
dropped requests, list, stop, start, read logs, call.

The CLI (``mloop service``), the ServiceStep and a future REST API call these functions. The
machinery (the detached supervisor, its control endpoint) is in :mod:`mloop.serving.manager`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from mloop.errors import DeployFailedError, ManagedServiceError, MloopError
from mloop.store.services import DeploymentRecord, ServiceRecord, ServiceRepository, check_service_name

if TYPE_CHECKING:
    from mloop.context import Context

__all__ = ["DEFAULT_DEPLOY_TIMEOUT", "deploy", "get_service", "list_deployments", "list_services", "predict",
           "service_logs", "start_service", "stop_service"]

DEFAULT_DEPLOY_TIMEOUT = 180.0


def _repo(backend: Context) -> ServiceRepository:
    return backend.store.services


def _refresh(backend: Context, record: ServiceRecord) -> ServiceRecord:
    """A service whose supervisor died while it ran is marked failed (it says how to restart it)."""
    from mloop.serving.manager import supervisor_alive

    if record.status in ("running", "deploying") and record.supervisor_pid and not supervisor_alive(record):
        return _repo(backend).update(
            record.id, status="failed", worker_pid=None, control_port=None,
            message=f"its supervisor (pid {record.supervisor_pid}) is gone; `mloop service start {record.name}` "
                    "restarts the service")
    return record


def get_service(backend: Context, name: str) -> ServiceRecord:
    """A service by name (or id), its status checked against its processes.

    Raises:
        NotFoundError: no such service.
    """
    return _refresh(backend, _repo(backend).get(name))


def list_services(backend: Context) -> list[ServiceRecord]:
    """Every service, by name, statuses checked against their processes."""
    return [_refresh(backend, s) for s in _repo(backend).list_all()]


def list_deployments(backend: Context, name: str, limit: int = 20) -> list[DeploymentRecord]:
    """A service's latest deployments, newest first."""
    return _repo(backend).list_deployments(_repo(backend).get(name).id, limit)


def deploy(backend: Context, service_name: str, model_ref: str, *, port: int | None = None, host: str = "127.0.0.1",
           max_batch_size: int | None = None, max_wait_ms: float | None = None, batching: bool = True,
           max_body_bytes: int | None = None, threads: int | None = None, envs: dict[str, str] | None = None,
           inference_timeout: float | None = None, max_memory_mb: float | None = None,
           schedule_hours: float | None = None, wait: bool = True, timeout: float = DEFAULT_DEPLOY_TIMEOUT,
           run_id: str | None = None, step_name: str | None = None,
           on_deployment: Callable[[str], None] | None = None) -> ServiceRecord:
    """Deploy a registered model version as service ``service_name``: a new service, or a
    switch of an existing one to this version with no dropped requests.

    Args:
        backend: the open backend.
        service_name: the service (1-64 letters, digits, ``-``, ``_``).
        model_ref: ``NAME``, ``NAME:VERSION`` or ``NAME@alias``. A service deployed from an
            alias follows it: moving the alias (``mloop model alias``) redeploys the service.
        port: the port of a new service (None: a free one). An existing service keeps its port.
        host: the address a new service listens on.
        max_batch_size, max_wait_ms, batching, max_body_bytes, threads: the worker's options
            (None: the server's defaults).
        envs: environment variables for the worker process.
        inference_timeout: seconds one prediction may take before it is answered 504 (None:
            the worker's default, 60; 0: no limit); a worker stuck in a call past it is replaced.
        max_memory_mb: a worker whose memory (RSS) grows past this is replaced (None: no limit).
        schedule_hours: stop the service this many hours from now (None or -1: keep running).
        wait: return once the version is live (or failed); False returns at once (``deploying``).
        timeout: seconds the new worker gets to load and become ready.
        run_id, step_name: who deployed it (kept with the deployment).
        on_deployment: called with the deployment's id once it is recorded, before the new
            worker starts (what :func:`cancel_deploy` needs to stop this deploy).

    Returns:
        The service as it is now (``running`` on success with ``wait``).

    Raises:
        ModelError, NotFoundError: a bad or unknown model reference.
        ManagedServiceError: a bad name, a port already taken, a supervisor that does not answer.
        DeployFailedError: the new version did not go live (the message is the loader's error);
            the previous version, if any, keeps serving.
    """
    from mloop.serving import manager
    from mloop.services.models import get_model_version, model_local_path

    check_service_name(service_name)
    version = get_model_version(backend, model_ref)
    model_dir = model_local_path(backend, version)
    repo = _repo(backend)
    home = backend.settings.home_path
    record = repo.find(service_name)
    if record is None:
        record = repo.create(service_name, host=host, port=port,
                             log_path=str(manager.service_dir(home, service_name) / "service.log"))
    manager.require_local(record)
    alive = manager.supervisor_alive(record)
    if port is not None and record.port is not None and port != record.port and alive:
        raise ManagedServiceError(f"service {service_name!r} listens on port {record.port}, not {port}",
                                  hint=f"leave --port out to keep {record.port}, or `mloop service stop "
                                       f"{service_name}` first to move it", service=service_name)
    # The type the registry recorded at registration: the worker loads with it, not a second guess.
    options = {k: v for k, v in {"max_batch_size": max_batch_size, "max_wait_ms": max_wait_ms,
                                 "batching": batching, "max_body_bytes": max_body_bytes,
                                 "threads": threads, "model_type": version.model_type,
                                 "inference_timeout": inference_timeout,
                                 "max_memory_mb": max_memory_mb}.items() if v is not None}
    stop_at = None if schedule_hours is None or schedule_hours < 0 else \
        datetime.now(timezone.utc) + timedelta(hours=schedule_hours)
    deployment = repo.add_deployment(record.id, model_name=version.name, model_version=version.version,
                                     model_id=version.model_id, run_id=run_id, step_name=step_name)
    if on_deployment is not None:
        on_deployment(deployment.id)
    follows = model_ref.partition("@")[2] or None
    record = repo.update(record.id, desired_model_name=version.name, desired_model_version=version.version,
                         follows=follows, run_id=run_id, step_name=step_name, stop_at=stop_at,
                         **({"port": port} if port is not None and not alive else {}))
    if not alive:
        manager.kill_orphans(home, service_name)
        try:
            record = manager.start_supervisor(repo, record, database_url=backend.settings.resolved_database_url,
                                              home=home)
        except ManagedServiceError as exc:
            repo.finish_deployment(deployment.id, "failed", str(exc))
            repo.update(record.id, status="failed", message=str(exc))
            raise
    else:
        record = manager.secure_legacy_token(repo, record)  # a plain token in the row: to hash + file
    body = {"deployment": {"model_dir": str(model_dir), "model_name": version.name,
                           "model_version": version.version, "model_id": version.model_id,
                           "options": options, "envs": dict(envs or {})},
            "deployment_id": deployment.id, "timeout": timeout, "wait": wait,
            "stop_at": stop_at.timestamp() if stop_at else None, "clear_stop_at": stop_at is None}
    try:
        status, answer = manager.control(record, "POST", "/deploy", body, timeout=timeout + 30)
    except ManagedServiceError as exc:
        repo.finish_deployment(deployment.id, "failed", str(exc))
        raise
    if status in (200, 202) and answer.get("ok"):
        return repo.get(record.id)
    error = str(answer.get("error") or f"the supervisor answered {status}")
    serving = answer.get("serving")
    if status != 422:
        repo.finish_deployment(deployment.id, "failed", error)
    if serving:
        hint = f"{serving} keeps serving at {record.url}; fix the model and deploy again"
    else:
        hint = (f"nothing is served by {service_name!r}; fix the model and deploy again "
                f"(log: {record.log_path})")
    raise DeployFailedError(f"deploying {version.ref} to service {service_name!r} failed: {error}", hint=hint,
                            service=service_name, model=version.ref)


def cancel_deploy(backend: Context, service_name: str, deployment_id: str | None = None) -> bool:
    """Stop a deploy in flight to ``service_name`` (only deployment ``deployment_id``, when
    given): its new worker is killed and the version served before, if any, keeps serving.
    True if a deploy was cancelled; False if none was in flight (it had ended, or no
    supervisor runs)."""
    from mloop.serving import manager

    record = _repo(backend).find(service_name)
    if record is None or not manager.supervisor_alive(record):
        return False
    try:
        status, answer = manager.control(record, "POST", "/deploy/cancel", {"deployment_id": deployment_id})
    except ManagedServiceError:
        return False
    return status == 200 and bool(answer.get("cancelled"))


def start_service(backend: Context, name: str, *, timeout: float = DEFAULT_DEPLOY_TIMEOUT) -> ServiceRecord:
    """Start a stopped (or failed) service again on its port, with the version it last served
    (or was last asked to serve). A running service is left as it is.

    Raises:
        NotFoundError: no such service.
        ManagedServiceError: it never had a version to serve, or its port is taken.
        DeployFailedError: that version does not load any more.
    """
    record = get_service(backend, name)
    from mloop.serving.manager import supervisor_alive

    if supervisor_alive(record) and record.status in ("running", "deploying"):
        return record
    model = record.model_name or record.desired_model_name
    version = record.model_version or record.desired_model_version
    if not model or not version:
        raise ManagedServiceError(f"service {name!r} has never had a version to serve",
                                  hint=f"deploy one: `mloop service deploy {name} MODEL[:VERSION]`", service=name)
    opts = dict(record.config.get("options") or {})
    return deploy(backend, record.name, f"{model}:{version}", envs=record.config.get("envs") or None,
                  max_batch_size=opts.get("max_batch_size"), max_wait_ms=opts.get("max_wait_ms"),
                  batching=opts.get("batching", True), max_body_bytes=opts.get("max_body_bytes"),
                  threads=opts.get("threads"), inference_timeout=opts.get("inference_timeout"),
                  max_memory_mb=opts.get("max_memory_mb"), timeout=timeout)


def stop_service(backend: Context, name: str, *, timeout: float = 60.0) -> ServiceRecord:
    """Stop a service: in-flight requests finish, then its workers and supervisor end; the
    port is released. Stopping a stopped service does nothing.

    Raises:
        NotFoundError: no such service.
    """
    from mloop.serving import manager

    record = _repo(backend).get(name)
    return manager.stop_supervisor(_repo(backend), record, home=backend.settings.home_path, timeout=timeout)


def service_logs(backend: Context, name: str, *, tail: int | None = 200, follow: bool = False,
                 poll_seconds: float = 0.25) -> Iterator[str]:
    """Lines of the service log (supervisor and workers), the last ``tail`` (None: all); with
    ``follow``, then every new line as it is written, until the caller stops iterating.

    The log rotates (``service.log.1``, ``.2`` ... hold older lines): lines the current file
    lacks are taken from the rotated ones, and ``follow`` moves on to the new file.

    Raises:
        NotFoundError: no such service.
    """
    record = _repo(backend).get(name)
    path = Path(record.log_path)
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        if not follow:
            return
        while not path.exists():
            time.sleep(poll_seconds)
        fh = open(path, "rb")
    try:
        lines = fh.read().decode("utf-8", "replace").splitlines()
        for older in _rotated_logs(path):  # newest first
            if tail is not None and len(lines) >= tail:
                break
            try:
                lines = older.read_bytes().decode("utf-8", "replace").splitlines() + lines
            except OSError:
                break
        yield from (lines if tail is None else lines[-tail:] if tail > 0 else [])
        if not follow:
            return
        partial = b""
        while True:
            chunk = fh.read()
            if not chunk:
                if _rotated_away(path, fh):  # all of the old file is read: go on in the new one
                    try:
                        newer = open(path, "rb")
                    except FileNotFoundError:
                        newer = None
                    if newer is not None:
                        fh.close()
                        fh = newer
                        continue
                time.sleep(poll_seconds)
                continue
            partial += chunk
            *done, partial = partial.split(b"\n")
            for line in done:
                yield line.decode("utf-8", "replace")
    finally:
        fh.close()


def _rotated_logs(path: Path) -> list[Path]:
    """``path.1``, ``path.2`` ... as long as they exist (newest first)."""
    found = []
    for i in range(1, 100):
        older = path.with_name(f"{path.name}.{i}")
        if not older.is_file():
            break
        found.append(older)
    return found


def _rotated_away(path: Path, fh: Any) -> bool:
    """Whether the file open as ``fh`` is no longer the one at ``path`` (the log rotated)."""
    try:
        return os.stat(path).st_ino != os.fstat(fh.fileno()).st_ino
    except OSError:
        return False


def predict(backend: Context, name: str, payload: Any = None, *, file: str | os.PathLike[str] | None = None,
            upload: tuple[str, bytes, str] | None = None, timeout: float = 30.0) -> Any:
    """Call a service: ``payload`` as JSON (e.g. ``{"inputs": [[...]]}``), or ``file`` uploaded
    as multipart form field ``file`` (an image), or ``upload`` (file name, bytes, content type:
    what a form received). Returns the parsed JSON answer.

    Raises:
        NotFoundError: no such service.
        ManagedServiceError: the service is not running, or answered with an error (the
            service's message and hint are passed on).
    """
    import httpx

    record = get_service(backend, name)
    if record.status not in ("running", "deploying") or not record.url:
        raise ManagedServiceError(f"service {name!r} is {record.status}" + (f": {record.message}"
                                                                            if record.message else ""),
                                  hint=f"start it with `mloop service start {name}`", service=name)
    url = record.url.rstrip("/") + "/predict"
    try:
        if upload is not None:
            filename, data, content_type = upload
            response = httpx.post(url, files={"file": (Path(filename).name or "upload", data,
                                                       content_type or _content_type(Path(filename)))},
                                  timeout=timeout)
        elif file is not None:
            path = Path(file)
            with open(path, "rb") as fh:
                response = httpx.post(url, files={"file": (path.name, fh.read(), _content_type(path))},
                                      timeout=timeout)
        else:
            response = httpx.post(url, json=payload, timeout=timeout)
    except FileNotFoundError as exc:
        raise ManagedServiceError(f"no file {file}", hint="give the path of an image to send") from exc
    except httpx.HTTPError as exc:
        raise ManagedServiceError(f"service {name!r} at {record.url} did not answer: {exc}",
                                  hint=f"see `mloop service logs {name}`", service=name) from exc
    try:
        body = response.json()
    except json.JSONDecodeError:
        body = {"error": response.text}
    if response.status_code >= 400:
        error = body.get("error") if isinstance(body, dict) else body
        hint = body.get("hint") if isinstance(body, dict) else None
        raise ManagedServiceError(f"service {name!r} answered {response.status_code}: {error}",
                                  hint=hint or f"see `mloop service logs {name}`", service=name,
                                  status=response.status_code)
    return body


def _content_type(path: Path) -> str:
    return {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".bmp": "image/bmp",
            ".gif": "image/gif", ".json": "application/json"}.get(path.suffix.lower(), "application/octet-stream")


@dataclass
class FollowResult:
    """What moving an alias did to one service that follows it."""

    service: str
    model_ref: str
    error: str | None = None  # None: the service now serves ``model_ref``


def follow_alias(backend: Context, model_name: str, alias: str) -> list[FollowResult]:
    """Redeploy every service that follows ``model_name@alias`` to the version the alias names
    now (each switch drops no requests; one that fails leaves that service on its version).
    Stopped services are left alone: they pick the alias up when started."""
    results = []
    for record in _repo(backend).list_all():
        if record.follows != alias or record.desired_model_name != model_name or record.status == "stopped":
            continue
        try:
            now = deploy(backend, record.name, f"{model_name}@{alias}")
            results.append(FollowResult(record.name, str(now.model_ref)))
        except MloopError as exc:
            results.append(FollowResult(record.name, f"{model_name}@{alias}", str(exc)))
    return results
