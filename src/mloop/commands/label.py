"""``mloop label ...``: Labeling tasks: status, and labels imported from a file."""

from __future__ import annotations

import typer

label_app = typer.Typer(no_args_is_help=True, help="Labeling tasks: status, and labels imported from a file.")
