"""The web console's pages without a browser (FastAPI's TestClient on the real app): login and its
double-submit CSRF, the session cookie's flags, redirects with a validated ``next``, CSRF on
console POSTs, the security headers, escaping, keyset paging of the runs list (store and API),
and the 503 page when the front-end assets were never built."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")

from fastapi.testclient import TestClient  # noqa: E402

from mloop.config import Settings  # noqa: E402
from mloop.server.app import create_app  # noqa: E402
from mloop.server.web import pages  # noqa: E402
from mloop.server.web.session import CSP, is_local_next  # noqa: E402

PASSWORD = "correct horse battery"
XSS = "<script>alert(1)</script>"


@pytest.fixture
def console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, object]]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLOOP_HOME", str(tmp_path / ".mloop"))
    monkeypatch.setattr(pages, "assets_present", lambda: True)
    app = create_app(Settings(home=tmp_path / ".mloop"), background=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        app.state.backend.store.users.add("ann", PASSWORD, "run")
        yield client, app


def _nonce(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def login(client: TestClient, next_path: str = "") -> str:
    form = client.get("/ui/login")
    response = client.post("/ui/login", data={"name": "ann", "password": PASSWORD, "csrf": _nonce(form.text),
                                              "next": next_path}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return response.headers["location"]


def test_pages_redirect_to_login_with_a_local_next(console: tuple[TestClient, object]) -> None:
    client, _ = console
    response = client.get("/ui/runs?state=failed", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login?next=%2Fui%2Fruns%3Fstate%3Dfailed"
    assert client.get("/ui/", follow_redirects=False).headers["location"] == "/ui/login"
    htmx = client.get("/ui/partials/overview", headers={"HX-Request": "true"}, follow_redirects=False)
    assert htmx.headers["HX-Redirect"] == "/ui/login"


@pytest.mark.parametrize("value,ok", [("/ui/runs?x=1", True), ("/ui/", True), ("//evil.example/ui", False),
                                      ("https://evil.example/ui/", False), ("/\\evil.example", False),
                                      ("/api/v1/runs", False), ("/ui\\@evil", False), ("", False)])
def test_next_must_be_a_console_path(value: str, ok: bool) -> None:
    assert is_local_next(value) is ok


def test_login_sets_a_strict_httponly_cookie_and_follows_next(console: tuple[TestClient, object]) -> None:
    client, _ = console
    form = client.get("/ui/login")
    cookie = form.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    bad = client.post("/ui/login", data={"name": "ann", "password": "wrong password", "csrf": _nonce(form.text)})
    assert bad.status_code == 401 and "Wrong user name or password." in bad.text
    response = client.post("/ui/login", data={"name": "ann", "password": PASSWORD,
                                              "csrf": _nonce(client.get("/ui/login").text),
                                              "next": "//evil.example/"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/ui/"
    session_cookie = [h for h in response.headers.get_list("set-cookie") if h.startswith("mloop_session=")][0]
    assert "HttpOnly" in session_cookie and "samesite=strict" in session_cookie.lower()
    assert "Path=/ui" in session_cookie and "Secure" not in session_cookie
    page = client.get("/ui/")
    assert page.status_code == 200 and "Overview" in page.text and "ann" in page.text


def test_login_without_the_forms_token_is_refused(console: tuple[TestClient, object]) -> None:
    client, _ = console
    client.get("/ui/login")
    refused = client.post("/ui/login", data={"name": "ann", "password": PASSWORD, "csrf": "forged"})
    assert refused.status_code == 403
    assert "mloop_session" not in client.cookies


def test_csrf_and_logout_revokes_the_session(console: tuple[TestClient, object]) -> None:
    client, app = console
    login(client)
    page = client.get("/ui/")
    assert client.post("/ui/logout", data={}, follow_redirects=False).status_code == 403
    assert client.post("/ui/logout", data={"csrf": "0" * 64}, follow_redirects=False).status_code == 403
    token = client.cookies["mloop_session"]
    out = client.post("/ui/logout", data={"csrf": _nonce(page.text)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    assert app.state.backend.store.tokens.verify(token) is None  # type: ignore[attr-defined]
    client.cookies.set("mloop_session", token)  # a stolen cookie is dead too
    assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_every_console_response_carries_the_csp(console: tuple[TestClient, object]) -> None:
    client, _ = console
    for path in ("/ui/login", "/ui/", "/ui/static/console.js"):
        response = client.get(path, follow_redirects=False)
        assert response.headers["content-security-policy"] == CSP, path
        assert response.headers["x-frame-options"] == "DENY"
    assert "content-security-policy" not in client.get("/api/v1/health").headers
    login(client)
    html = client.get("/ui/").text
    assert "<script>" not in html and " style=" not in html  # no inline scripts or styles


def test_user_strings_are_escaped_and_runs_page_by_key(console: tuple[TestClient, object]) -> None:
    client, app = console
    store = app.state.backend.store  # type: ignore[attr-defined]
    release = store.create_release(XSS, {"workflow": XSS})
    ids = [store.create_run(release.id, [(XSS, "job")], params={"p": XSS}).id for _ in range(7)]
    other = store.create_release("plain", {"workflow": "plain"})
    store.create_run(other.id, [("a", "job")])
    login(client)
    html = client.get("/ui/runs", params={"workflow": XSS, "limit": 3}).text
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    seen: list[str] = []
    url: str | None = "/ui/runs?" + f"workflow={XSS}&limit=3"
    while url:
        page = client.get(url).text
        seen += re.findall(r'data-run-id="([^"]+)"', page)
        found = re.search(r'href="(/ui/runs\?[^"]*before=[^"]*)" rel="next"', page)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert seen == list(reversed(ids))  # newest first, every run once, no other workflow's
    assert len(store.list_runs(before=ids[-1], limit=100)) == 6
    detail = client.get(f"/ui/runs/{ids[0]}")
    assert detail.status_code == 200 and XSS not in detail.text
    bad = client.get("/ui/runs", params={"state": "bogus"})
    assert bad.status_code == 400 and "no run status" in bad.text


def test_runs_filter_by_started_by_trigger_commit_and_day(console: tuple[TestClient, object]) -> None:
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import update

    from mloop.store.models import Run

    client, app = console
    store = app.state.backend.store  # type: ignore[attr-defined]
    release = store.create_release("wf", {"workflow": "wf"})
    pushed = store.create_run(release.id, [("a", "job")], origin={"kind": "git", "trigger": "t1", "commit": "c0ffee12"})
    other = store.create_run(release.id, [("a", "job")], origin={"kind": "git", "trigger": "t2", "commit": "deadbeef"})
    timed = store.create_run(release.id, [("a", "job")], origin={"kind": "schedule", "schedule": "s"})
    with store.db.session(write=True) as session:
        session.execute(update(Run).where(Run.id == timed.id).values(
            created_at=datetime(2026, 11, 1, 12, tzinfo=timezone.utc)))
    login(client)

    def shown(**params: str) -> list[str]:
        answer = client.get("/ui/runs", params=params)
        assert answer.status_code == 200, answer.text
        return re.findall(r'<tr data-run-id="([^"]+)"', answer.text)

    assert set(shown(by="git")) == {pushed.id, other.id}
    assert shown(by="git", commit="c0ff") == [pushed.id]
    assert shown(trigger="t2") == [other.id]
    assert shown(since="2026-11-01", until="2026-11-01") == [timed.id]  # the whole day
    assert timed.id not in shown(since=(datetime.now(timezone.utc) - timedelta(days=1)).date().isoformat())
    html = client.get("/ui/runs", params={"by": "git", "commit": "c0ff"}).text
    assert 'value="c0ff"' in html and re.search(r'<option value="git" selected>', html)
    bad = client.get("/ui/runs", params={"since": "yesterday"})
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.text


def test_the_api_pages_runs_by_key_too(console: tuple[TestClient, object]) -> None:
    client, app = console
    store = app.state.backend.store  # type: ignore[attr-defined]
    release = store.create_release("wf", {"workflow": "wf"})
    ids = [store.create_run(release.id, [("a", "job")]).id for _ in range(4)]
    token = store.tokens.create("t", "read")[1]
    body = client.get("/api/v1/runs", params={"before": ids[2], "limit": 10},
                      headers={"Authorization": f"Bearer {token}"}).json()
    assert [r["id"] for r in body["runs"]] == [ids[1], ids[0]]


def test_unbuilt_assets_answer_503_saying_how_to_build(console: tuple[TestClient, object],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    client, _ = console
    monkeypatch.setattr(pages, "assets_present", lambda: False)
    response = client.get("/ui/login")
    assert response.status_code == 503 and "python build_support/mloop_build.py" in response.text
    assert response.headers["content-security-policy"] == CSP


def test_the_api_login_and_the_console_share_one_check(console: tuple[TestClient, object]) -> None:
    client, _ = console
    ok = client.post("/api/v1/login", json={"name": "ann", "password": PASSWORD})
    assert ok.status_code == 200 and ok.json()["scope"] == "run"
    for _ in range(10):
        assert client.post("/api/v1/login", json={"name": "ann", "password": "nope"}).status_code == 401
    assert client.post("/api/v1/login", json={"name": "ann", "password": PASSWORD}).status_code == 429
    form = client.get("/ui/login")  # the console's login counts against the same limit
    limited = client.post("/ui/login", data={"name": "ann", "password": PASSWORD, "csrf": _nonce(form.text)})
    assert limited.status_code == 429 and "too many failed logins" in limited.text
