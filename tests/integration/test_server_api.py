"""The team server as a real ``mloop server`` process on loopback, spoken to with httpx: tokens
and scopes, the run queue (submit, concurrency, retry, stop), event streams that resume after
an id, Prometheus metrics, and a SIGKILL of the server with runs queued and running."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import Background, Cli, wait_until, write_job, write_workflow

pytestmark = pytest.mark.timeout(240)

#: ``tick`` appends the run id to a file per run (so a run executed twice shows two lines),
#: then sleeps ``pause`` seconds, or until ``release`` exists when it is given.
TICK = """
import pathlib
marks = pathlib.Path(args.here) / "marks"
marks.mkdir(exist_ok=True)
with open(marks / os.environ["MLOOP_RUN_ID"], "a") as fh:
    fh.write("ran\\n")
import psutil
ancestors = [p.pid for p in psutil.Process().parents()]
(marks / (os.environ["MLOOP_RUN_ID"] + ".pids")).write_text(json.dumps(ancestors))
print("tick ran for", os.environ["MLOOP_RUN_ID"], flush=True)
if args.release:
    wait_for_file(args.release, timeout=120)
time.sleep(float(args.pause or 0))
"""

FLOW = """
    pause = wf.Placeholder(name="pause", placeholder_type=wf.PlaceholderType.STR, default="0")
    release = wf.Placeholder(name="release", placeholder_type=wf.PlaceholderType.STR, default="")
    tick = job("tick", params={"here": str(HERE), "pause": pause, "release": release})
    workflow = wf.Workflow(name="ticker", desc="", steps=[tick])
