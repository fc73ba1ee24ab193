"""Console users over HTTP: a login that trades a name and password for an API token, and the
admin's user management (:class:`mloop.store.users.UserRepository` behind both).

Two routers, because they authenticate differently:

* :data:`login_router` — ``POST /login {"name", "password"}``, no token needed: answers an API
  token of the user's scope (named ``login-NAME``), or 401 with one message for a wrong name, a
  wrong password and a disabled user alike. Failed logins are limited per name and client
  (:class:`LoginLimiter`: 10 a minute, then 429 with ``Retry-After``).
* :data:`router` — behind the server's token auth, to be included with ``requires("admin")``::

      GET  /users                  every user (never a password hash)
      POST /users                  add one {"name", "password", "scope"?}
      POST /users/{name}/disable   refuse its logins from now on, revoke its login tokens

Include them as::

    app.include_router(users.login_router, prefix="/api/v1")
    app.include_router(users.router, prefix="/api/v1", dependencies=[Depends(requires("admin"))])
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import datetime
from typing import Literal, Optional

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from mloop.errors import AuthError, TooManyRequestsError
from mloop.server.app import backend_of
from mloop.store.tokens import TokenRecord, TokenRepository
from mloop.store.users import MAX_PASSWORD, MIN_PASSWORD, UserRecord, login_token_name, revoke_login_tokens

__all__ = ["LoginLimiter", "login_router", "login_user", "router"]

login_router = APIRouter(tags=["users"])
router = APIRouter(tags=["users"])

#: A user keeps at most this many live login tokens; a new login revokes the oldest beyond it.
LOGIN_TOKENS_PER_USER = 5

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class LoginLimiter:
    """Failed logins per key (name + client) in a sliding window; thread-safe, bounded in memory.

    Args:
        limit: failures allowed within ``window`` seconds; the next attempt is refused.
        window: the sliding window, in seconds.
        max_keys: keys remembered at most (the least recently failed are forgotten first).
    """

    def __init__(self, limit: int = 10, window: float = 60.0, *, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self.clock = clock
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def check(self, key: tuple[str, str]) -> None:
        """Refuse ``key`` if it failed ``limit`` times within the window.

        Raises:
            TooManyRequestsError: it did; ``retry_after`` is when the oldest failure leaves the window.
        """
        with self._lock:
            now = self.clock()
            times = self._recent(key, now)
            if not times:
                self._failures.pop(key, None)
            if len(times) >= self.limit:
                retry_after = max(1, math.ceil(times[0] + self.window - now))
                raise TooManyRequestsError(f"too many failed logins; try again in {retry_after} s",
                                           retry_after=retry_after,
                                           hint="check the name and password; an admin can set a new one "
                                                "with `mloop user passwd NAME`")

    def failed(self, key: tuple[str, str]) -> None:
        with self._lock:
            now = self.clock()
            times = self._recent(key, now)
            times.append(now)
            self._failures[key] = times
            self._failures.move_to_end(key)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def succeeded(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._failures.pop(key, None)


class Login(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class LoginOut(BaseModel):
    token: str = Field(description="an API token of the user's scope: send it as `Authorization: Bearer <token>`")
    token_id: str
    name: str = Field(description="the user")
    scope: str


class NewUser(BaseModel):
    name: str = Field(min_length=1, max_length=32, pattern=_NAME_PATTERN,
                      description="1-32 letters, digits, '-', '_' or '.', starting with a letter or digit")
    password: str = Field(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)
    scope: Literal["read", "run", "admin"] = Field("run", description="read | run | admin")


class UserOut(BaseModel):
    name: str
    scope: str
    created_at: datetime
    last_login_at: Optional[datetime] = None
    disabled_at: Optional[datetime] = None

    @classmethod
    def of(cls, r: UserRecord) -> UserOut:
        return cls(name=r.name, scope=r.scope, created_at=r.created_at, last_login_at=r.last_login_at,
                   disabled_at=r.disabled_at)


def _limiter(request: Request) -> LoginLimiter:
    state = request.app.state
    limiter: LoginLimiter | None = getattr(state, "login_limiter", None)
    if limiter is None:
        limiter = state.login_limiter = LoginLimiter()
    return limiter


@login_router.post("/login", response_model=LoginOut)
def login(request: Request, body: Login) -> LoginOut | JSONResponse:
    """Trade a user's name and password for an API token of the user's scope."""
    try:
        user, record, text = login_user(request, body.name, body.password)
    except TooManyRequestsError as exc:
        return JSONResponse({"error": exc.message, **exc.to_dict()}, status_code=429,
                            headers={"Retry-After": str(exc.retry_after)})
    return LoginOut(token=text, token_id=record.id, name=user.name, scope=record.scope)


def login_user(request: Request, name: str, password: str) -> tuple[UserRecord, TokenRecord, str]:
    """The one login check (``POST /api/v1/login`` and the web console's ``POST /ui/login``): the
    limiter, the password, then a new login token of the user's scope (its text third).

    Raises:
        TooManyRequestsError: too many failed logins of this name from this client.
        AuthError: a wrong name or password, or a disabled user (one message for all).
    """
    limiter = _limiter(request)
    key = (name, request.client.host if request.client else "")
    limiter.check(key)
    store = backend_of(request.app).store
    user = store.users.login(name, password)
    if user is None:
        limiter.failed(key)
        raise AuthError("wrong user name or password", hint="an admin can set a new one with `mloop user passwd NAME`")
    limiter.succeeded(key)
    record, text = store.tokens.create(login_token_name(user.name), user.scope)
    _keep_newest(store.tokens, user.name)
    return user, record, text


def _keep_newest(tokens: TokenRepository, name: str) -> None:
    wanted = login_token_name(name)
    live = [t for t in tokens.list() if t.name == wanted and t.revoked_at is None]
    for old in live[:-LOGIN_TOKENS_PER_USER]:
        tokens.revoke(old.id)


@router.get("/users", response_model=list[UserOut])
def list_users(request: Request) -> list[UserOut]:
    return [UserOut.of(u) for u in backend_of(request.app).store.users.list()]


@router.post("/users", status_code=201, response_model=UserOut)
def add_user(request: Request, body: NewUser) -> UserOut:
    return UserOut.of(backend_of(request.app).store.users.add(body.name, body.password, body.scope))


@router.post("/users/{name}/disable", response_model=UserOut)
def disable_user(request: Request, name: str = Path(min_length=1, max_length=64)) -> UserOut:
    store = backend_of(request.app).store
    record = store.users.disable(name)
    revoke_login_tokens(store.tokens, record.name)
    return UserOut.of(record)
