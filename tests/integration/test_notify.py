"""Notifications end to end: a real HTTP receiver checks bodies and signatures, a failing one
is retried with backoff (a controllable clock, no sleeps), a real SMTP server (aiosmtpd) gets
the e-mail, an embedded run with a failing step notifies with no server, a run whose engine
was SIGKILLed is notified by the next reconcile, and a rescan sends nothing twice."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers import Cli, Embedded, wait_until, write_job, write_workflow
from sqlalchemy import update

from mloop.cli import load_workflow
from mloop.config import Settings
from mloop.notify.notifier import MAX_ATTEMPTS, Notifier
from mloop.runs import open_backend, start_run
from mloop.store.notify import NotifierCursor

pytestmark = pytest.mark.timeout(90)


# -- a real HTTP receiver -------------------------------------------------------------------------

@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 recording every POST; answers from ``codes`` (then 200)."""

    codes: list[int] = field(default_factory=list)
    got: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(g["body"]) for g in self.got]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            rec.got.append({"path": self.path, "headers": dict(self.headers), "body": body})
            code = rec.codes.pop(0) if rec.codes else 200
            self.send_response(code)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    rec.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=rec.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


FLOW = """
workflow = wf.Workflow(name="mnist", desc="", steps=[job("train", outputs=())])
"""


@pytest.fixture
def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Embedded]:
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("MLOOP_")]:
        monkeypatch.delenv(key)
    b = Embedded(tmp_path / ".mloop")
    yield b
    b.close()


def failed_run(b: Embedded, tmp_path: Path) -> str:
    """A run of ``mnist`` that started and failed (real store transitions, so real events)."""
    write_job(tmp_path / "code", "pass\n", args=())
    run = b.create(write_workflow(tmp_path, FLOW))
    b.store.transition_run(run.id, "running")
    b.store.transition_run(run.id, "failed", message="step train failed")
    return run.id


# -- tests ----------------------------------------------------------------------------------------

def test_webhook_gets_the_json_body_signed_with_hmac(tmp_path: Path, backend: Embedded, receiver: Receiver) -> None:
    backend.store.notify.add_subscription("hook", channel="webhook", target=receiver.url, secret="s3cret",
                                          events=["run_failed", "run_started"], workflow_name="mnist")
    backend.store.notify.add_subscription("other", channel="webhook", target=receiver.url,
                                          events=["run_failed"], workflow_name="another")
    run_id = failed_run(backend, tmp_path)

    result = Notifier(backend.backend).pump()

    assert (result.queued, result.sent, result.failed) == (2, 2, 0)
    started, failed = receiver.got
    for got in receiver.got:
        expected = "sha256=" + hmac.new(b"s3cret", got["body"], hashlib.sha256).hexdigest()
        assert got["headers"]["X-Mloop-Signature"] == expected
        assert got["headers"]["Content-Type"] == "application/json"
    body = json.loads(failed["body"])
    assert body["event"] == "run_failed" and body["run_id"] == run_id and body["workflow"] == "mnist"
    assert body["run_number"] == 1 and body["to_status"] == "failed" and body["text"].startswith("mnist #1 failed")
    assert failed["headers"]["X-Mloop-Event"] == "run_failed"
    assert json.loads(started["body"])["event"] == "run_started"
    log = backend.store.notify.list_notifications()
    assert [(n.event, n.status, n.attempts) for n in log] == [("run_failed", "sent", 1), ("run_started", "sent", 1)]
    assert failed["headers"]["X-Mloop-Delivery"] == str(log[0].id)


