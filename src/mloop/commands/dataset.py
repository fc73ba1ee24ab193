"""``mloop dataset ...``: Versioned datasets: create, import, versions, diff, export, release."""

from __future__ import annotations

import typer

dataset_app = typer.Typer(no_args_is_help=True, help="Versioned datasets: create, import, versions, diff, export, release.")
