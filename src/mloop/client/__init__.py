"""Client mode: the CLI and the SDK verbs talking to an mloop server instead of running here.

With ``MLOOP_SERVER_URL`` (or ``server_url`` in ``mloop.toml``, or ``mloop login``) and a token,
``mloop run`` uploads the workflow's code folders (content-addressed: only files the server
lacks travel), releases the spec on the server, queues the run there and shows it live with
the same display and exit codes as a run in this process. ``runs``, ``show``, ``logs``,
``stop``, ``retry`` and ``input`` read and act on the server's runs.

Layer: door (a client of the REST API; it imports the spec, the renderer's types and errors,
never the store or the engine).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop import errors
from mloop.errors import ConfigError, MloopError

if TYPE_CHECKING:
    import httpx

    from mloop.config import Settings
    from mloop.engine.engine import Listener
    from mloop.runs.service import RunResult
    from mloop.spec.models import WorkflowSpec
    from mloop.store.base import RunRecord, StepRecord

__all__ = ["Client", "ServerError", "client_for", "credentials_path", "save_credentials"]

#: Folders and files a code upload leaves out (as git and most packagers do).
SKIP_DIRS = frozenset({".git", "__pycache__", ".mloop", ".venv", "venv", "node_modules", ".mypy_cache",
                       ".pytest_cache"})


class ServerError(MloopError):
    """The server could not be reached or answered something that is not mloop's JSON."""

    code = "server_unreachable"
    exit_code = 5


