"""Who may call the server: API tokens with scopes (``read`` < ``run`` < ``admin``).

A request carries its token as ``Authorization: Bearer <token>`` (or ``X-Mloop-Token``). Routers
are included with :func:`requires` as a dependency: reads (GET, HEAD) need ``read``, anything
else ``run``, unless the router asks for more (token management needs ``admin``). ``/health``,
``/metrics`` and the git webhook (signed per trigger) are outside it. A missing, unknown or
revoked token is 401; a token whose scope is too narrow is 403 naming the scope needed.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request

from mloop.errors import AuthError, ForbiddenError
from mloop.store.tokens import TokenRecord

__all__ = ["requires", "token_text"]

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def token_text(request: Request) -> str | None:
    """The token a request carries, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-mloop-token") or None


def requires(scope: str | None = None,
             reads: Callable[[Request], bool] | None = None) -> Callable[[Request], TokenRecord]:
    """A dependency that admits a request whose token allows ``scope``.

    With no ``scope`` the method decides (reads need ``read``, the rest ``run``); ``reads`` marks
    further requests as reads whatever their method (MLflow's searches are POSTs that change
    nothing: a read-only token must be able to make them).
    """

    def check(request: Request) -> TokenRecord:
        text = token_text(request)
        if text is None:
            raise AuthError("this endpoint needs an API token",
                            hint="send `Authorization: Bearer <token>`; `mloop token create NAME` makes one")
        record = request.app.state.backend.store.tokens.verify(text)
        if record is None:
            raise AuthError("the API token is unknown or revoked",
                            hint="`mloop token list` on the server shows the live ones")
        reading = request.method in _READ_METHODS or (reads is not None and reads(request))
        needed = scope or ("read" if reading else "run")
        if not record.allows(needed):
            raise ForbiddenError(f"the token {record.name!r} has scope {record.scope!r}; this needs {needed!r}",
                                 hint=f"use a token made with `mloop token create NAME --scope {needed}`",
                                 needed=needed)
        request.state.token = record
        return record

    return check
