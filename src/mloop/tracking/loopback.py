"""The engine process's own tracking endpoint: 127.0.0.1, a random port, one token per step.

Jobs of an embedded run (no team server) and of a server's runs alike get
``MLFLOW_TRACKING_URI=http://127.0.0.1:<port>``. The endpoint is the standard library's
threading HTTP server in a daemon thread (HTTP/1.1 keep-alive, no Nagle delay), serving
:class:`~mloop.tracking.api.TrackingApi`: ``/api/2.0/mlflow/...``, the ``mlflow-artifacts``
proxy and ``/api/v1/tracking/runs/<id>/points``. It answers only requests carrying a token it
handed out (``Authorization: Bearer``); each token ties the runs it creates to its step. It
starts when the first step registers and stops when the last one has unregistered.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from mloop.tracking.api import StepTie, TrackingApi

if TYPE_CHECKING:
    from mloop.artifacts import ArtifactStore
    from mloop.store.base import Store

__all__ = ["Loopback", "acquire", "release"]

log = logging.getLogger(__name__)

_MLFLOW = "/api/2.0/mlflow/"
_ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
_POINTS = "/api/v1/tracking/runs/"
_MAX_BODY = 1 << 30


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    loopback: Loopback


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def _reply(self, status: int, body: bytes | dict[str, Any], content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        if isinstance(body, bytes) and status == 200 and content_type == "application/json":
            content_type = "application/octet-stream"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                return self._chunked()
            return b""
        if not length.isdigit() or int(length) > _MAX_BODY:
            self._reply(413, {"error_code": "INVALID_PARAMETER_VALUE", "message": "body too large"})
            return None
        return self.rfile.read(int(length))

    def _chunked(self) -> bytes:
        out = bytearray()
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return bytes(out)
            out += self.rfile.read(size)
            self.rfile.readline()

    def _tie(self) -> StepTie | None:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        tie = self.server.loopback.tie(token.strip()) if scheme.lower() == "bearer" else None
        if tie is None:
            self._reply(401, {"error_code": "UNAUTHENTICATED", "message": "a token this endpoint gave is needed"})
        return tie

    def _handle(self) -> None:
        body = self._body()
        if body is None:
            return
        tie = self._tie()
        if tie is None:
            return
        api = self.server.loopback.api
        url = urlsplit(self.path)
        path, method = url.path, self.command
        query = dict(parse_qsl(url.query))
        try:
            if path.startswith(_MLFLOW):
                self._reply(*api.call(method, path[len(_MLFLOW):], query, body, tie=tie))
            elif path.startswith(_POINTS) and path.endswith("/points") and method == "POST":
                self._reply(*api.ingest(path[len(_POINTS):-len("/points")], body))
            elif path == _ARTIFACTS and method == "GET":
                self._reply(*api.list_artifacts(query.get("path", "")))
            elif path.startswith(_ARTIFACTS + "/") and method == "PUT":
                self._reply(*api.put_artifact(path[len(_ARTIFACTS) + 1:], body))
            elif path.startswith(_ARTIFACTS + "/") and method == "GET":
                self._reply(*api.get_artifact(path[len(_ARTIFACTS) + 1:]))
            else:
                self._reply(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"{method} {path}"})
        except Exception as exc:  # noqa: BLE001 - a job's logging never takes the endpoint down
            log.warning("tracking endpoint: %s %s failed: %s", method, path, exc)
            self._reply(500, {"error_code": "INTERNAL_ERROR", "message": str(exc)})

    do_GET = do_POST = do_PUT = _handle


class Loopback:
    """One running endpoint: its URL, the API it serves, and the tokens it accepts."""

    def __init__(self, store: Store, artifacts: ArtifactStore | None) -> None:
        self.api = TrackingApi(store, artifacts)
        self._tokens: dict[str, StepTie] = {}
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.loopback = self
        self.port: int = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"mloop-tracking-{self.port}", daemon=True)
        self._thread.start()

    def register(self, tie: StepTie) -> str:
        """A new token for a job of ``tie``'s step."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = tie
        return token

    def unregister(self, token: str) -> int:
        """Forget a token; how many are left."""
        with self._lock:
            self._tokens.pop(token, None)
            return len(self._tokens)

    def tie(self, token: str) -> StepTie | None:
        return self._tokens.get(token) if token else None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


_shared: dict[int, Loopback] = {}
_shared_lock = threading.Lock()


def acquire(store: Store, artifacts: ArtifactStore | None, tie: StepTie) -> tuple[Loopback, str]:
    """The endpoint of this process for ``store`` (started if need be) and a token for ``tie``."""
    with _shared_lock:
        endpoint = _shared.get(id(store))
        if endpoint is None:
            endpoint = _shared[id(store)] = Loopback(store, artifacts)
        return endpoint, endpoint.register(tie)


def release(token: str) -> None:
    """Forget ``token``; an endpoint stops when no token of it is left."""
    with _shared_lock:
        for key, endpoint in list(_shared.items()):
            if endpoint.tie(token) is None:
                continue
            if endpoint.unregister(token) == 0:
                del _shared[key]
                break
            return
        else:
            return
    endpoint.close()
