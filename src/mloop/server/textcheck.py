"""Refuse JSON request bodies holding text no store can keep: lone UTF-16 surrogates.

JSON may spell a string with ``\\ud800``-style escapes; Python decodes a lone half of a surrogate
pair to a ``str`` that UTF-8 (and so SQLite, PostgreSQL and every response) cannot encode, and a
record saved with one answers 500 from then on. This ASGI middleware reads a JSON body (only
when it holds such an escape at all: a bytes search), decodes it and answers 400 naming the
problem before any route sees it; every other request passes through untouched.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["LoneSurrogateGuard"]

_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
#: Bodies larger than this are left to the route's own limits (code blobs, webhooks read their own).
_MAX_CHECKED = 16 * 1024 * 1024


def _has_lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class LoneSurrogateGuard:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        length = headers.get(b"content-length", b"")
        if ctype != b"application/json" or not length.isdigit() or int(length) > _MAX_CHECKED:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if _ESCAPE.search(body):
            try:
                bad = _has_lone_surrogate(json.loads(body))
            except (ValueError, RecursionError):
                bad = False  # not JSON: the route answers that in its own words
            if bad:
                await _refuse(send)
                return
        await self.app(scope, _replay([{"type": "http.request", "body": body, "more_body": False}]), send)


def _replay(messages: list[dict[str, Any]]) -> Any:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        return {"type": "http.disconnect"}

    return receive


async def _refuse(send: Any) -> None:
    message = "the request holds a lone UTF-16 surrogate escape (\\ud800-\\udfff without its pair)"
    body = json.dumps({"error": message, "code": "bad_request", "type": "BadRequest", "message": message,
                       "hint": "send text as UTF-8; escape characters outside the BMP as surrogate pairs"}).encode()
    await send({"type": "http.response.start", "status": 400,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
