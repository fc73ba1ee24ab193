"""The console's settings page on the real app (TestClient, a real SQLite store): an admin
makes a token (its text shown once, usable on the API at once, never stored), revokes it (the API
refuses it after), adds and disables users (a disabled user's console session ends); a bad name
or scope is a clear error; a ``run`` user sees only their own facts and is refused the actions;
every form needs the CSRF token; names are escaped."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")

from console_helpers import form_login  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from mloop.config import Settings  # noqa: E402
from mloop.server.app import create_app  # noqa: E402
from mloop.server.web import pages  # noqa: E402

PASSWORD = "correct horse battery"


def _nonce(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def _login(app: Any, name: str) -> tuple[TestClient, str]:
    client = TestClient(app, base_url="http://127.0.0.1")
    return client, form_login(client, name)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    pages.assets_present = lambda: True  # type: ignore[assignment]  # the pages, not the npm build
    app = create_app(Settings(home=tmp_path / ".mloop"), background=False)
    with TestClient(app, base_url="http://127.0.0.1") as boot:
        store = app.state.backend.store
        store.users.add("root", PASSWORD, "admin")
        store.users.add("ann", PASSWORD, "run")
        admin, csrf = _login(app, "root")
        yield {"app": app, "store": store, "admin": admin, "csrf": csrf, "boot": boot}


def test_a_made_token_is_shown_once_works_and_can_be_revoked(world: dict[str, Any]) -> None:
    admin, csrf, boot = world["admin"], world["csrf"], world["boot"]
    made = admin.post("/ui/settings/tokens", data={"csrf": csrf, "name": "ci-bot", "scope": "read"})
    assert made.status_code == 201, made.text
    text = re.search(r'data-testid="token-text">([^<]+)<', made.text)
    assert text
    token = text.group(1)
    assert boot.get("/api/v1/runs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert token not in admin.get("/ui/settings").text  # once
    record = next(t for t in world["store"].tokens.list() if t.name == "ci-bot")
    assert record.scope == "read"
    revoked = admin.post(f"/ui/settings/tokens/{record.id}/revoke", data={"csrf": csrf}, follow_redirects=False)
    assert revoked.status_code == 303 and "notice=" in revoked.headers["location"]
    assert boot.get("/api/v1/runs", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_bad_token_names_and_scopes_are_clear_errors(world: dict[str, Any]) -> None:
    admin, csrf = world["admin"], world["csrf"]
    for data, words in (({"name": "no spaces", "scope": "run"}, "invalid token name"),
                        ({"name": "ok", "scope": "god"}, "scope")):
        answer = admin.post("/ui/settings/tokens", data={"csrf": csrf, **data})
        assert answer.status_code == 400 and words in answer.text, answer.text
    assert [t.name for t in world["store"].tokens.list() if not t.name.startswith("login-")] == []


def test_users_are_added_and_disabling_one_ends_their_session(world: dict[str, Any]) -> None:
    admin, csrf = world["admin"], world["csrf"]
    ann, _ = _login(world["app"], "ann")
    assert ann.get("/ui/settings").status_code == 200
    added = admin.post("/ui/settings/users", data={"csrf": csrf, "name": "bob", "password": PASSWORD,
                                                  "scope": "read"}, follow_redirects=False)
    assert added.status_code == 303
    assert world["store"].users.get("bob").scope == "read"
    again = admin.post("/ui/settings/users", data={"csrf": csrf, "name": "bob", "password": PASSWORD})
    assert again.status_code == 400 and "exists already" in again.text
    short = admin.post("/ui/settings/users", data={"csrf": csrf, "name": "cy", "password": "x"})
    assert short.status_code == 400 and "password" in short.text.lower()
    gone = admin.post("/ui/settings/users/ann/disable", data={"csrf": csrf}, follow_redirects=False)
    assert gone.status_code == 303 and "1%20login%20token" in gone.headers["location"]
    assert ann.get("/ui/settings", follow_redirects=False).status_code == 303  # back to the login
    self_disable = admin.post("/ui/settings/users/root/disable", data={"csrf": csrf}, follow_redirects=False)
    assert "error=" in self_disable.headers["location"] and world["store"].users.get("root").disabled_at is None


def test_a_run_user_sees_their_facts_and_is_refused_the_actions(world: dict[str, Any]) -> None:
    ann, csrf = _login(world["app"], "ann")
    html = ann.get("/ui/settings").text
    assert "managed by an admin" in html and 'data-testid="tokens"' not in html
    refused = ann.post("/ui/settings/tokens", data={"csrf": csrf, "name": "mine", "scope": "admin"})
    assert refused.status_code == 403
    assert ann.post("/ui/settings/users", data={"csrf": csrf, "name": "x", "password": PASSWORD}).status_code == 403
    assert all(t.name != "mine" for t in world["store"].tokens.list())


def test_forms_need_the_csrf_token_and_names_are_escaped(world: dict[str, Any]) -> None:
    admin, csrf = world["admin"], world["csrf"]
    assert admin.post("/ui/settings/tokens", data={"name": "x", "scope": "run"}).status_code == 403
    world["store"].users.add("a.b_c-d", PASSWORD, "read")
    html = admin.get("/ui/settings").text
    assert 'data-user="a.b_c-d"' in html
    assert "<script" not in html.split("<main>", 1)[1]
