"""The mloop server (the start of the team server): a FastAPI app over the same service
functions the CLI calls. FastAPI and uvicorn come with the ``serve`` extra; they are imported
only inside this package and the ``mloop server`` command.

Layer: door (the REST API; it calls the run service and the domain operations).
"""

from __future__ import annotations

__all__ = ["create_app"]


def __getattr__(name: str) -> object:
    if name == "create_app":
        from mloop.server.app import create_app

        return create_app
    raise AttributeError(name)
