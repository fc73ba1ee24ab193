"""The JSON error every endpoint answers with, declared once for the OpenAPI schema.

:func:`mloop.server.app.create_app` turns every :class:`~mloop.errors.MloopError` (and a request
that fails validation) into :class:`ErrorOut`; :data:`ERROR_RESPONSES` declares that shape for
the statuses a route may answer with, so a client (or a schema fuzzer) can rely on it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ERROR_RESPONSES", "INT64_MAX", "ErrorOut"]


class ErrorOut(BaseModel):
    """An error: ``code`` is the one the CLI prints (``MloopError.code``, or ``bad_request``)."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="what went wrong (the same text as message)")
    code: str = Field(description="a stable machine-readable code, e.g. not_found, bad_request, forbidden")
    type: str = Field(description="the error's class, e.g. NotFoundError")
    message: str
    hint: str | None = Field(None, description="what to do about it")


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


#: The error statuses every route may answer with (pass as ``responses=`` to a router or app).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("a value that can't mean anything"),
    401: _error("no API token, or one that is unknown or revoked"),
    403: _error("the token's scope does not allow this"),
    404: _error("no such thing"),
    409: _error("it conflicts with the current state"),
    413: _error("the payload is too large"),
    422: _error("the request (or a value in it) is refused"),
    429: _error("too many attempts: wait for Retry-After seconds"),
}

#: The largest integer a request may carry into the store (an id, a cursor, a version): SQLite's
#: INTEGER is 64-bit, and a larger value would fail there as a 500 rather than as a clear 422.
INT64_MAX = 2**63 - 1
