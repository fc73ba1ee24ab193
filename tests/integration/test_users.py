"""Console users: ``mloop user add|list|disable|passwd`` (typer's CliRunner on a real SQLite
home), ``POST /api/v1/login`` and the admin's ``/users`` routes (FastAPI's TestClient on the real
app), argon2 rehashing, the dummy hash for unknown names, and the failed-login limit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

pytest.importorskip("argon2")

from argon2 import PasswordHasher  # noqa: E402
from fastapi import Depends, FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from mloop.cli import app as cli_app  # noqa: E402
from mloop.config import Settings  # noqa: E402
from mloop.errors import TooManyRequestsError, UserError, UserExistsError  # noqa: E402
from mloop.server.api import users as users_api  # noqa: E402
from mloop.server.app import create_app  # noqa: E402
from mloop.server.auth import requires  # noqa: E402
from mloop.store import users as users_store  # noqa: E402

pytestmark = pytest.mark.timeout(120)

PASSWORD = "correct horse battery"


def cheap() -> PasswordHasher:
    """argon2id with small parameters: the same code paths, a fraction of the CPU."""
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


class Counting(PasswordHasher):
    """A cheap hasher that counts its verifications."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:  # noqa: A002 - argon2's name
        self.verified += 1
        return super().verify(hash, password)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLOOP_HOME", str(tmp_path / ".mloop"))
    monkeypatch.delenv("MLOOP_SERVER_URL", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no saved `mloop login` credentials
    monkeypatch.setattr(users_store, "_default_hasher", cheap)
    return tmp_path / ".mloop"


def cli(*args: str, input: str | None = None) -> Any:  # noqa: A002 - CliRunner's name
    return CliRunner().invoke(cli_app, list(args), input=input, env={"COLUMNS": "100"})


def ok(*args: str, input: str | None = None) -> str:  # noqa: A002
    result = cli(*args, input=input)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return str(result.output)


# -- CLI -------------------------------------------------------------------------------------------

def test_add_with_prompt_list_passwd_disable() -> None:
    out = ok("user", "add", "alice", "--scope", "admin", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert "added user alice (scope admin)" in out
    assert PASSWORD not in out  # the prompt hides what is typed
    ok("user", "add", "bob", "--password-stdin", input="bob's password\n")

    listed = json.loads(ok("user", "list", "--json"))
    assert [(u["name"], u["scopes"], u["disabled_at"]) for u in listed] == [("alice", ["admin"], None),
                                                                            ("bob", ["run"], None)]
    assert all("password_hash" not in u for u in listed)
    table = ok("user", "list")
    assert "alice" in table and "admin" in table and "active" in table

    from mloop.runs.open import open_backend

    with open_backend(Settings()) as backend:
        assert backend.store.users.login("alice", PASSWORD) is not None
        assert backend.store.users.login("bob", "bob's password") is not None

    ok("user", "passwd", "alice", "--password-stdin", input="a new passphrase\n")
    ok("user", "disable", "bob")
    assert "disabled" in ok("user", "list")
    with open_backend(Settings()) as backend:
        users = backend.store.users
        assert users.login("alice", PASSWORD) is None
        assert users.login("alice", "a new passphrase") is not None
        assert users.login("bob", "bob's password") is None  # disabled
        assert users.get("alice").last_login_at is not None


def test_cli_refusals() -> None:
    mismatch = cli("user", "add", "carol", input=f"{PASSWORD}\nsomething else\n")
    assert mismatch.exit_code != 0 and "do not match" in mismatch.output
    short = cli("user", "add", "carol", "--password-stdin", input="short\n")
    assert isinstance(short.exception, UserError) and "8-1024 characters" in str(short.exception)
    bad_name = cli("user", "add", "no spaces", "--password-stdin", input=f"{PASSWORD}\n")
    assert isinstance(bad_name.exception, UserError) and "invalid user name" in str(bad_name.exception)
    empty = cli("user", "add", "carol", "--password-stdin", input="\n")
    assert isinstance(empty.exception, UserError)
    assert json.loads(ok("user", "list", "--json")) == []

    ok("user", "add", "carol", "--password-stdin", input=f"{PASSWORD}\n")
    again = cli("user", "add", "carol", "--password-stdin", input=f"{PASSWORD}\n")
    assert isinstance(again.exception, UserExistsError) and again.exception.code == "user_exists"
    bad_scope = cli("user", "add", "dave", "--scope", "root", "--password-stdin", input=f"{PASSWORD}\n")
    assert isinstance(bad_scope.exception, UserError) and "read, run, admin" in (bad_scope.exception.hint or "")
    missing = cli("user", "passwd", "nobody", "--password-stdin", input=f"{PASSWORD}\n")
    assert missing.exception is not None and getattr(missing.exception, "code", None) == "not_found"


# -- the repository --------------------------------------------------------------------------------

def test_rehash_on_login_and_dummy_work_for_unknown_names(home: Path) -> None:
    from mloop.runs.open import open_backend
    from mloop.store.users import User

    with open_backend(Settings(home=home)) as backend:
        store: Any = backend.store
        users = store.users
        users.add("erin", PASSWORD, "read")
        with store.db.session(write=False) as session:
            before = session.get(User, "erin").password_hash
        assert "m=1024,t=1" in before

        counting = Counting()
        users.hasher = counting
        for name, password in [("nobody", PASSWORD), ("erin", "wrong password"), ("no such name!", "x" * 5000)]:
            assert users.login(name, password) is None
        assert counting.verified == 3  # unknown and malformed names cost one argon2 verification too

        users.hasher = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
        assert users.login("erin", PASSWORD) is not None
        with store.db.session(write=False) as session:
            after = session.get(User, "erin").password_hash
        assert after != before and "m=2048,t=2" in after  # rehashed with the current parameters
        assert users.login("erin", PASSWORD) is not None


def test_limiter_slides() -> None:
    now = [0.0]
    limiter = users_api.LoginLimiter(limit=3, window=60, max_keys=2, clock=lambda: now[0])
    key = ("alice", "10.0.0.1")
    for t in (0, 10, 20):
        now[0] = t
        limiter.check(key)
        limiter.failed(key)
    with pytest.raises(TooManyRequestsError) as refused:
        limiter.check(key)
    assert refused.value.retry_after == 40  # the failure at t=0 leaves the window at t=60
    now[0] = 60.5
    limiter.check(key)  # one failure left the window
    limiter.failed(("bob", "x"))
    limiter.failed(("carol", "x"))  # max_keys=2: the oldest key is forgotten
    assert len(limiter._failures) == 2 and key not in limiter._failures


# -- the API ---------------------------------------------------------------------------------------

@pytest.fixture
def api(home: Path) -> Iterator[tuple[TestClient, str]]:
    app = create_app(Settings(home=home), background=False)
    with TestClient(app) as client:
        admin = app.state.backend.store.tokens.create("admin", "admin")[1]
        yield client, admin


def test_login_gives_a_token_of_the_users_scope(api: tuple[TestClient, str]) -> None:
    client, admin = api
    auth = {"Authorization": f"Bearer {admin}"}
    created = client.post("/api/v1/users", json={"name": "frank", "password": PASSWORD, "scope": "read"},
                          headers=auth)
    assert created.status_code == 201, created.text
    assert created.json()["scope"] == "read" and "password" not in created.text

    got = client.post("/api/v1/login", json={"name": "frank", "password": PASSWORD})
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["scope"] == "read" and body["name"] == "frank" and body["token"].startswith("mlp_")
    mine = {"Authorization": f"Bearer {body['token']}"}
    assert client.get("/api/v1/runs", headers=mine).status_code == 200
    refused = client.post("/api/v1/runs", json={"workflow": "x"}, headers=mine)
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert client.get("/api/v1/users", headers=mine).status_code == 403  # user management is admin's

    listed = client.get("/api/v1/users", headers=auth).json()
    assert [u["name"] for u in listed] == ["frank"] and listed[0]["last_login_at"] is not None
    tokens = [t["name"] for t in client.get("/api/v1/tokens", headers=auth).json()]
    assert "login-frank" in tokens

    disabled = client.post("/api/v1/users/frank/disable", headers=auth)
    assert disabled.status_code == 200 and disabled.json()["disabled_at"] is not None
    assert client.get("/api/v1/runs", headers=mine).status_code == 401  # its login tokens are revoked
    again = client.post("/api/v1/login", json={"name": "frank", "password": PASSWORD})
    assert again.status_code == 401


def test_bad_logins_look_alike_and_are_limited(api: tuple[TestClient, str]) -> None:
    client, admin = api
    auth = {"Authorization": f"Bearer {admin}"}
    assert client.post("/api/v1/users", json={"name": "gina", "password": PASSWORD}, headers=auth).status_code == 201
    assert client.post("/api/v1/users", json={"name": "gina", "password": PASSWORD},
                       headers=auth).json()["code"] == "user_exists"
    short = client.post("/api/v1/users", json={"name": "hank", "password": "short"}, headers=auth)
    assert short.status_code == 422 and short.json()["code"] == "bad_request"
    assert client.post("/api/v1/users/nobody/disable", headers=auth).status_code == 404

    wrong = client.post("/api/v1/login", json={"name": "gina", "password": "not it"})
    unknown = client.post("/api/v1/login", json={"name": "nobody", "password": "not it"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["code"] == "unauthorized" and wrong.json()["message"] == "wrong user name or password"

    for _ in range(9):  # 10 failures in all
        assert client.post("/api/v1/login", json={"name": "gina", "password": "not it"}).status_code == 401
    limited = client.post("/api/v1/login", json={"name": "gina", "password": PASSWORD})
    assert limited.status_code == 429, limited.text
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.json()["code"] == "too_many_requests"
    # Another name from the same client is not limited by gina's failures.
    assert client.post("/api/v1/login", json={"name": "nobody", "password": "x"}).status_code == 401
    # Malformed requests answer a clear 422, not a 500.
    assert client.post("/api/v1/login", json={"name": "gina"}).status_code == 422
    assert client.post("/api/v1/login", content=b"\xff\xfe", headers={"content-type": "application/json"}
                       ).status_code in (400, 422)