"""


@dataclass
class Server:
    url: str
    admin: str
    bg: Background
    cli: Cli
    home: Path

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.admin}"}
        return httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=30)


def start_server(cli: Cli, *args: str, **env: str) -> tuple[Background, str, str | None]:
    bg = cli.start("server", "--port", "0", *args, **env)
    found = wait_until(lambda: re.search(r"mloop server at (http://127\.0\.0\.1:\d+)", bg.output()), 60, bg.output)
    token = re.search(r"admin token: (mlp_\S+)", bg.output())
    url = found.group(1)
    wait_until(lambda: _answers(url), 30, bg.output)
    return bg, url, token.group(1) if token else None


def serve_home(home: Path, *args: str) -> Iterator[tuple[str, str, Path]]:
    """A server on a fresh home under ``home`` for a module: (URL, admin token, its home);
    stopped (SIGTERM) when the generator is closed."""
    cli = Cli(home, home / ".mloop")
    bg, url, admin = start_server(cli, *args)
    assert admin, bg.output()
    try:
        yield url, admin, home / ".mloop"
    finally:
        bg.proc.send_signal(signal.SIGTERM)
        bg.proc.wait(timeout=30)
        cli.cleanup()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/api/v1/health", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


#: These tests count executions (a job's marks), so identical runs must run, not be served
#: from the step cache.
NO_CACHE = {"MLOOP_STEP_CACHE": "false"}


def prepare(folder: Path) -> Cli:
    write_job(folder / "code", TICK, args=("out", "here", "pause", "release"))
    write_workflow(folder, FLOW)
    cli = Cli(folder, folder / ".mloop", extra_env=NO_CACHE)
    cli.ok("release", "flow.py")
    return cli


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("server")
    cli = prepare(folder)
    bg, url, admin = start_server(cli, "--concurrency", "1")
    assert admin is not None, bg.output()
    yield Server(url, admin, bg, cli, folder)
    bg.proc.send_signal(signal.SIGTERM)
    bg.proc.wait(timeout=30)
    cli.cleanup()


def wait_run(client: httpx.Client, run_id: str, statuses: tuple[str, ...] = ("succeeded", "failed", "stopped"),
             timeout: float = 90) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body = client.get(f"/runs/{run_id}").json()
        return body if body["status"] in statuses else None

    return wait_until(done, timeout, lambda: json.dumps(client.get(f"/runs/{run_id}").json()))


class TestTokens:
    def test_health_and_metrics_need_no_token_everything_else_does(self, server: Server) -> None:
        assert httpx.get(server.url + "/api/v1/health").status_code == 200
        assert httpx.get(server.url + "/metrics").status_code == 200
        for path in ("/runs", "/workflows", "/events", "/label-tasks", "/tokens"):
            bare = httpx.get(server.url + "/api/v1" + path)
            assert bare.status_code == 401, (path, bare.text)
            assert bare.json()["code"] == "unauthorized" and "mloop token create" in bare.json()["hint"]
        with server.client("mlp_0000_not-a-token") as wrong:
            assert wrong.get("/runs").status_code == 401

    def test_a_scope_too_narrow_is_403_naming_the_scope_needed(self, server: Server) -> None:
        with server.client() as admin:
            made = admin.post("/tokens", json={"name": "viewer", "scope": "read"})
            assert made.status_code == 201, made.text
            token = made.json()["token"]
            assert made.json()["scope"] == "read" and token.startswith("mlp_")
            listed = admin.get("/tokens").json()
            assert any(t["name"] == "viewer" for t in listed)
            assert all("token" not in t and "secret_hash" not in t for t in listed)  # never shown again
        with server.client(token) as viewer:
            assert viewer.get("/runs").status_code == 200
            refused = viewer.post("/runs", json={"workflow": "ticker"})
            assert refused.status_code == 403 and "'run'" in refused.json()["message"]
            assert viewer.get("/tokens").status_code == 403
        with server.client() as admin:
            assert admin.delete(f"/tokens/{made.json()['id']}").json()["revoked_at"] is not None
        with server.client(token) as viewer:
            assert viewer.get("/runs").status_code == 401

    def test_the_token_cli_makes_lists_and_revokes(self, server: Server) -> None:
        made = server.cli.ok("token", "create", "ci-bot", "--scope", "run")
        token = made.out.strip()
        assert token.startswith("mlp_") and "shown once" in made.err
        with server.client(token) as bot:
            assert bot.get("/workflows").json()[0]["name"] == "ticker"
        assert "ci-bot" in server.cli.ok("token", "list").out
        server.cli.ok("token", "revoke", "ci-bot")
        with server.client(token) as bot:
            assert bot.get("/workflows").status_code == 401
        bad = server.cli("token", "create", "x", "--scope", "root")
        assert bad.code != 0 and "read, run, admin" in bad.err


class TestQueue:
    def test_a_submitted_run_is_queued_then_run_by_the_server(self, server: Server) -> None:
        with server.client() as client:
            made = client.post("/runs", json={"workflow": "ticker", "parameters": {"pause": "0"}})
            assert made.status_code == 201, made.text
            assert made.json()["origin"] == {"kind": "api", "token": "admin"}
            done = wait_run(client, made.json()["id"])
            assert done["status"] == "succeeded" and [s["status"] for s in done["steps"]] == ["succeeded"]
            lines = client.get(f"/runs/{done['id']}/logs").json()
            assert any(f"tick ran for {done['id']}" in entry["line"] for entry in lines)
            page = client.get("/runs", params={"workflow": "ticker", "status": "succeeded", "limit": 1}).json()
            assert page["limit"] == 1 and len(page["runs"]) == 1

    def test_bad_submissions_are_clear_errors_and_queue_nothing(self, server: Server) -> None:
        with server.client() as client:
            before = client.get("/runs", params={"limit": 500}).json()["runs"]
            unknown = client.post("/runs", json={"workflow": "nope"})
            assert unknown.status_code == 404 and "release it first" in unknown.json()["hint"]
            bad_value = client.post("/runs", json={"workflow": "ticker", "parameters": {"nosuch": 1}})
            assert bad_value.status_code == 422, bad_value.text
            shapeless = client.post("/runs", content=b"{not json", headers={"content-type": "application/json"})
            assert shapeless.status_code == 422 and shapeless.json()["code"] == "bad_request"
            assert client.get("/runs", params={"status": "bogus"}).status_code == 400
            assert len(client.get("/runs", params={"limit": 500}).json()["runs"]) == len(before)

    def test_runs_wait_their_turn_at_concurrency_one(self, server: Server) -> None:
        with server.client() as client:
            ids = [client.post("/runs", json={"workflow": "ticker", "parameters": {"pause": "0.3"}}).json()["id"]
                   for _ in range(3)]
            runs = [wait_run(client, i) for i in ids]
        assert [r["status"] for r in runs] == ["succeeded"] * 3
        spans = sorted((r["started_at"], r["finished_at"]) for r in runs)
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert start >= end, spans  # never two at once
        for run_id in ids:  # each executed once
            assert (server.home / "marks" / run_id).read_text() == "ran\n"

    def test_stop_and_retry_through_the_api(self, server: Server) -> None:
        gate = server.home / "gate-stop"
        with server.client() as client:
            run_id = client.post("/runs", json={"workflow": "ticker",
                                                "parameters": {"release": str(gate)}}).json()["id"]
            wait_run(client, run_id, ("running",))
            wait_until(lambda: (server.home / "marks" / run_id).exists(), 60, "the job to start")
            stopped = client.post(f"/runs/{run_id}/stop").json()
            assert stopped["status"] == "stopped", stopped
            gate.write_text("go")
            retried = client.post(f"/runs/{run_id}/retry")
            assert retried.status_code == 200 and retried.json()["status"] == "pending" and retried.json()["queued"]
            done = wait_run(client, run_id)
            assert done["status"] == "succeeded" and done["attempt"] == 2

    def test_the_event_stream_replays_and_resumes_after_an_id(self, server: Server) -> None:
        with server.client() as client:
            run_id = client.post("/runs", json={"workflow": "ticker"}).json()["id"]
            wait_run(client, run_id)
            frames = sse(client, f"/runs/{run_id}/events")
            moves = [(f["step"], f["to"]) for f in frames]
            assert moves[0] == (None, "running") and moves[-1] == (None, "succeeded")
            assert ("tick", "running") in moves and ("tick", "succeeded") in moves
            ids = [f["id"] for f in frames]
            assert ids == sorted(ids)
            later = sse(client, f"/runs/{run_id}/events", headers={"Last-Event-ID": str(ids[1])})
            assert [f["id"] for f in later] == ids[2:]
            assert client.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": "x; drop"}).status_code == 400

    def test_metrics_count_runs_and_requests(self, server: Server) -> None:
        text = httpx.get(server.url + "/metrics").text
        succeeded = re.search(r'^mloop_runs\{status="succeeded"\} (\d+)', text, re.M)
        assert succeeded and int(succeeded.group(1)) >= 1
        assert re.search(r"^mloop_queue_depth \d+", text, re.M)
        last_tick = re.search(r"^mloop_queue_last_tick_seconds (\S+)", text, re.M)
        assert last_tick and float(last_tick.group(1)) > time.time() - 60
        scheduler = re.search(r"^mloop_scheduler_last_tick_seconds (\S+)", text, re.M)
        assert scheduler and float(scheduler.group(1)) > time.time() - 60  # the scheduler loop runs
        assert re.search(r"^mloop_notifier_last_tick_seconds [1-9]", text, re.M)
        assert re.search(r"^mloop_notifier_backlog 0", text, re.M)
        assert 'mloop_http_request_seconds_count{method="POST",route="/runs"}' in text


def sse(client: httpx.Client, path: str, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The transitions of a finished run's stream (it ends with an ``end`` event)."""
    frames: list[dict[str, Any]] = []
    with client.stream("GET", path, headers=headers or {}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
                if event == "end":
                    break
            elif line.startswith("data: ") and event == "transition":
                frames.append(json.loads(line[6:]))
    return frames


def test_a_killed_server_loses_no_queued_run(tmp_path: Path) -> None:
    """SIGKILL with one run executing and two queued: on restart the one that ran is taken
    over (its engine was the dead server) and its interrupted step runs again as a new
    attempt; the queued ones run once."""
    cli = prepare(tmp_path)
    gate = tmp_path / "gate"
    bg, url, admin = start_server(cli, "--concurrency", "1")
    assert admin
    with httpx.Client(base_url=url + "/api/v1", headers={"Authorization": f"Bearer {admin}"}, timeout=30) as client:
        ids = [client.post("/runs", json={"workflow": "ticker", "parameters": {"release": str(gate)}}).json()["id"]
               for _ in range(3)]
        wait_until(lambda: any((tmp_path / "marks" / i).exists() for i in ids), 60, bg.output)
    first = next(i for i in ids if (tmp_path / "marks" / i).exists())
    bg.kill()
    gate.write_text("go")
    bg2, url2, again = start_server(cli, "--concurrency", "2")
    assert again is None  # the admin token was made once
    try:
        with httpx.Client(base_url=url2 + "/api/v1", headers={"Authorization": f"Bearer {admin}"},
                          timeout=30) as client:
            ended = {i: wait_run(client, i) for i in ids}
        assert all(ended[i]["status"] == "succeeded" for i in ids), ended
        for run_id in ids:
            assert (tmp_path / "marks" / run_id).read_text() == ("ran\nran\n" if run_id == first else "ran\n")
    finally:
        bg2.proc.send_signal(signal.SIGTERM)
        bg2.proc.wait(timeout=30)
        cli.cleanup()


@pytest.mark.postgres
def test_two_servers_on_one_postgresql_never_run_a_run_twice(tmp_path: Path, pg_url: str) -> None:
    """Both servers poll one queue (FOR UPDATE SKIP LOCKED, then the engine's compare-and-set
    claim): every run is executed exactly once, and both servers take part."""
    cli = prepare_on(tmp_path, pg_url)
    a, url_a, admin = start_server(cli, "--concurrency", "3")
    b, _url_b, again = start_server(cli, "--concurrency", "3")
    assert admin and again is None
    try:
        with httpx.Client(base_url=url_a + "/api/v1", headers={"Authorization": f"Bearer {admin}"},
                          timeout=30) as client:
            ids = [client.post("/runs", json={"workflow": "ticker", "parameters": {"pause": "0.2"}}).json()["id"]
                   for _ in range(12)]
            ended = [wait_run(client, i, timeout=150) for i in ids]
        assert [r["status"] for r in ended] == ["succeeded"] * 12
        for run_id in ids:
            assert (tmp_path / "marks" / run_id).read_text() == "ran\n"
        # Which server ran each: the job's ancestors include it.
        ran_by = {run_id: {a.pid, b.pid} & set(json.loads((tmp_path / "marks" / f"{run_id}.pids").read_text()))
                  for run_id in ids}
        assert all(len(s) == 1 for s in ran_by.values()), ran_by
        assert set().union(*ran_by.values()) == {a.pid, b.pid}, ran_by
    finally:
        for bg in (a, b):
            bg.proc.send_signal(signal.SIGTERM)
            bg.proc.wait(timeout=30)
        cli.cleanup()


def prepare_on(folder: Path, database_url: str) -> Cli:
    write_job(folder / "code", TICK, args=("out", "here", "pause", "release"))
    write_workflow(folder, FLOW)
    cli = Cli(folder, folder / ".mloop", extra_env={"MLOOP_DATABASE_URL": database_url, **NO_CACHE})
    cli.ok("release", "flow.py")
    return cli


class Receiver:
    """A real HTTP server on loopback that keeps the JSON bodies posted to it."""

    def __init__(self) -> None:
        import http.server
        import threading

        bodies = self.bodies = []  # type: list[dict[str, Any]]
        arrived = self.arrived = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - stdlib naming
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()
                arrived.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_the_server_notifies_subscribers_of_the_runs_it_executes(server: Server) -> None:
    receiver = Receiver()
    try:
        with server.client() as client:
            made = client.post("/subscriptions", json={"name": "ticker-ends", "channel": "webhook",
                                                       "target": receiver.url, "workflow": "ticker"})
            assert made.status_code in (200, 201), made.text
            run_id = client.post("/runs", json={"workflow": "ticker"}).json()["id"]
            assert wait_run(client, run_id)["status"] == "succeeded"
            wait_until(lambda: any(b.get("run", {}).get("id") == run_id or b.get("run_id") == run_id
                                   for b in receiver.bodies), 30, lambda: json.dumps(receiver.bodies))
            body = next(b for b in receiver.bodies if run_id in json.dumps(b))
            assert "succeeded" in json.dumps(body)
            log = client.get("/notifications").json()
            assert any(n["run_id"] == run_id and n["status"] == "sent" for n in
                       (log["notifications"] if isinstance(log, dict) else log))
            assert client.delete("/subscriptions/ticker-ends").status_code == 200
    finally:
        receiver.server.shutdown()


def test_queueing_an_older_version_runs_that_version(tmp_path: Path) -> None:
    from mloop.cli import load_workflow
    from mloop.config import Settings
    from mloop.runs import open_backend, release_spec
    from mloop.runs.queue import queued_runs, submit

    prepare(tmp_path)  # releases version 1
    (tmp_path / "flow.py").write_text((tmp_path / "flow.py").read_text().replace('desc=""', 'desc="v2"'))
    with open_backend(Settings(home=tmp_path / ".mloop")) as ctx:
        assert release_spec(ctx, load_workflow(str(tmp_path / "flow.py"))).version == 2
        run = submit(ctx, "ticker", {}, version=1, origin={"kind": "api"})
        assert ctx.store.get_release(run.release_id).version == 1
        assert [r.version for r in ctx.store.list_releases("ticker")] == [1, 2]  # no version 3
        assert [r.id for r in queued_runs(ctx)] == [run.id]


@pytest.mark.parametrize("path", ["/runs", "/triggers", "/schedules", "/subscriptions", "/tokens"])
def test_a_lone_surrogate_in_any_json_body_is_400_and_stores_nothing(server: Server, path: str) -> None:
    """Text no store can encode is refused before any route: a record saved with it would
    answer 500 from then on."""
    raw = b'{"workflow": "ticker", "name": "x\\ud800", "parameters": {"pause": "\\udfff"}}'
    with server.client() as client:
        before = client.get("/runs", params={"limit": 500}).json()["runs"]
        answer = client.post(path, content=raw, headers={"content-type": "application/json"})
        assert answer.status_code == 400 and "surrogate" in answer.json()["message"], answer.text
        gate = server.home / "gate-😀"
        gate.write_text("open")
        paired = client.post("/runs", json={"workflow": "ticker", "parameters": {"release": str(gate)}})
        assert paired.status_code == 201, paired.text  # a real pair (an emoji) is fine
        assert wait_run(client, paired.json()["id"])["status"] == "succeeded"
        assert len(client.get("/runs", params={"limit": 500}).json()["runs"]) == len(before) + 1


def test_the_log_stream_follows_a_running_job_and_resumes_after_its_id(server: Server) -> None:
    gate = server.home / "gate-logs"
    with server.client() as client:
        run_id = client.post("/runs", json={"workflow": "ticker", "parameters": {"release": str(gate)}}).json()["id"]
        seen: list[str] = []
        last_id = None
        with client.stream("GET", f"/runs/{run_id}/logs/stream") as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("id: "):
                    last_id = line[4:]
                if line.startswith("data: ") and '"line"' in line:
                    seen.append(json.loads(line[6:])["line"])
                    if any("tick ran for" in s for s in seen) and not gate.exists():
                        gate.write_text("go")  # the job printed while running; now let it end
                if line == "event: end":
                    break
        assert any(f"tick ran for {run_id}" in s for s in seen), seen
        assert last_id and last_id.startswith("tick=")
        again = sse_lines(client, f"/runs/{run_id}/logs/stream", {"Last-Event-ID": last_id})
        assert again == []  # nothing after the offsets it had
        assert client.get(f"/runs/{run_id}/logs/stream", headers={"Last-Event-ID": "../x"}).status_code == 400
        assert client.get(f"/runs/{run_id}/logs/stream", params={"step": "nope"}).status_code == 404


def sse_lines(client: httpx.Client, path: str, headers: dict[str, str]) -> list[str]:
    out: list[str] = []
    with client.stream("GET", path, headers=headers) as response:
        for line in response.iter_lines():
            if line.startswith("data: ") and '"line"' in line:
                out.append(json.loads(line[6:])["line"])
            if line == "event: end":
                break
    return out
