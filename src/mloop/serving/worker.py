"""One inference server process: ``python -m mloop.serving.worker``.

The service manager starts one of these per model version::

    python -m mloop.serving.worker --model-dir DIR --model-name N --model-version V
        [--fd FD | --host H --port P] [--ready-file PATH]
        [--max-batch-size 32] [--max-wait-ms 5] [--no-batching] [--max-body-bytes B] [--threads T]
        [--inference-timeout 60] [--access-log]

1. The model is loaded first. If that fails the process prints ``error: ...`` (the loader's
   error) and ``hint: ...`` on stderr and exits with code 3 (:data:`EXIT_LOAD_FAILED`); nothing
   is served.
2. It serves with uvicorn on the inherited listening socket ``--fd`` (created by the manager and
   passed with ``pass_fds``; several workers may accept on the same socket) or on ``--host``/
   ``--port`` (port 0 picks a free one).
3. Once it accepts connections it writes ``--ready-file`` atomically: JSON with ``pid``,
   ``host``, ``port``, ``url``, ``model_name``, ``model_version`` and ``accepting: true``.
4. On SIGTERM (or SIGINT) it stops accepting, rewrites the ready file with ``accepting: false``
   (so the supervisor knows every later connection goes to its successor), ``/ready`` answers
   503, in-flight requests finish (up to ``--graceful-timeout`` seconds), then it exits with
   code 0. A model thread stuck in a call (past ``--inference-timeout``) is not waited for:
   the process exits without it.

A prediction that takes longer than ``--inference-timeout`` seconds is answered 504; while the
model thread stays inside one call beyond that, ``/health`` and ``/ready`` answer 503
``{"status": "stuck", ...}`` (the supervisor replaces a worker that stays so). Requests are not
logged one by one unless ``--access-log`` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import gc
import logging
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

EXIT_LOAD_FAILED = 3
EXIT_USAGE = 2


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m mloop.serving.worker", description="Serve one model folder over HTTP.")
    p.add_argument("--model-dir", required=True, help="the model folder")
    p.add_argument("--model-name", required=True)
    p.add_argument("--model-version", default="")
    p.add_argument("--model-type", default=None, help="force a model type (default: detected)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--fd", type=int, default=None, help="an inherited listening socket to serve on")
    where.add_argument("--port", type=int, default=None, help="port to listen on (0: a free one)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--ready-file", default=None, help="written (atomically) once the server accepts connections")
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--no-batching", action="store_true", help="one forward pass per request")
    p.add_argument("--max-body-bytes", type=int, default=None, help="larger request bodies get 413")
    p.add_argument("--threads", type=int, default=None, help="torch/onnxruntime intra-op threads")
    p.add_argument("--inference-timeout", type=float, default=None,
                   help="seconds one prediction may take before it is answered 504 (default 60; 0: no limit)")
    p.add_argument("--graceful-timeout", type=float, default=30.0,
                   help="seconds in-flight requests get to finish after SIGTERM")
    p.add_argument("--log-level", default="info")
    p.add_argument("--access-log", action="store_true", help="log every request")
    args = p.parse_args(argv)
    if args.max_batch_size < 1:
        p.error("--max-batch-size must be at least 1")
    if args.inference_timeout is not None and args.inference_timeout < 0:
        p.error("--inference-timeout must be 0 (no limit) or more")
    if args.fd is None and args.port is None:
        args.port = 8080
    return args


def write_ready_file(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    """Write JSON to ``path`` atomically (a temp file in the same folder, renamed over it)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=str(target.parent), prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def default_threads() -> int:
    """Intra-op threads for the model: leave one core to the event loop on small machines."""
    n = os.cpu_count() or 1
    return 1 if n <= 2 else n - 1


#: Seconds a connection accepted just before a stop gets to send its request (see build_server).
FRESH_CONNECTION_GRACE = 1.0


