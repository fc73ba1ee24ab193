"""``mloop service ...``: Managed inference services: list, logs, predict, stop."""

from __future__ import annotations

import typer

service_app = typer.Typer(no_args_is_help=True, help="Managed inference services: list, logs, predict, stop.")