def test_failing_receiver_is_retried_with_backoff_and_the_log_shows_attempts(
        tmp_path: Path, backend: Embedded, receiver: Receiver) -> None:
    receiver.codes = [500]
    backend.store.notify.add_subscription("hook", channel="slack", target=receiver.url, events=["run_failed"])
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    backend.store.notify.add_subscription("dead", channel="webhook", target=f"http://127.0.0.1:{dead_port}/x",
                                          events=["run_failed"])
    failed_run(backend, tmp_path)
    clock = Clock()
    notifier = Notifier(backend.backend, clock=clock)

    first = notifier.pump()
    assert (first.queued, first.sent, first.failed) == (2, 0, 2)
    slack = next(n for n in backend.store.notify.list_notifications() if n.subscription_name == "hook")
    assert (slack.status, slack.attempts, slack.last_error) == ("pending", 1, "HTTP 500: ok")
    assert slack.next_attempt_at == clock.now + timedelta(seconds=5)

    assert notifier.deliver().sent == 0  # not due yet: nothing is sent before its backoff ends
    clock.advance(5)
    assert notifier.deliver().sent == 1
    assert receiver.bodies()[-1] == {"text": "mnist #1 failed: step train failed"}
    slack = next(n for n in backend.store.notify.list_notifications() if n.subscription_name == "hook")
    assert (slack.status, slack.attempts, slack.last_error) == ("sent", 2, None)

    delays = []
    for _ in range(MAX_ATTEMPTS - 2):  # the dead target: 8 attempts, then given up
        dead = next(n for n in backend.store.notify.list_notifications() if n.subscription_name == "dead")
        delays.append((dead.next_attempt_at - clock.now).total_seconds())
        clock.now = dead.next_attempt_at
        notifier.deliver()
    dead = next(n for n in backend.store.notify.list_notifications() if n.subscription_name == "dead")
    assert delays == [10, 20, 40, 80, 160, 320]
    assert (dead.status, dead.attempts) == ("failed", MAX_ATTEMPTS)
    assert "cannot reach" in (dead.last_error or "")
    clock.advance(3600)
    assert notifier.deliver().sent + notifier.deliver().failed == 0  # given up for good


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (the openssl command; the test is skipped without it)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=30)
    return cert, key


@pytest.mark.parametrize("security", ["none", "starttls", "ssl"])
def test_email_reaches_a_real_smtp_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, security: str) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    class Handler:
        def __init__(self) -> None:
            self.mail: list[Any] = []
            self.logins: list[tuple[bytes, bytes]] = []

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            self.mail.append(envelope)
            return "250 OK"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        handler.logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"pw")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handler = Handler()
    settings: dict[str, Any] = {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_security": security,
                                "smtp_from": "mloop@example.com"}
    tls: dict[str, Any] = {}
    if security != "none":
        cert, key = _self_signed(tmp_path)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        tls = {"authenticator": authenticator}
        # Implicit TLS (ssl): aiosmtpd can't tell the socket is encrypted, so it must not insist on STARTTLS.
        tls.update({"tls_context": context, "require_starttls": True, "auth_require_tls": True}
                   if security == "starttls" else {"ssl_context": context, "auth_require_tls": False})
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts the test's certificate
        monkeypatch.setenv("MLOOP_SMTP_PASSWORD", "pw")  # the password from the environment
        settings["smtp_user"] = "bot"
    controller = Controller(handler, hostname="127.0.0.1", port=port, **tls)
    controller.start()
    try:
        monkeypatch.chdir(tmp_path)
        b = Embedded(tmp_path / ".mloop", **settings)
        b.store.notify.add_subscription("team", channel="email", target="ml@example.com, ops@example.com",
                                        events=["run_failed"])
        failed_run(b, tmp_path)
        result = Notifier(b.backend).pump()
        log = b.store.notify.list_notifications()
        b.close()
    finally:
        controller.stop()
    assert result.sent == 1, log
    (mail,) = handler.mail
    assert mail.mail_from == "mloop@example.com"
    assert sorted(mail.rcpt_tos) == ["ml@example.com", "ops@example.com"]
    text = mail.content.decode()
    assert "Subject: [mloop] mnist #1 failed" in text and "event: run_failed" in text
    if security != "none":
        assert handler.logins == [(b"bot", b"pw")]