def build_server(app: Any, *, sock: socket.socket, log_level: str = "info", access_log: bool = False,
                 graceful_timeout: float = 30.0, on_started: Any = None, on_stopped_accepting: Any = None) -> Any:
    """A uvicorn server for ``app`` on ``sock`` that marks the app draining on SIGTERM, calls
    ``on_started(host, port)`` once it accepts connections and ``on_stopped_accepting()`` once it
    has closed its listeners (before in-flight requests finish)."""
    import uvicorn

    config = uvicorn.Config(app, log_level=log_level, access_log=access_log, lifespan="on",
                            timeout_graceful_shutdown=graceful_timeout, server_header=False)

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and not self.should_exit and on_started is not None:
                host, port = sock.getsockname()[:2]
                on_started(host, port)

        def handle_exit(self, sig: int, frame: Any) -> None:
            app.state.draining = True
            super().handle_exit(sig, frame)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            # uvicorn closes its listeners first thing in shutdown; doing it here (closing twice
            # is harmless) lets the hook run before the wait for in-flight requests.
            for server in self.servers:
                server.close()
            for listener in sockets or []:
                listener.close()
            if on_stopped_accepting is not None:
                on_stopped_accepting()
            # uvicorn's shutdown closes connections that carry no request yet: one accepted
            # just before the listener closed, whose request is still on its way, would see
            # "server disconnected" in a hand-over. Give such fresh connections a moment to
            # deliver their request (bounded), then let uvicorn drain as usual.
            import asyncio

            loop = asyncio.get_running_loop()
            deadline = loop.time() + FRESH_CONNECTION_GRACE
            while loop.time() < deadline and any(
                    getattr(c, "cycle", None) is None and not getattr(getattr(c, "transport", None), "is_closing",
                                                                       lambda: True)()
                    for c in list(self.server_state.connections)):
                await asyncio.sleep(0.01)
            await super().shutdown(sockets=sockets)

    return Server(config)


def run_server(app: Any, *, sock: socket.socket, ready_file: str | None = None, model_name: str = "",
               model_version: str = "", log_level: str = "info", access_log: bool = False,
               graceful_timeout: float = 30.0, announce: Any = None) -> None:
    """Serve ``app`` on ``sock`` in the foreground until SIGTERM/SIGINT (then drain and return)."""

    # The model and the libraries are loaded by now: move them out of the collector's way, so a full
    # collection while serving walks only what requests allocate (tail latency under load).
    gc.freeze()
    # Requests allocate many short-lived objects (a JSON array of floats each) that reference
    # counting frees; collecting every 700 allocations only burns the event loop's time.
    gc.set_threshold(50_000, 20, 20)

    state: dict[str, Any] = {}

    def on_started(host: str, port: int) -> None:
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        url = f"http://{shown}:{port}"
        if ready_file:
            state.update(pid=os.getpid(), host=host, port=port, url=url, model_name=model_name,
                         model_version=model_version, accepting=True)
            write_ready_file(ready_file, state)
        if announce is not None:
            announce(url)

    def on_stopped_accepting() -> None:
        if ready_file and state:
            state["accepting"] = False
            with contextlib.suppress(OSError):
                write_ready_file(ready_file, state)

    server = build_server(app, sock=sock, log_level=log_level, access_log=access_log,
                          graceful_timeout=graceful_timeout, on_started=on_started,
                          on_stopped_accepting=on_stopped_accepting)
    # uvicorn re-raises the signal it caught once it has shut down; with these handlers that
    # is a no-op, so a graceful stop ends with exit code 0 rather than death by SIGTERM.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)  # Ctrl-C on `mloop serve` too: a clean stop, exit 0
    server.run(sockets=[sock])


def listen_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from mloop.errors import MloopError

    try:
        from mloop.serving.app import DEFAULT_INFERENCE_TIMEOUT, DEFAULT_MAX_BODY_BYTES, create_app

        app = create_app(args.model_dir, model_name=args.model_name, model_version=args.model_version,
                         model_type=args.model_type, batching=not args.no_batching,
                         max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms,
                         max_body_bytes=args.max_body_bytes or DEFAULT_MAX_BODY_BYTES,
                         threads=args.threads or default_threads(),
                         inference_timeout=DEFAULT_INFERENCE_TIMEOUT if args.inference_timeout is None
                         else args.inference_timeout)
    except MloopError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        if exc.__cause__ is not None:
            logging.getLogger("mloop.serving").debug("load failure", exc_info=exc.__cause__)
        return EXIT_LOAD_FAILED
    except Exception as exc:  # noqa: BLE001 - any load failure is reported, nothing is served
        print(f"error: loading {args.model_dir} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_LOAD_FAILED

    if args.fd is not None:
        try:
            sock = socket.socket(fileno=args.fd)  # family and type read from the descriptor
        except OSError as exc:
            print(f"error: --fd {args.fd} is not a socket ({exc})", file=sys.stderr)
            return EXIT_USAGE
    else:
        try:
            sock = listen_socket(args.host, args.port)
        except OSError as exc:
            print(f"error: cannot listen on {args.host}:{args.port} ({exc})", file=sys.stderr)
            return EXIT_USAGE
    run_server(app, sock=sock, ready_file=args.ready_file, model_name=args.model_name,
               model_version=args.model_version, log_level=args.log_level, access_log=args.access_log,
               graceful_timeout=args.graceful_timeout)
    if app.state.handler.batcher.busy_since is not None:
        # The model thread is still inside a call (a stuck one: the batcher did not wait for it);
        # a normal exit would join it forever.
        logging.getLogger("mloop.serving").warning("exiting with the model thread still inside a call")
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
