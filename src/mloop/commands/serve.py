"""``mloop serve``: an HTTP inference server for a registered model (or a model folder), in the
foreground until Ctrl-C."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mloop.commands._common import err, open_cli_backend, out


def serve(
        ref: Optional[str] = typer.Argument(None, metavar="NAME[:VERSION|@alias]",
                                            help="registered model: NAME (latest), NAME:VERSION or NAME@alias"),
        path: Optional[Path] = typer.Option(None, "--path", help="serve this model folder instead of a registered model"),
        host: str = typer.Option("127.0.0.1", "--host", help="address to listen on (0.0.0.0: all interfaces)"),
        port: int = typer.Option(8080, "--port", help="port to listen on (0: a free one)"),
        max_batch_size: int = typer.Option(32, "--max-batch-size", min=1, help="most instances in one forward pass"),
        max_wait_ms: float = typer.Option(5.0, "--max-wait-ms", min=0.0,
                                          help="longest a forming batch waits for requests already arriving"),
        no_batching: bool = typer.Option(False, "--no-batching", help="one forward pass per request"),
        max_body_bytes: int = typer.Option(16 * 1024 * 1024, "--max-body-bytes", min=1,
                                           help="larger request bodies get 413"),
        threads: Optional[int] = typer.Option(None, "--threads", min=1,
                                              help="model intra-op threads (default: cores - 1, at least 1)"),
        model_type: Optional[str] = typer.Option(None, "--model-type", help="force a model type (default: detected)"),
        access_log: bool = typer.Option(False, "--access-log", help="log every request"),
        inference_timeout: float = typer.Option(60.0, "--inference-timeout", min=0.0,
                                                help="seconds a prediction may take before it is answered 504 "
                                                     "(0: no limit)"),
) -> None:
    """Serve a model over HTTP: POST /predict (JSON or an image upload), /health, /ready, /docs, /metrics."""
    from mloop.errors import MloopError
    from mloop.serving.app import create_app
    from mloop.serving.worker import default_threads, listen_socket, run_server

    if (ref is None) == (path is None):
        raise typer.BadParameter("give a registered model NAME[:VERSION|@alias] or --path DIR (one of them)")
    if path is not None:
        model_dir = path.resolve()
        name, version = model_dir.name, ""
    else:
        from mloop.services.models import get_model_version, model_local_path

        with open_cli_backend() as backend:
            record = get_model_version(backend, ref or "")
            model_dir = model_local_path(backend, record)
        name, version = record.name, record.version
        model_type = model_type or record.model_type
    with out.status(f"loading {name}" + (f" version {version}" if version else "") + f" from {model_dir}"):
        app = create_app(model_dir, model_name=name, model_version=version, model_type=model_type,
                         batching=not no_batching, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
                         max_body_bytes=max_body_bytes, threads=threads or default_threads(),
                         inference_timeout=inference_timeout)
    info = app.state.handler.info()
    try:
        sock = listen_socket(host, port)
    except OSError as exc:
        raise MloopError(f"cannot listen on {host}:{port} ({exc.strerror or exc})",
                         hint="pick another --port (0 picks a free one)") from exc

    def announce(url: str) -> None:
        label = f"{name}:{version}" if version else name
        batching = "off" if no_batching else f"max {max_batch_size} per pass, wait ≤ {max_wait_ms:g} ms"
        out.print(f"serving [bold]{label}[/bold] ({info['model_type']}) at [bold]{url}[/bold]  "
                  f"(batching {batching}; Ctrl-C stops)", highlight=False)
        out.print(f"  docs:    {url}/docs", highlight=False)
        if info.get("accepts_images"):
            out.print(f"  example: curl -F file=@digit.png {url}/predict", highlight=False, soft_wrap=True)
        else:
            shape = info.get("input_shape")
            example = "[[" + ", ".join(["0.0"] * (shape[-1] if shape and shape[-1] else 3)) + "]]" \
                if not shape or len(shape) == 1 else "[...]"
            out.print(f"  example: curl -H 'Content-Type: application/json' -d '{{\"inputs\": {example}}}' "
                      f"{url}/predict", highlight=False, soft_wrap=True)

    run_server(app, sock=sock, model_name=name, model_version=version, log_level="warning",
               access_log=access_log, announce=announce)
    err.print("stopped")