def test_embedded_run_with_a_failing_step_notifies_with_no_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 receiver: Receiver) -> None:
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("MLOOP_")]:
        monkeypatch.delenv(key)
    (tmp_path / "mloop.toml").write_text(textwrap.dedent(f"""
        [[notify]]
        name = "ci"
        workflow = "mnist"
        events = ["failed", "succeeded"]
        channel = "webhook"
        target = "{receiver.url}"
        secret = "k"
    """))
    write_job(tmp_path / "code", "import sys\nprint('boom', flush=True)\nsys.exit(1)\n", args=())
    flow = write_workflow(tmp_path, FLOW)
    with open_backend(Settings(home=tmp_path / ".mloop")) as ctx:
        result = start_run(ctx, load_workflow(str(flow)))
        assert result.run.status == "failed"
        log = ctx.store.notify.list_notifications()
    assert [(n.subscription_name, n.event, n.status) for n in log] == [("ci", "run_failed", "sent")]
    (body,) = receiver.bodies()
    assert body["event"] == "run_failed" and body["run_id"] == result.run.id
    assert body["text"] == "mnist #1 failed: step train (exit 1)"
    assert (body["failed_step"], body["failed_exit_code"]) == ("train", 1)


ENGINE = textwrap.dedent("""
    import sys
    from mloop.config import Settings
    from mloop.runs import execute_run, open_backend

    with open_backend(Settings(home=sys.argv[1])) as ctx:
        execute_run(ctx, sys.argv[2])
""")


