"""A real S3 server for tests: moto's server as a subprocess on a free loopback port.

Start one per test module (it holds every bucket in memory; starting takes about a second)::

    @pytest.fixture(scope="module")
    def s3() -> Iterator[S3Server]:
        server = start_s3_server()
        yield server
        server.stop()

:func:`s3_env` gives the standard AWS variables for it (fake credentials, a region), which
every AWS tool and every mloop job reads; :meth:`S3Server.client` a boto3 client on it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

#: Credentials moto accepts (any would do); they are only ever sent to the loopback server.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class S3Server:
    """A running moto server: its endpoint and how to stop it."""

    endpoint: str
    proc: subprocess.Popen[bytes]
    log_path: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    def client(self) -> Any:
        """A boto3 S3 client on this server."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def bucket(self, prefix: str = "mloop") -> str:
        """A new, empty bucket with a unique name."""
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every key in ``bucket`` under ``prefix`` (completed objects only, as S3 lists them)."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", ()))

    def pending_uploads(self, bucket: str) -> list[str]:
        """Keys of multipart uploads started and neither completed nor aborted."""
        found = self.client().list_multipart_uploads(Bucket=bucket)
        return sorted(u["Key"] for u in found.get("Uploads", ()))

    def stop(self) -> None:
        """End the server (by its pid) and wait for it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_s3_server(log_dir: str | None = None, timeout: float = 30.0) -> S3Server:
    """Start ``python -m moto.server`` on a free loopback port; return once it answers.

    Raises:
        RuntimeError: it exited or did not answer within ``timeout`` seconds (with its log).
    """
    port = free_port()
    log_path = os.path.join(log_dir or "/tmp", f"moto-{port}.log")
    env = {**os.environ, **CREDENTIALS}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(port), "-H", "127.0.0.1"],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    endpoint = f"http://127.0.0.1:{port}"
    server = S3Server(endpoint, proc, log_path)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited with {proc.returncode}: {_tail(log_path)}")
        try:
            with urllib.request.urlopen(endpoint + "/", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"moto server did not answer on {endpoint} within {timeout} s: {_tail(log_path)}")
        time.sleep(0.05)


def s3_env(server: S3Server) -> dict[str, str]:
    """Environment variables that point mloop (and any AWS tool) at ``server``."""
    return {**CREDENTIALS, "MLOOP_S3_ENDPOINT_URL": server.endpoint}


def _tail(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()[-2000:]
    except OSError:
        return "(no log)"


class FlakyProxy:
    """A loopback HTTP proxy in front of an S3 server that answers the first ``failures``
    requests with ``503 SlowDown`` (what S3 says when it throttles), then forwards the rest:
    a transient error, for testing retries.

    Use as a context manager; :attr:`endpoint` is the proxy's URL, :attr:`failed` how many
    requests it refused and :attr:`forwarded` how many it passed on.
    """

    def __init__(self, upstream: str, failures: int) -> None:
        import http.server
        import threading
        import urllib.parse

        self.upstream = urllib.parse.urlsplit(upstream)
        self.remaining, self.failed, self.forwarded = failures, 0, 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                import http.client

                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy._lock:
                    refuse = proxy.remaining > 0
                    if refuse:
                        proxy.remaining -= 1
                        proxy.failed += 1
                    else:
                        proxy.forwarded += 1
                if refuse:
                    text = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                            b'<Message>Please reduce your request rate.</Message></Error>')
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(text)))
                    self.end_headers()
                    self.wfile.write(text)
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FlakyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
