"""The web console in a real headless Chromium (Debian's /usr/bin/chromium, Playwright from PyPI)
against one real ``mloop server`` process: login and its redirect, the overview, the runs list's
filters and keyset pages, escaping of hostile strings, the CSP, and CSRF."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from console_helpers import XSS, ConsoleServer, browser, console_server, log_in  # noqa: F401 - fixtures

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def session(browser: Any, console_server: ConsoleServer) -> Iterator[Any]:  # noqa: F811
    """A logged-in browser context (shared by the module's read-only tests)."""
    context = browser.new_context()
    page = context.new_page()
    log_in(page, console_server.url)
    page.close()
    yield context
    context.close()


@pytest.fixture
def page(session: Any) -> Iterator[Any]:
    page = session.new_page()
    page.dialogs = []  # type: ignore[attr-defined]
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))  # type: ignore[attr-defined]
    yield page
    page.close()


def test_a_page_without_login_redirects_to_login_and_back(browser: Any, console_server: ConsoleServer) -> None:  # noqa: F811
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(console_server.url + "/ui/runs?state=succeeded")
        assert page.url == console_server.url + "/ui/login?next=" + quote("/ui/runs?state=succeeded", safe="")
        page.fill("input[name=name]", "ann")
        page.fill("input[name=password]", "not the password")
        page.click("button[type=submit]")
        assert page.get_by_role("alert").inner_text() == "Wrong user name or password."
        page.fill("input[name=password]", "correct horse battery")
        page.click("button[type=submit]")
        page.wait_for_url("**/ui/runs?state=succeeded")
        assert page.locator("[data-testid=user]").inner_text() == "ann"
        cookie = [c for c in context.cookies() if c["name"] == "mloop_session"][0]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert page.evaluate("document.cookie") == ""  # the session is out of scripts' reach
    finally:
        context.close()


def test_overview_shows_finished_runs_and_the_queues_last_seen(page: Any, console_server: ConsoleServer) -> None:
    response = page.goto(console_server.url + "/ui/")
    assert response.status == 200
    assert int(page.locator(".n[data-state=succeeded]").inner_text()) >= 7
    assert page.locator("[data-testid=runs-table] tbody tr").count() == 8  # 7 + the seeded one
    queue = page.locator("[data-testid=loop-queue]")
    assert "last seen" in queue.inner_text() and re.search(r"\d+(\.\d)? s ago", queue.inner_text())
    assert "stale" not in (queue.get_attribute("class") or "")
    assert page.locator("[data-testid=loop-scheduler] time").count() == 1
    assert page.dialogs == []


def test_runs_list_filters_and_pages_by_key(page: Any, console_server: ConsoleServer) -> None:
    page.goto(console_server.url + "/ui/runs")
    page.select_option("select[name=workflow]", "quick")
    page.select_option("select[name=state]", "succeeded")
    page.click("form[data-testid=filters] button[type=submit]")
    page.wait_for_url(re.compile(r".*workflow=quick&state=succeeded(&|$)"))  # then the empty filters
    assert page.locator("tbody tr[data-run-id]").count() == 7
    page.goto(page.url + "&limit=3")
    seen: list[str] = []
    while True:
        rows = page.locator("tbody tr[data-run-id]")
        seen += [rows.nth(i).get_attribute("data-run-id") for i in range(rows.count())]
        assert rows.count() <= 3
        older = page.locator("[data-testid=older]")
        if older.count() == 0:
            break
        older.click()
        page.wait_for_load_state()
    assert len(seen) == 7 and len(set(seen)) == 7
    page.click("[data-testid=newest]")
    first = page.locator("tbody tr[data-run-id] a").first
    run_id = page.locator("tbody tr[data-run-id]").first.get_attribute("data-run-id")
    assert run_id == seen[0]
    first.click()
    page.wait_for_url(f"**/ui/runs/{run_id}")


def test_hostile_strings_show_as_text_and_run_nothing(page: Any, console_server: ConsoleServer) -> None:
    for path in ("/ui/", "/ui/runs", "/ui/workflows", f"/ui/runs/{console_server.hostile_run}"):
        response = page.goto(console_server.url + path)
        assert response.status == 200, path
        page.wait_for_load_state("networkidle")
        assert XSS in page.inner_text("body"), path
        assert page.evaluate("typeof window.alert") == "function"
    assert page.dialogs == []
    page.goto(console_server.url + "/ui/runs")
    assert page.locator("[data-testid=runs-table] td a", has_text=f"wf {XSS}").first.is_visible()


def test_the_csp_is_sent_and_blocks_inline_scripts(page: Any, console_server: ConsoleServer) -> None:
    response = page.goto(console_server.url + "/ui/runs")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    ran = page.evaluate("""() => { window.__ran = false;
        const s = document.createElement('script'); s.textContent = 'window.__ran = true';
        document.body.appendChild(s); return window.__ran; }""")
    assert ran is False
    page.wait_for_timeout(100)
    assert violations, "Chromium should report the blocked inline script"


def test_a_post_without_the_csrf_token_is_refused(browser: Any, console_server: ConsoleServer) -> None:  # noqa: F811
    context = browser.new_context()
    try:
        page = context.new_page()
        log_in(page, console_server.url)
        # a real browser form POST, to the console's own origin, without the hidden field
        page.evaluate("""() => { const f = document.createElement('form'); f.method = 'post';
            f.action = '/ui/logout'; document.body.appendChild(f); f.submit(); }""")
        page.wait_for_load_state()
        assert "CSRF token is missing or wrong" in page.inner_text("body")
        page.goto(console_server.url + "/ui/")
        assert page.locator("[data-testid=user]").inner_text() == "ann"  # still logged in
        page.click("header form button[type=submit]")  # the real logout form carries the token
        page.wait_for_url("**/ui/login")
        page.goto(console_server.url + "/ui/")
        assert "/ui/login" in page.url
    finally:
        context.close()


def test_screenshots_of_the_main_pages(session: Any, console_server: ConsoleServer, tmp_path: Path) -> None:
    from mloop.server.web.screenshots import shoot

    made = shoot(session, console_server.url, tmp_path)
    assert [p.name for p in made] == ["overview.png", "runs.png"]
    assert all(p.stat().st_size > 10_000 for p in made)
