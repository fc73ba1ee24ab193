"""``mloop server``: the mloop server (REST API) in the foreground until Ctrl-C."""

from __future__ import annotations

import typer

from mloop.commands._common import err, out


def server(host: str = typer.Option("127.0.0.1", "--host", help="address to listen on (0.0.0.0: all interfaces)"),
           port: int = typer.Option(8000, "--port", help="port to listen on (0: a free one)"),
           log_level: str = typer.Option("warning", "--log-level", help="uvicorn's log level"),
           access_log: bool = typer.Option(False, "--access-log", help="log every request")) -> None:
    """Run the mloop server: the REST API (/api/v1/label-tasks ...) over this machine's store."""
    import socket

    from mloop.config import Settings
    from mloop.errors import MissingExtraError, MloopError
    from mloop.server.app import create_app

    try:
        import uvicorn
    except ImportError as exc:
        raise MissingExtraError("uvicorn", "serve") from exc
    settings = Settings()
    app = create_app(settings)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise MloopError(f"cannot listen on {host}:{port} ({exc.strerror or exc})",
                         hint="pick another --port (0 picks a free one)") from exc
    sock.listen(128)
    bound = sock.getsockname()[1]
    url = f"http://{'[' + host + ']' if family == socket.AF_INET6 else host}:{bound}"
    out.print(f"mloop server at [bold]{url}[/bold] (store {settings.resolved_database_url.split('://')[0]}; "
              f"Ctrl-C stops)", highlight=False)
    out.print(f"  labeling: {url}/api/v1/label-tasks   docs: {url}/docs", highlight=False)
    config = uvicorn.Config(app, log_level=log_level, access_log=access_log, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
    err.print("stopped")
