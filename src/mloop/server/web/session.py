"""The console's sessions, CSRF tokens and security headers.

A session is an API token made for the user at login (``login_user``, the same check as
``POST /api/v1/login``), kept in an HttpOnly, SameSite=Strict cookie (Secure over https). Why a
token rather than a signed session id: the store already verifies, scopes and revokes tokens, so a
console session needs no server secret to keep and rotate, works across restarts and several
server processes on one store, ends server-side at logout (the token is revoked), and ends when an
admin disables the user (``POST /users/{name}/disable`` revokes its login tokens). The console
acts with the user's scope, exactly like the API would.

The CSRF token is derived from the session (``HMAC(session token, "mloop-console-csrf")``): per
session, nothing to store, and unknowable without the HttpOnly cookie. Every console form carries
it as the hidden field ``csrf`` (htmx requests send it as ``X-CSRF-Token``); a POST without it is
refused with 403. The login form, which has no session yet, uses a double-submit cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from fastapi import Request

from mloop.store.tokens import TokenRecord

__all__ = ["CSP", "COOKIE", "LOGIN_COOKIE", "LoginRequired", "CsrfRefused", "Session", "check_csrf",
           "csrf_token", "is_local_next", "login_url", "require_session", "security_headers", "session_of"]

_UNSET = object()
COOKIE = "mloop_session"
LOGIN_COOKIE = "mloop_login_csrf"
#: The console's Content-Security-Policy: no inline scripts or styles, nothing from elsewhere.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'")


@dataclass(frozen=True)
class Session:
    """A logged-in console user: the name, the scope, and the token behind the cookie."""

    user: str
    scope: str
    token: TokenRecord
    token_text: str

    @property
    def csrf(self) -> str:
        return csrf_token(self.token_text)

    def allows(self, scope: str) -> bool:
        return self.token.allows(scope)

    def require(self, scope: str, action: str) -> None:
        """Raise ForbiddenError (the console's 403 page) unless the user may ``action`` (its
        words: "moving an alias") with ``scope``."""
        if not self.allows(scope):
            from mloop.errors import ForbiddenError

            raise ForbiddenError(f"the user {self.user!r} has scope {self.scope!r}; {action} needs {scope!r}",
                                 needed=scope)


class LoginRequired(Exception):
    """A console page asked without a live session: answered with a redirect to the login form."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class CsrfRefused(Exception):
    """A console POST without the session's CSRF token: answered 403."""


def csrf_token(session_token: str) -> str:
    return hmac.new(session_token.encode(), b"mloop-console-csrf", hashlib.sha256).hexdigest()


def _user_of(token: TokenRecord) -> str:
    # login tokens are named login-NAME (mloop.store.users.login_token_name)
    return token.name[len("login-"):] if token.name.startswith("login-") else token.name


def session_of(request: Request) -> Session | None:
    """The request's live session, or None (no cookie, an unknown or revoked token)."""
    cached = getattr(request.state, "console_session", _UNSET)
    if cached is not _UNSET:
        return cached  # type: ignore[no-any-return]
    text = request.cookies.get(COOKIE)
    session = None
    if text and len(text) <= 200:
        record = request.app.state.backend.store.tokens.verify(text)
        if record is not None and record.revoked_at is None:
            session = Session(_user_of(record), record.scope, record, text)
    request.state.console_session = session
    return session


def check_csrf(request: Request, session: Session, form_value: str | None) -> None:
    """Raises CsrfRefused unless the form field or the X-CSRF-Token header holds the session's token."""
    given = form_value or request.headers.get("x-csrf-token") or ""
    if not given or not hmac.compare_digest(given, session.csrf):
        raise CsrfRefused("this form's CSRF token is missing or wrong; reload the page and try again")


async def require_session(request: Request) -> Session:
    """A dependency for console routes: the session; without one, a redirect to the login form.

    POSTs (and other writes) must also carry the CSRF token: the form field ``csrf`` or the
    ``X-CSRF-Token`` header.
    """
    session = session_of(request)
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        value = None
        if "x-csrf-token" not in request.headers:
            form = await request.form()
            field = form.get("csrf")
            value = field if isinstance(field, str) else None
        check_csrf(request, session, value)
    request.state.token = session.token
    return session


def is_local_next(value: str | None) -> bool:
    """Whether ``value`` is a console path of this server (where a login may send the user on)."""
    if not value or len(value) > 2000 or not value.startswith("/ui"):
        return False
    if any(ch in value for ch in "\\\r\n\t\x00") or value.startswith("//"):
        return False
    parts = urlsplit(value)
    return not parts.scheme and not parts.netloc and (parts.path == "/ui" or parts.path.startswith("/ui/"))


def login_url(next_path: str | None) -> str:
    if next_path and is_local_next(next_path) and next_path not in ("/ui/", "/ui"):
        return "/ui/login?next=" + quote(next_path, safe="")
    return "/ui/login"


def new_login_nonce() -> str:
    return secrets.token_urlsafe(24)


def security_headers(https: bool, static: bool) -> dict[str, str]:
    """The headers every /ui response carries."""
    headers = {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    if not static:
        headers["Cache-Control"] = "no-store"
    if https:
        headers["Strict-Transport-Security"] = "max-age=31536000"
    return headers
