"""What every sub-command module shares with :mod:`mloop.cli`: consoles and the backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from mloop.services.backend import Backend

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def open_cli_backend() -> Backend:
    """The backend the CLI works on: settings from the environment and ``mloop.toml``."""
    from mloop.config import Settings
    from mloop.services import open_backend

    return open_backend(Settings())