def credentials_path() -> Path:
    """Where ``mloop login`` keeps the server URL and token (owner-only)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "mloop" / "credentials.json"


def save_credentials(url: str, token: str) -> Path:
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"server_url": url, "token": token}, fh)
    os.chmod(path, 0o600)
    return path


def _error_class(code: str) -> type[MloopError]:
    for value in vars(errors).values():
        if isinstance(value, type) and issubclass(value, MloopError) and value.code == code:
            return value
    return MloopError


def _rebuild(body: dict[str, Any], status: int) -> MloopError:
    """The error the server answered, as the class with its code (so exit codes match)."""
    message = str(body.get("message") or body.get("error") or f"HTTP {status}")
    cls = _error_class(str(body.get("code", "")))
    exc = MloopError.__new__(cls)
    MloopError.__init__(exc, message, hint=body.get("hint"))
    if not isinstance(exc, MloopError):  # pragma: no cover - every class found is one
        return MloopError(message)
    return exc


class Client:
    """The REST API of one server, with one token."""

    def __init__(self, url: str, token: str | None, *, timeout: float = 60.0) -> None:
        import httpx

        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"server_url {url!r} is not an http(s) URL", hint="e.g. http://mloop.internal:8080")
        if not token:
            raise ConfigError(f"no token for the server at {url}",
                              hint="set MLOOP_TOKEN (or run `mloop login URL`); the server prints an admin "
                                   "token on first start and `mloop token create NAME` makes more")
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"}
        self.http: httpx.Client = httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- calls -----------------------------------------------------------------------------
    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServerError(f"cannot reach the mloop server at {self.url} ({type(exc).__name__}: {exc})",
                              hint="is `mloop server` running there? check MLOOP_SERVER_URL") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            if isinstance(body, dict) and ("code" in body or "message" in body):
                raise _rebuild(body, response.status_code)
            raise ServerError(f"the server answered HTTP {response.status_code} to {method} {path}",
                              hint=response.text[:200] or None)
        return body

    # -- code and releases -----------------------------------------------------------------
    def upload_folder(self, folder: Path) -> str:
        """Send ``folder``'s files the server lacks; the path of the same folder on the server."""
        files: dict[str, dict[str, Any]] = {}
        blobs: dict[str, Path] = {}
        for path in sorted(_walk(folder)):
            rel = path.relative_to(folder).as_posix()
            digest = _sha256(path)
            files[rel] = {"digest": digest, "executable": bool(path.stat().st_mode & stat.S_IXUSR)}
            blobs[digest] = path
        missing = self.call("POST", "/code/missing", json={"digests": list(blobs)})["missing"]
        for digest in missing:
            self.call("PUT", f"/code/blobs/{digest}", content=blobs[digest].read_bytes(),
                      headers={"content-type": "application/octet-stream"})
        return str(self.call("POST", "/code/trees", json={"files": files})["path"])

    def release(self, spec: WorkflowSpec) -> dict[str, Any]:
        """Upload the code of ``spec`` and release it on the server."""
        from mloop.runs.service import ci_metadata
        from mloop.spec import dump_spec

        data = dump_spec(spec)
        uploaded: dict[str, str] = {}
        for step in data.get("steps", []):
            algorithm = (step.get("properties") or {}).get("algorithm") or {}
            code_dir = algorithm.get("code_dir")
            if not code_dir or str(code_dir).lower().startswith("obs://"):
                continue  # an obs:// code folder is the server's (under its obs root)
            local = Path(code_dir if os.path.isabs(code_dir) else os.path.join(spec.source_dir or ".", code_dir))
            if not local.is_dir():
                raise ConfigError(f"step {step.get('name')!r}: code_dir {str(local)!r} is not a folder here")
            key = str(local.resolve())
            if key not in uploaded:
                uploaded[key] = self.upload_folder(local)
            algorithm["code_dir"] = uploaded[key]
        data["extend"] = {**ci_metadata(spec.source_dir), **(data.get("extend") or {})}
        data["source_dir"] = None
        result: dict[str, Any] = self.call("POST", "/releases", json={"spec": data})
        return result

    # -- runs --------------------------------------------------------------------------------
    def submit(self, workflow: str, version: int | None, values: dict[str, Any],
               steps: list[str] | None, *, cache: bool = True) -> dict[str, Any]:
        """Queue a run of a released workflow; ``cache=False``: its job steps reuse no earlier result."""
        body = {"workflow": workflow, "version": version, "parameters": values, "steps": steps, "cache": cache}
        result: dict[str, Any] = self.call("POST", "/runs", json=body)
        return result

    def run(self, run_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", f"/runs/{run_id}")
        return result

    def events(self, run_id: str, after: int = 0) -> Iterator[dict[str, Any]]:
        """Transitions of a run from after ``after`` until it ends (reconnecting with
        ``Last-Event-ID`` if the stream drops)."""
        import httpx

        last = after
        while True:
            try:
                with self.http.stream("GET", f"/runs/{run_id}/events", headers={"Last-Event-ID": str(last)},
                                      timeout=httpx.Timeout(60, read=None)) as response:
                    if response.status_code >= 400:
                        response.read()
                        body = response.json()
                        raise _rebuild(body, response.status_code)
                    event = None
                    for line in response.iter_lines():
                        if line.startswith("event: "):
                            event = line[7:]
                            if event == "end":
                                return
                        elif line.startswith("data: ") and event == "transition":
                            frame = json.loads(line[6:])
                            last = int(frame["id"])
                            yield frame
                return
            except httpx.TransportError:
                time.sleep(1.0)  # the server restarts or the network blinks: resume after `last`


# -- records from the API's JSON ---------------------------------------------------------------------
def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def run_record(data: dict[str, Any]) -> RunRecord:
    from mloop.store.base import RunRecord

    return RunRecord(id=data["id"], release_id=data["release_id"], workflow_name=data["workflow"],
                     number=data["number"], status=data["status"], params=data.get("params") or {},
                     created_at=_when(data["created_at"]) or datetime.now(timezone.utc),
                     started_at=_when(data.get("started_at")), finished_at=_when(data.get("finished_at")),
                     message=data.get("message"), attempt=data.get("attempt", 1), origin=data.get("origin"),
                     storages=data.get("storages") or {})


def step_record(run: RunRecord, data: dict[str, Any]) -> StepRecord:
    from mloop.store.base import StepRecord

    return StepRecord(run_id=run.id, name=data["name"], type=data["type"], status=data["status"],
                      attempt=data.get("attempt", 0), created_at=run.created_at,
                      started_at=_when(data.get("started_at")), finished_at=_when(data.get("finished_at")),
                      exit_code=data.get("exit_code"), message=data.get("message"),
                      outputs=data.get("outputs") or {}, code_hash=data.get("code_hash"),
                      cached_from=data.get("cached_from"), environment=data.get("environment"))


@dataclass
class RemoteRun:
    """Watches a run the server executes, feeding a display as the engine's listener would."""

    client: Client
    run_id: str
    tail_lines: int = 20

    def execute(self, listener: Listener | None) -> RunResult:
        from mloop.engine.engine import StepView
        from mloop.runs.service import RunResult

        detail = self.client.run(self.run_id)
        views = {s["name"]: StepView(name=s["name"], type=s["type"], status=s["status"]) for s in detail["steps"]}
        if listener is not None:
            for view in views.values():
                listener(view)
        for frame in self.client.events(self.run_id):
            name = frame.get("step")
            if name is None or name not in views or listener is None:
                continue
            view = views[name]
            view.status = frame["to"]
            view.message = frame.get("message")
            at = _when(frame.get("at"))
            stamp = at.timestamp() if at else time.time()
            if view.status == "running":
                view.started, view.finished = stamp, None
            elif view.status in ("succeeded", "failed", "stopped", "skipped"):
                view.finished = stamp
            listener(view)
        return self.result()

    def result(self) -> RunResult:
        from mloop.runs.service import RunResult

        detail = self.client.run(self.run_id)
        run = run_record(detail)
        steps = [step_record(run, s) for s in detail["steps"]]
        failed = next((s for s in steps if s.status == "failed"), None)
        tail: list[str] = []
        if failed is not None:
            lines = self.client.call("GET", f"/runs/{run.id}/logs", params={"step": failed.name,
                                                                            "tail": self.tail_lines})
            tail = [entry["line"] for entry in lines]
        waiting = [s for s in steps if s.status == "waiting_input"] if run.status == "waiting_input" else []
        return RunResult(run, failed, tail, waiting)


def client_for(settings: Settings) -> Client | None:
    """The client the settings ask for (None: embedded mode, runs happen here).

    The server comes from ``server_url`` (``MLOOP_SERVER_URL``, or its short form
    ``MLOOP_SERVER``, or ``mloop.toml``), else from ``mloop login``'s credentials file; the
    token likewise (``MLOOP_TOKEN`` wins over the file).
    """
    url = settings.server_url or os.environ.get("MLOOP_SERVER") or None
    token = settings.token
    if url is None:
        saved = _saved_credentials()
        url = saved.get("server_url")
        token = token or saved.get("token")
    if not url:
        return None
    return Client(url, token)


def _saved_credentials() -> dict[str, str]:
    path = credentials_path()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"{path} is readable by other users; it holds a token",
                          hint=f"chmod 600 {path} (or `mloop login` again)")
    return {k: str(v) for k, v in data.items() if k in ("server_url", "token") and isinstance(v, str)}


def _walk(folder: Path) -> Iterator[Path]:
    for root, dirs, names in os.walk(folder, followlinks=False):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not os.path.islink(os.path.join(root, d))]
        for name in names:
            path = Path(root) / name
            if path.is_symlink() or not path.is_file() or name.endswith((".pyc", ".pyo")):
                continue
            yield path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def watch_remote(client: Client, run: dict[str, Any], watch: Callable[..., RunResult] | None) -> RunResult:
    """Show a server's run with ``watch`` (a :class:`~mloop.console.Watcher`) until it ends."""
    remote = RemoteRun(client, run["id"])
    if watch is None:
        for _ in client.events(run["id"]):
            pass
        return remote.result()
    return watch(run_record(run), remote.execute)
