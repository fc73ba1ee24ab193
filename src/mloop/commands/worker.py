"""``mloop worker``: an engine that drains the team server's run queue, without the HTTP server.

For a team server with extra machines: each worker opens the server's database (PostgreSQL)
and artifact store, registers as an engine with a heartbeat, claims queued runs (the engine's
compare-and-set: no run runs twice, whichever engine claims it) and takes over the running
runs of engines that stopped beating. Schedules, triggers, notifications and the API stay
with ``mloop server``.
"""

from __future__ import annotations

from typing import Optional

import typer

from mloop.commands._common import err, out


def worker(db: Optional[str] = typer.Option(None, "--db", help="database URL (default: the settings')"),
           artifacts: Optional[str] = typer.Option(None, "--artifacts", help="artifact root URL or folder"),
           concurrency: int = typer.Option(4, "--concurrency", min=1, help="queued runs executed at once"),
           per_workflow: int = typer.Option(0, "--per-workflow", min=0,
                                            help="queued runs of one workflow at once (0: no limit)")) -> None:
    """Run queued runs of the team server's database on this machine until Ctrl-C (or SIGTERM)."""
    import signal
    import threading

    from mloop.config import Settings
    from mloop.errors import ConfigError
    from mloop.runs.open import open_backend
    from mloop.runs.queue import Dispatcher, QueueLimits

    overrides = {k: v for k, v in (("database_url", db), ("artifact_root", artifacts)) if v}
    settings = Settings(**overrides)
    if settings.server_url:
        raise ConfigError("server_url is set (MLOOP_SERVER_URL or mloop.toml): this machine is a client",
                          hint="unset it where the worker runs; a worker works on the server's database")
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    with open_backend(settings) as ctx:
        dispatcher = Dispatcher(ctx, QueueLimits(concurrency=concurrency, per_workflow=per_workflow), kind="worker")
        dispatcher.start()
        try:
            out.print(f"mloop worker {dispatcher.engine_id} (store "
                      f"{settings.resolved_database_url.split('://')[0]}; Ctrl-C stops)", highlight=False)
            out.file.flush()
            stop.wait()
        finally:
            dispatcher.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    err.print("stopped")
