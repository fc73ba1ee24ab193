"""``wf.interface``: programmatic access to a released workflow (reserved; see mloop.services)."""

from __future__ import annotations

from mloop.errors import NotSupportedYetError

__all__ = ["APIInterface"]


class APIInterface:
    """The ModelArts REST client. mloop's equivalents are the CLI and ``mloop.services``."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise NotSupportedYetError("wf.interface.APIInterface talks to the ModelArts cloud API",
                                   hint="use the mloop CLI or mloop.services instead")
