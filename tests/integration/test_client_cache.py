"""Step caching through the server: ``mloop run --no-cache`` and ``mloop show`` in client mode.

A real ``mloop server`` process on loopback with its own SQLite home; the CLI talks to it
(``MLOOP_SERVER_URL``), uploads the code, and the server runs real job processes. Each job
appends its name to ``ran.log`` (outside its outputs), so a test sees which jobs really ran.
The console's run form is tested on the real app through TestClient.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import Cli, wait_until, write_job, write_workflow
from test_console_workflow_page import console  # noqa: F401 (the console's fixture)
from test_server_api import serve_home

pytestmark = pytest.mark.timeout(240)

JOB = """
with open(args.mark, "a") as fh:
    fh.write(os.environ["MLOOP_STEP_NAME"] + "\\n")
with open(os.path.join(args.out, "done.txt"), "w") as fh:
    fh.write("done")
if args.fail == "yes":
    sys.exit(3)
"""
FLOW = """
    fail = wf.Placeholder(name="fail", placeholder_type=wf.PlaceholderType.STR, default="no")
    mark = str(HERE / "ran.log")
    prep = job("prep", code="code", params={"mark": mark})
    train = job("train", code="code", params={"mark": mark, "fail": fail}, depend=[prep])
    workflow = wf.Workflow(name="cachedremote", desc="", steps=[prep, train])
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """The server: (URL, admin token, its home). Step caching on, as it is by default."""
    yield from serve_home(tmp_path_factory.mktemp("cache-server"), "--concurrency", "2")


def client_cli(folder: Path, server: tuple[str, str, Path]) -> Cli:
    write_job(folder / "code", JOB, args=("out", "mark", "fail"))
    write_workflow(folder, FLOW)
    return Cli(folder, folder / ".mloop", extra_env={"XDG_CONFIG_HOME": str(folder / "config"),
                                                     "MLOOP_SERVER_URL": server[0], "MLOOP_TOKEN": server[1]})


def ran(folder: Path) -> list[str]:
    """The jobs that really ran since the last call, in order."""
    log = folder / "ran.log"
    found = log.read_text().split() if log.exists() else []
    log.unlink(missing_ok=True)
    return found


def cache_section(shown: str) -> list[str]:
    """The ``cache:`` line of ``mloop show`` and the indented lines under it."""
    lines = shown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("cache:"))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("  ")), len(lines))
    return [line.rstrip() for line in lines[start:end]]


def test_no_cache_runs_the_jobs_on_the_server_and_show_says_why(tmp_path: Path,
                                                                 server: tuple[str, str, Path]) -> None:
    cli = client_cli(tmp_path, server)
    first = cli.ok("run", "flow.py", "-q").out.split()[0]
    assert ran(tmp_path) == ["prep", "train"]
    cached = cli.ok("run", "flow.py", "-q").out.split()[0]
    assert ran(tmp_path) == [], "the second run should have reused every result"

    forced = cli.ok("run", "flow.py", "-q", "--no-cache").out.split()[0]

    assert ran(tmp_path) == ["prep", "train"], "--no-cache in client mode reused a cached result"
    shown = cli.ok("show", forced).out
    assert cache_section(shown) == ["cache: off for this run (--no-cache)",
                                    "  prep: ran: not cached because caching is off for this run (--no-cache)",
                                    "  train: ran: not cached because caching is off for this run (--no-cache)"], shown
    assert f"prep: cached from run {first[:12]}, step prep" in cli.ok("show", cached).out
    detail = cli.json("show", forced)
    assert detail["origin"]["no_cache"] is True
    assert {s["name"]: s["cache"] for s in detail["steps"]}["prep"].startswith("ran: not cached because")

    # The same words as `mloop show` on the server's own machine (the embedded door, its home):
    # the whole of it (release, started by, steps with durations, cache lines, outputs).
    embedded = Cli(tmp_path, server[2])
    for run_id in (first, cached, forced):
        remote, local = cli.ok("show", run_id).out, embedded.ok("show", run_id).out
        assert remote == local, (remote, local)
        assert "release: version 1 of cachedremote" in remote and "started by: api" in remote, remote


