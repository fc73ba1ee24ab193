"""What every sub-command module shares with :mod:`mloop.cli`: consoles and the backend."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console

if TYPE_CHECKING:
    from mloop.config import Settings
    from mloop.context import Context

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def open_cli_backend(settings: Settings | None = None) -> Context:
    """The backend the CLI works on: settings from the environment and ``mloop.toml``. A home
    found in a folder above the current one is named on stderr (one dim line)."""
    from mloop.config import Settings
    from mloop.runs import open_backend

    settings = settings or Settings()
    note_home(settings)
    return open_backend(settings)


def cli_client(settings: Settings | None = None) -> Any:
    """The server's client in client mode (MLOOP_SERVER_URL / ``mloop login``), else None."""
    from mloop.client import client_for
    from mloop.config import Settings

    return client_for(settings or Settings())


def note_home(settings: Settings) -> None:
    """Say which home a command uses when it is a folder above's, not the current folder's."""
    found = settings.home_found_above
    if found is not None and settings.server_url is None:
        err.print(f"using home {found}", style="dim", markup=False, highlight=False)


def when(value: datetime) -> str:
    """A stored time as local wall-clock time."""
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def size(n: int) -> str:
    """Bytes in binary units: ``512 B``, ``1.5 KiB``, ... ``2.0 TiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def parse_pairs(items: list[str] | None, what: str = "--param") -> dict[str, str]:
    """``NAME=VALUE`` items (``-p``, ``-s``, ``mloop input``) as a dict.

    Raises:
        SpecValidationError: an item is not NAME=VALUE (every such item is listed).
    """
    from mloop.errors import Problem, SpecValidationError

    pairs: dict[str, str] = {}
    problems = []
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            problems.append(Problem(what, f"{item!r} is not NAME=VALUE"))
            continue
        pairs[name.strip()] = value
    if problems:
        raise SpecValidationError(problems, headline=f"bad {what} values:")
    return pairs
