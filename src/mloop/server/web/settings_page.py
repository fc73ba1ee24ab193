"""The console's settings page: API tokens and console users (``admin`` scope).

::

    GET  /ui/settings                      tokens and users (an admin); the user's own facts (others)
    POST /ui/settings/tokens               make a token (``name``, ``scope``): its text is shown once
    POST /ui/settings/tokens/{id}/revoke   revoke one
    POST /ui/settings/users                add a user (``name``, ``password``, ``scope``)
    POST /ui/settings/users/{name}/disable disable one (and revoke the tokens its logins made)

The same store calls as ``/api/v1/tokens`` and ``/api/v1/users``. A new token's text is rendered in
the response to the POST that made it and never again (it is not stored, only its hash), so the
page after a made token is not a redirect: reloading it would not show the text anyway.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mloop.errors import MloopError
from mloop.server.web.session import Session, require_session

router = APIRouter(include_in_schema=False)


def _admin(session: Session) -> None:
    session.require("admin", "managing tokens and users")


def _page(request: Request, session: Session, *, made: dict[str, Any] | None = None, error: str | None = None,
          status_code: int = 200) -> HTMLResponse:
    from mloop.server.web.pages import render
    from mloop.store.tokens import SCOPES

    store = request.app.state.backend.store
    admin = session.allows("admin")
    tokens = store.tokens.list() if admin else []
    users = store.users.list() if admin else []
    return render(request, "settings.html", status_code=status_code, admin=admin, tokens=tokens[::-1],
                  users=users, scopes=list(SCOPES), made=made, error=error,
                  notice=request.query_params.get("notice"), csrf=session.csrf)


def _back(**query: str) -> RedirectResponse:
    tail = "&".join(f"{k}={quote(v[:200], safe='')}" for k, v in query.items())
    return RedirectResponse("/ui/settings" + (f"?{tail}" if tail else ""), status_code=303)


@router.get("/ui/settings", response_class=HTMLResponse)
def settings_page(request: Request, session: Session = Depends(require_session)) -> Response:
    return _page(request, session)


@router.post("/ui/settings/tokens", response_class=HTMLResponse)
async def make_token(request: Request, session: Session = Depends(require_session)) -> Response:
    _admin(session)
    form = await request.form()
    name, scope = str(form.get("name") or "").strip(), str(form.get("scope") or "run")
    try:
        record, text = request.app.state.backend.store.tokens.create(name, scope)
    except MloopError as exc:
        return _page(request, session, error=exc.message, status_code=400)
    return _page(request, session, made={"name": record.name, "scope": record.scope, "text": text},
                 status_code=201)


@router.post("/ui/settings/tokens/{token_id}/revoke")
def revoke_token(request: Request, token_id: str, session: Session = Depends(require_session)) -> Response:
    _admin(session)
    if token_id == session.token.id:
        return _back(error="this is the token of your own login: log out instead")
    record = request.app.state.backend.store.tokens.revoke(token_id)  # NotFoundError: the 404 page
    return _back(notice=f"token {record.name} revoked")


@router.post("/ui/settings/users", response_class=HTMLResponse)
async def add_user(request: Request, session: Session = Depends(require_session)) -> Response:
    _admin(session)
    form = await request.form()
    try:
        user = request.app.state.backend.store.users.add(str(form.get("name") or "").strip(),
                                                         str(form.get("password") or ""),
                                                         str(form.get("scope") or "run"))
    except MloopError as exc:
        return _page(request, session, error=exc.message, status_code=400)
    return _back(notice=f"user {user.name} added")


@router.post("/ui/settings/users/{name}/disable")
def disable_user(request: Request, name: str, session: Session = Depends(require_session)) -> Response:
    from mloop.store.users import revoke_login_tokens

    _admin(session)
    if name == session.user:
        return _back(error="you cannot disable yourself: another admin can")
    store = request.app.state.backend.store
    record = store.users.disable(name)  # NotFoundError: the 404 page
    revoked = revoke_login_tokens(store.tokens, record.name)
    return _back(notice=f"user {record.name} disabled; {revoked} login token(s) revoked")