def test_a_retry_of_a_no_cache_run_stays_uncached(tmp_path: Path, server: tuple[str, str, Path]) -> None:
    cli = client_cli(tmp_path, server)
    cli.ok("run", "flow.py", "-q")  # prep and train with fail=no are now cached results
    ran(tmp_path)
    failed = cli("run", "flow.py", "-q", "--no-cache", "-p", "fail=yes")
    assert failed.code == 1, str(failed)
    run_id = failed.out.split()[0]
    assert ran(tmp_path) == ["prep", "train"]

    retried = cli("retry", run_id, "-p", "fail=no")

    assert retried.code == 0, str(retried)
    assert ran(tmp_path) == ["train"], "the retry reused train's cached result"
    assert "train: ran: not cached because caching is off for this run (--no-cache)" in cli.ok("show", run_id).out


@pytest.mark.parametrize("bad", ["no", "false", 0, None, {"x": 1}])
def test_the_api_refuses_a_cache_that_is_not_a_boolean(bad: object, tmp_path: Path,
                                                        server: tuple[str, str, Path]) -> None:
    url, admin, _ = server
    client_cli(tmp_path, server).ok("release", "flow.py")
    with httpx.Client(base_url=url + "/api/v1", headers={"Authorization": f"Bearer {admin}"}) as http:
        for path, body in (("/runs", {"workflow": "cachedremote"}), ("/workflows/cachedremote/runs", {})):
            answer = http.post(path, json={**body, "cache": bad})
            assert answer.status_code in (400, 422), answer.text
            assert "cache" in answer.json()["message"], answer.text


def test_the_workflow_run_endpoint_takes_cache_false(tmp_path: Path, server: tuple[str, str, Path]) -> None:
    url, admin, _ = server
    client_cli(tmp_path, server).ok("release", "flow.py")
    with httpx.Client(base_url=url + "/api/v1", headers={"Authorization": f"Bearer {admin}"}) as http:
        queued = http.post("/workflows/cachedremote/runs", json={"cache": False})
        assert queued.status_code == 201, queued.text
        assert queued.json()["origin"]["no_cache"] is True
        plain = http.post("/runs", json={"workflow": "cachedremote"})
        assert plain.status_code == 201 and "no_cache" not in (plain.json()["origin"] or {}), plain.text
        # A copy runs the same way as its source: uncached from an uncached run, cached from a plain one.
        copies = [http.post(f"/runs/{run['id']}/copy") for run in (queued.json(), plain.json())]
        assert [c.status_code for c in copies] == [201, 201], [c.text for c in copies]
        assert [c.json()["origin"].get("no_cache") for c in copies] == [True, None]
        for run in (queued.json(), plain.json(), *(c.json() for c in copies)):  # let them end first
            _wait_ended(http, run["id"])


def _wait_ended(http: httpx.Client, run_id: str) -> None:
    wait_until(lambda: http.get(f"/runs/{run_id}").json()["status"] in ("succeeded", "failed", "stopped"), 120,
               f"run {run_id} to end")


def test_show_json_in_client_mode_carries_each_steps_cache_line(tmp_path: Path,
                                                                server: tuple[str, str, Path]) -> None:
    cli = client_cli(tmp_path, server)
    run_id = cli.ok("run", "flow.py", "-q").out.split()[0]
    steps = {s["name"]: s for s in cli.json("show", run_id)["steps"]}
    assert all(re.match(r"(cached from run |ran: not cached because )", s["cache"]) for s in steps.values()), steps


def test_the_console_run_form_can_leave_the_cache_out(console: Any) -> None:
    """The workflow page's "reuse cached results" box: checked by default; unchecked, the run is
    queued like `mloop run --no-cache` (the real app through TestClient, its own store)."""
    html = console.ann.get("/ui/workflows/digits").text
    assert re.search(r'<input type="hidden" name="cache" value="off">\s*<label[^>]*><input type="checkbox" '
                     r'name="cache"\s+value="on" checked', html), html
    values = {"v:images": "/data/x"}
    unchecked = console.post("/ui/workflows/digits/run", {**values, "cache": "off"})
    checked = console.post("/ui/workflows/digits/run", {**values, "cache": ["off", "on"]})
    older_form = console.post("/ui/workflows/digits/run", values)
    origins = {}
    for name, answer in (("unchecked", unchecked), ("checked", checked), ("older", older_form)):
        assert answer.status_code == 303, answer.text
        origins[name] = console.store.get_run(answer.headers["location"].rsplit("/", 1)[1]).origin or {}
    assert origins["unchecked"].get("no_cache") is True
    assert "no_cache" not in origins["checked"] and "no_cache" not in origins["older"]