def test_a_run_whose_engine_was_killed_is_notified_by_the_next_reconcile(
        tmp_path: Path, backend: Embedded, receiver: Receiver) -> None:
    started = tmp_path / "started"
    write_job(tmp_path / "code", f"""
        open({str(started)!r}, "w").close()
        time.sleep(60)
    """, args=())
    backend.store.notify.add_subscription("hook", channel="webhook", target=receiver.url,
                                          events=["run_failed", "step_failed"])
    run = backend.create(write_workflow(tmp_path, FLOW))
    engine = subprocess.Popen([sys.executable, "-c", ENGINE, str(backend.settings.home_path), run.id],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(started.exists, 30, "the job to start")
        wait_until(lambda: backend.store.get_step(run.id, "train").status == "running", 10, "the step to run")
    finally:
        engine.send_signal(signal.SIGKILL)
        engine.wait(timeout=10)
    assert receiver.got == []

    with open_backend(Settings(home=backend.settings.home_path, stop_grace_seconds=1)) as ctx:  # the next command
        assert ctx.store.get_run(run.id).status == "failed"
    events = sorted(b["event"] for b in receiver.bodies())
    assert events == ["run_failed", "step_failed"]
    assert all(b["run_id"] == run.id for b in receiver.bodies())


def test_a_rescan_sends_nothing_twice_and_a_new_subscription_gets_no_old_events(
        tmp_path: Path, backend: Embedded, receiver: Receiver) -> None:
    backend.store.notify.add_subscription("hook", channel="webhook", target=receiver.url, events=["run_failed"])
    failed_run(backend, tmp_path)
    assert Notifier(backend.backend).pump().sent == 1

    with backend.store.db.session(write=True) as session:  # the cursor back at the start: everything rescanned
        session.execute(update(NotifierCursor).values(event_id=0))
    backend.store.notify.add_subscription("late", channel="webhook", target=receiver.url, events=["run_failed"])
    again = Notifier(backend.backend).pump()
    assert (again.queued, again.sent) == (0, 0)
    assert len(receiver.got) == 1
    assert backend.store.notify.cursor() > 0
    assert [n.subscription_name for n in backend.store.notify.list_notifications()] == ["hook"]


def test_the_first_subscription_starts_at_the_newest_event(tmp_path: Path, backend: Embedded,
                                                           receiver: Receiver) -> None:
    failed_run(backend, tmp_path)  # before anyone subscribed
    backend.store.notify.add_subscription("hook", channel="webhook", target=receiver.url, events=["run_failed"])
    assert Notifier(backend.backend).pump().queued == 0
    assert receiver.got == []


def test_the_api_adds_lists_and_removes_subscriptions(tmp_path: Path, backend: Embedded) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from mloop.server.api.notify import router

    app = FastAPI()
    app.state.backend = backend.backend
    app.include_router(router, prefix="/api/v1")
    client = TestClient(app)
    made = client.post("/api/v1/subscriptions", json={"name": "ops", "channel": "webhook",
                                                      "target": "https://hooks.example.com/x", "secret": "k",
                                                      "events": ["failed"], "workflow": "mnist"})
    assert made.status_code == 201, made.text
    assert made.json()["events"] == ["run_failed"] and made.json()["signed"] is True
    assert "secret" not in made.json()
    listed = client.get("/api/v1/subscriptions").json()
    assert [s["name"] for s in listed] == ["ops"]
    assert listed[0]["target"] == "https://hooks.example.com/…"  # no token known: never the whole URL
    assert client.get("/api/v1/notifications").json() == []
    assert client.delete("/api/v1/subscriptions/ops").status_code == 200
    assert client.get("/api/v1/subscriptions").json() == []


def test_the_cli_checks_adds_lists_logs_and_removes(tmp_path: Path, backend: Embedded, receiver: Receiver) -> None:
    cli = Cli(tmp_path, backend.settings.home_path)
    typo = cli("notify", "add", "ops", "--channel", "webhok", "--target", receiver.url)
    assert typo.code != 0 and "did you mean 'webhook'" in typo.text, typo
    bad = cli("notify", "add", "ops", "--channel", "webhook", "--target", receiver.url, "--events", "faild")
    assert bad.code != 0 and "did you mean 'failed'" in bad.text, bad
    assert cli("notify", "add", "ops", "--channel", "email", "--target", "nobody").code != 0
    cli.ok("notify", "add", "ops", "--channel", "webhook", "--target", receiver.url, "--events", "failed",
           "--workflow", "mnist", "--secret", "k")
    assert [s["name"] for s in cli.json("notify", "list")] == ["ops"]
    failed_run(backend, tmp_path)
    assert "sent 1" in cli.ok("notify", "send").out
    log = cli("notify", "log", COLUMNS="80")
    assert log.code == 0 and "mnist#1 failed" in log.out and "sent" in log.out, log
    assert all(len(line) <= 80 for line in log.out.splitlines()), log.out
    cli.ok("notify", "remove", "ops")
    assert cli.json("notify", "list") == []


def test_a_read_token_sees_webhook_and_slack_urls_cut_to_their_host(tmp_path: Path) -> None:
    """A Slack or webhook URL is a credential (its path lets anyone post): only a token that may
    add subscriptions (``run``) sees it whole; e-mail addresses are shown to every reader."""
    from fastapi.testclient import TestClient

    from mloop.server.app import create_app

    app = create_app(Settings(home=tmp_path / ".mloop"), background=False)
    with TestClient(app) as client:  # the backend opens with the app's lifespan
        store = app.state.backend.store
        store.notify.add_subscription("hook", channel="webhook", target="https://ci.example.com/hooks/s3cr3t",
                                      events=["run_failed"])
        store.notify.add_subscription("chat", channel="slack",
                                      target="https://hooks.slack.com/services/T0/B0/XyZ", events=["run_failed"])
        store.notify.add_subscription("mail", channel="email", target="ops@example.com", events=["run_failed"])
        reader = store.tokens.create("reader", "read")[1]
        runner = store.tokens.create("runner", "run")[1]

        def listed(token: str) -> dict[str, str]:
            answer = client.get("/api/v1/subscriptions", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200, answer.text
            return {s["name"]: s["target"] for s in answer.json()}

        seen = listed(reader)
        assert seen == {"hook": "https://ci.example.com/…", "chat": "https://hooks.slack.com/…",
                        "mail": "ops@example.com"}
        assert "s3cr3t" not in str(seen) and "XyZ" not in str(seen)
        assert listed(runner)["chat"] == "https://hooks.slack.com/services/T0/B0/XyZ"
