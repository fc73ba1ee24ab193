"""``mloop model ...``: The model registry: versions, aliases, export."""

from __future__ import annotations

import typer

model_app = typer.Typer(no_args_is_help=True, help="The model registry: versions, aliases, export.")
