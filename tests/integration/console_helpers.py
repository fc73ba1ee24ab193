"""The web console's browser tests' fixtures: ONE real ``mloop server`` per module (with a console
user, finished runs, and runs whose names and values hold ``<script>``), and ONE headless Chromium
per module (Debian's ``/usr/bin/chromium`` driven by Playwright from PyPI; never downloaded).

Tests that need the browser skip, saying why, only when chromium or playwright is absent.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import MLOOP, Background, Cli, wait_until, write_workflow

CHROMIUM = os.environ.get("MLOOP_CHROMIUM", "/usr/bin/chromium")
XSS = "<script>alert(1)</script>"
USER, PASSWORD = "ann", "correct horse battery"

#: A workflow of one ConditionStep: a run takes a fraction of a second, so paging has pages fast.
FLOW = """
    note = wf.Placeholder(name="note", placeholder_type=wf.PlaceholderType.STR, default="plain")
    gate = wf.steps.ConditionStep(
        name="gate", conditions=wf.steps.Condition(wf.steps.ConditionTypeEnum.EQ, note, "never"),
        if_then_steps=[], else_then_steps=[])
    workflow = wf.Workflow(name="quick", desc="", steps=[gate])
"""


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        return (f"no Chromium at {CHROMIUM}: `apt-get install -y --no-install-recommends chromium` "
                "(or set MLOOP_CHROMIUM)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed: pip install -e '.[dev]'"
    return None


@dataclass
class ConsoleServer:
    url: str
    admin: str
    bg: Background
    cli: Cli
    folder: Path
    #: runs seeded straight into the store with <script> in their workflow, step and parameter
    hostile_run: str

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url + "/api/v1", headers={"Authorization": f"Bearer {self.admin}"},
                            timeout=30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/api/v1/health", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def seed_hostile_run(home: Path) -> str:
    """A finished run whose workflow name, step name and parameter value hold ``<script>``.

    The SDK refuses such names, so they go straight into the store (as an older or foreign
    writer could have left them): the console must still show them as text."""
    from mloop.config import Settings
    from mloop.runs import open_backend

    with open_backend(Settings(home=home)) as backend:
        store = backend.store
        store.users.add(USER, PASSWORD, "run")
        release = store.create_release(f"wf {XSS}", {"workflow": XSS})
        run = store.create_run(release.id, [(f"step {XSS}", "job")], params={"note": XSS})
        store.transition_run(run.id, "failed", message=f"failed: {XSS}")
        return run.id


def start_console_server(folder: Path, runs: int = 7) -> ConsoleServer:
    write_workflow(folder, FLOW)
    cli = Cli(folder, folder / ".mloop")
    cli.ok("release", "flow.py")
    hostile = seed_hostile_run(folder / ".mloop")
    bg = cli.start("server", "--port", "0", "--concurrency", "4")
    found = wait_until(lambda: re.search(r"mloop server at (http://127\.0\.0\.1:\d+)", bg.output()), 60, bg.output)
    token = re.search(r"admin token: (mlp_\S+)", bg.output())
    assert token is not None, bg.output()
    url = found.group(1)
    wait_until(lambda: _answers(url), 30, bg.output)
    server = ConsoleServer(url, token.group(1), bg, cli, folder, hostile)
    with server.api() as api:
        ids = []
        for i in range(runs):
            made = api.post("/runs", json={"workflow": "quick", "parameters": {"note": XSS if i == 0 else f"n{i}"}})
            assert made.status_code in (200, 201, 202), made.text
            ids.append(made.json()["id"])

        def finished() -> bool:
            return all(api.get(f"/runs/{i}").json()["status"] in ("succeeded", "failed") for i in ids)

        wait_until(finished, 90, bg.output)
    return server


def stop_console_server(server: ConsoleServer) -> None:
    server.bg.proc.send_signal(signal.SIGTERM)
    try:
        server.bg.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.bg.proc.kill()
    server.cli.cleanup()


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    reason = chromium_missing()
    if reason:
        pytest.skip(reason)
    server = start_console_server(tmp_path_factory.mktemp("console"))
    yield server
    stop_console_server(server)


def launch_browser(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = chromium_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = launch_browser(pw)
        yield chromium
        chromium.close()


def form_login(client: Any, name: str, password: str = PASSWORD) -> str:
    """Log an HTTP client (FastAPI's TestClient, httpx) in through the console's form, as a
    browser would; returns the session's CSRF token (from a page's form)."""
    form = client.get("/ui/login")
    nonce = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert nonce, form.text
    done = client.post("/ui/login", data={"name": name, "password": password, "csrf": nonce.group(1)},
                       follow_redirects=False)
    assert done.status_code == 303, done.text
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/settings").text)
    assert found
    return found.group(1)


def log_in(page: Any, url: str, user: str = USER, password: str = PASSWORD) -> None:
    page.goto(url + "/ui/login")
    page.fill("input[name=name]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/ui/(\?.*)?$|.*/ui/(?!login).*"))


@contextlib.contextmanager
def app_on_loopback(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn in a thread on 127.0.0.1 (a free port); yields its URL."""
    import threading

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 30, "the server to start")
        yield "http://127.0.0.1:%d" % server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(30)


@contextlib.contextmanager
def logged_in_pages(url: str, users: tuple[str, ...] = (USER,)) -> Iterator[list[tuple[Any, list[str]]]]:
    """One headless Chromium with a page per user (each its own context, so its own cookies),
    logged in; each page comes with the script, console and HTTP errors it meets (CSP
    refusals are console errors). Skips when chromium or playwright is missing."""
    reason = chromium_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = launch_browser(pw)
        try:
            pages = []
            for user in users:
                page = chromium.new_context().new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
                page.on("console", lambda msg, errors=errors: errors.append(msg.text) if msg.type == "error"
                        and not msg.text.startswith("Failed to load resource") else None)
                page.on("response", lambda r, errors=errors: errors.append(f"{r.status} {r.url}")
                        if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
                log_in(page, url, user)
                pages.append((page, errors))
            yield pages
        finally:
            chromium.close()


__all__ = ["CHROMIUM", "app_on_loopback", "form_login", "logged_in_pages", "MLOOP", "PASSWORD", "USER", "XSS", "ConsoleServer", "browser", "chromium_missing",
           "console_server", "launch_browser", "log_in", "start_console_server", "stop_console_server"]
