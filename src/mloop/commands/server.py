"""``mloop server``: the team server in the foreground until Ctrl-C (or SIGTERM).

One process: the REST API (OpenAPI at ``/docs``), the run queue and its engine, and the
background loops. ``--db``/``--artifacts`` (or ``database_url``/``artifact_root`` in
``mloop.toml`` / ``MLOOP_*``) make it a team server on PostgreSQL and S3.
"""

from __future__ import annotations

import ipaddress
from typing import Optional

import typer

from mloop.commands._common import err, out


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server(host: str = typer.Option("127.0.0.1", "--host", help="address to listen on (0.0.0.0: all interfaces)"),
           port: int = typer.Option(8080, "--port", help="port to listen on (0: a free one)"),
           db: Optional[str] = typer.Option(None, "--db", help="database URL (default: the settings')"),
           artifacts: Optional[str] = typer.Option(None, "--artifacts", help="artifact root URL or folder"),
           concurrency: int = typer.Option(4, "--concurrency", min=1, help="queued runs executed at once"),
           per_workflow: int = typer.Option(0, "--per-workflow", min=0,
                                            help="queued runs of one workflow at once (0: no limit)"),
           log_level: str = typer.Option("warning", "--log-level", help="uvicorn's log level"),
           access_log: bool = typer.Option(False, "--access-log", help="log every request")) -> None:
    """Run the mloop server: REST API, run queue, schedules, triggers, notifications."""
    import socket

    from mloop.config import Settings
    from mloop.errors import ConfigError, MissingExtraError, MloopError
    from mloop.runs import open_backend
    from mloop.runs.queue import QueueLimits
    from mloop.server.app import create_app

    try:
        import uvicorn
    except ImportError as exc:
        raise MissingExtraError("uvicorn", "serve") from exc
    overrides = {k: v for k, v in (("database_url", db), ("artifact_root", artifacts)) if v}
    settings = Settings(**overrides)
    if settings.server_url:
        raise ConfigError("server_url is set (MLOOP_SERVER_URL or mloop.toml): this machine is a client",
                          hint="unset it where the server runs; the server works on its own store")
    with open_backend(settings) as backend:
        first_token = None
        if backend.store.tokens.count_live() == 0:
            _record, first_token = backend.store.tokens.create("admin", "admin")
    if not _loopback(host):
        # Every endpoint but health and metrics checks its token, so there is no open mode to
        # refuse; what a non-loopback address adds is that tokens cross the network.
        err.print(f"note: listening on {host}: put TLS in front (a reverse proxy) so tokens don't "
                  "cross the network in clear", highlight=False)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise MloopError(f"cannot listen on {host}:{port} ({exc.strerror or exc})",
                         hint="pick another --port (0 picks a free one)") from exc
    sock.listen(512)
    bound = sock.getsockname()[1]
    url = f"http://{'[' + host + ']' if family == socket.AF_INET6 else host}:{bound}"
    app = create_app(settings, queue=QueueLimits(concurrency=concurrency, per_workflow=per_workflow))
    # One print, one write: a script (or a test) that reads the address must find the admin
    # token with it, not a moment later.
    lines = [f"mloop server at [bold]{url}[/bold] (store {settings.resolved_database_url.split('://')[0]}; "
             "Ctrl-C stops)",
             f"  API docs: {url}/docs   health: {url}/api/v1/health   metrics: {url}/metrics"]
    if first_token is not None:
        lines += ["  first start: an admin token was made (shown this once; only its hash is kept):",
                  f"  admin token: {first_token}",
                  "  more tokens: mloop token create NAME --scope read|run|admin"]
    out.print("\n".join(lines), highlight=False, soft_wrap=True)
    out.file.flush()
    config = uvicorn.Config(app, log_level=log_level, access_log=access_log, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
    err.print("stopped")
