"""The console's workflow page on the real app (FastAPI's TestClient, a real SQLite store and
real releases made by `mloop release`): the run form generated from typed placeholders, its
errors beside the field with the typed values kept, saved configurations, the spec diff between
versions, schedules and subscriptions made, paused and deleted from the page, and what a read
scope may and may not do."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")

from fastapi.testclient import TestClient  # noqa: E402
from helpers import Cli, write_job, write_workflow  # noqa: E402

from mloop.config import Settings  # noqa: E402
from mloop.server.app import create_app  # noqa: E402
from mloop.server.web import pages  # noqa: E402

PASSWORD = "correct horse battery"
XSS = "<script>alert(1)</script>"

FLOW = """
    epochs = wf.Placeholder(name="epochs", placeholder_type=wf.PlaceholderType.INT, default={epochs},
                            description="passes over the data " + {xss!r})
    lr = wf.Placeholder(name="lr", placeholder_type=wf.PlaceholderType.FLOAT, default=0.1)
    mode = wf.Placeholder(name="mode", placeholder_type=wf.PlaceholderType.ENUM, default="fast",
                          enum_list=["fast", "exact"])
    shuffle = wf.Placeholder(name="shuffle", placeholder_type=wf.PlaceholderType.BOOL, default=True)
    extra = wf.Placeholder(name="extra", placeholder_type=wf.PlaceholderType.JSON, default={{"k": 1}})
    images = wf.data.OBSPlaceholder(name="images", object_type="directory")
    train = job("train", params={{"epochs": epochs, "lr": lr, "mode": mode, "shuffle": shuffle, "extra": extra}},
                inputs={{"images": images}})
    workflow = wf.Workflow(name="digits", desc="train digits", steps=[train])
"""


def _nonce(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


class Console:
    """The app, a client logged in as ``ann`` (scope run) and a client logged in as ``rex`` (read)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.app = create_app(Settings(home=root / ".mloop"), background=False)
        self.ann = TestClient(self.app, base_url="http://127.0.0.1")
        self.rex = TestClient(self.app, base_url="http://127.0.0.1")
        self.ann.__enter__()
        self.store = self.app.state.backend.store
        self.store.users.add("ann", PASSWORD, "run")
        self.store.users.add("rex", PASSWORD, "read")
        for client, name in ((self.ann, "ann"), (self.rex, "rex")):
            form = client.get("/ui/login")
            done = client.post("/ui/login", data={"name": name, "password": PASSWORD, "csrf": _nonce(form.text)},
                               follow_redirects=False)
            assert done.status_code == 303, done.text
        self.csrf = _nonce(self.ann.get("/ui/workflows/digits").text)

    def post(self, path: str, data: dict[str, Any], client: TestClient | None = None) -> Any:
        return (client or self.ann).post(path, data={"csrf": self.csrf, **data}, follow_redirects=False)

    def close(self) -> None:
        self.ann.__exit__(None, None, None)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    root = tmp_path_factory.mktemp("wfpage")
    pages.assets_present = lambda: True  # type: ignore[assignment]  # the page, not the npm build
    write_job(root / "code", "pass\n", args=("out", "epochs", "lr", "mode", "shuffle", "extra", "images"))
    cli = Cli(root, root / ".mloop")
    cli.ok("release", str(write_workflow(root, FLOW.format(epochs=3, xss=XSS))))
    cli.ok("release", str(write_workflow(root, FLOW.format(epochs=5, xss=XSS), name="flow2.py")))
    console = Console(root)
    yield console
    console.close()


def test_the_form_has_a_control_per_placeholder_type_and_escapes_descriptions(console: Console) -> None:
    html = console.ann.get("/ui/workflows/digits").text
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert re.search(r'<input id="f-\d+" name="v:epochs"[^>]*inputmode="numeric"[^>]*placeholder="5"', html)
    mode = re.search(r'<select id="f-\d+" name="v:mode">(.*?)</select>', html, re.S)
    assert mode and [c for c in re.findall(r'<option value="([^"]*)"', mode.group(1))] == ["", "fast", "exact"]
    assert re.search(r'<select id="f-\d+" name="v:shuffle">', html)
    assert re.search(r'<textarea id="f-\d+" name="v:extra"', html)
    assert re.search(r'name="v:images"[^>]*placeholder="a path or URL"', html)
    assert re.search(r'images\s+<span class="dim">obs data · required</span>', html)
    assert "Run v2" in html  # the latest version by default


def test_bad_values_are_shown_beside_their_fields_and_nothing_is_queued(console: Console) -> None:
    before = len(console.store.list_runs())
    answer = console.post("/ui/workflows/digits/run", {"v:epochs": "many", "v:mode": "slow", "v:images": "/data",
                                                       "v:lr": "0.5"})
    assert answer.status_code == 422, answer.text
    html = answer.text
    epochs = re.search(r'data-testid="error-epochs">([^<]*)<', html)
    mode = re.search(r'data-testid="error-mode">([^<]*)<', html)
    assert epochs and "INT" in epochs.group(1) and "many" in epochs.group(1)
    assert mode and "slow" in mode.group(1)
    assert 'data-testid="error-lr"' not in html
    assert re.search(r'name="v:epochs" value="many"', html) and re.search(r'name="v:lr" value="0.5"', html)
    assert len(console.store.list_runs()) == before


def test_a_missing_required_value_is_marked_on_its_field(console: Console) -> None:
    answer = console.post("/ui/workflows/digits/run", {"v:epochs": "2"})
    assert answer.status_code == 422
    assert 'data-testid="error-images"' in answer.text


def test_good_values_queue_a_run_of_that_version_and_save_the_configuration(console: Console) -> None:
    answer = console.post("/ui/workflows/digits/run", {"version": "1", "v:epochs": "7", "v:mode": "exact",
                                                       "v:shuffle": "false", "v:extra": '{"a": [1, 2]}',
                                                       "v:images": "/data/x", "v:lr": "", "save_as": "nightly"})
    assert answer.status_code == 303, answer.text
    run_id = answer.headers["location"].rsplit("/", 1)[1]
    run = console.store.get_run(run_id)
    assert run.status == "pending"  # queued: the server's dispatcher starts it
    assert run.params["epochs"] == 7 and run.params["mode"] == "exact" and run.params["shuffle"] is False
    assert run.params["extra"] == {"a": [1, 2]} and run.params["lr"] == 0.1  # empty field: the default
    assert (run.origin or {}).get("kind") == "console" and run.origin["user"] == "ann"
    assert console.store.get_release(run.release_id).version == 1
    saved = console.ann.get("/ui/workflows/digits?config=nightly").text
    assert re.search(r'name="v:epochs" value="7"', saved)
    assert re.search(r'<option value="exact" selected>', saved)


def test_the_diff_between_versions_names_what_changed(console: Console) -> None:
    html = console.ann.get("/ui/workflows/digits/diff?a=1&b=2").text
    assert "defaults changed: epochs (3 -&gt; 5)" in html
    assert re.search(r'<span class="del">-\s*&#34;default&#34;: 3', html)
    assert re.search(r'<span class="add">\+\s*&#34;default&#34;: 5', html)
    assert "The two versions' specs are the same." in console.ann.get("/ui/workflows/digits/diff?a=2&b=2").text
    missing = console.ann.get("/ui/workflows/digits/diff?a=1&b=9", headers={"accept": "text/html"})
    assert missing.status_code == 404 and "has no version 9" in missing.text


def test_schedules_are_added_paused_resumed_and_deleted_from_the_page(console: Console) -> None:
    bad = console.post("/ui/workflows/digits/schedules", {"cron": "61 * * * *", "schedule": "bad"})
    assert bad.status_code == 303 and "error=" in bad.headers["location"]
    assert "cron" in console.ann.get(bad.headers["location"]).text.lower()
    from mloop.services.workflows import save_config

    no_images = console.post("/ui/workflows/digits/schedules", {"cron": "0 3 * * *", "schedule": "x"})
    assert "images" in console.ann.get(no_images.headers["location"]).text  # a required value, named
    save_config(console.app.state.backend, "digits", "on-data", {"images": "/data/digits"})
    made = console.post("/ui/workflows/digits/schedules", {"cron": "0 3 * * *", "tz": "Europe/Paris",
                                                           "schedule": "nightly-digits", "config": "on-data"})
    assert made.status_code == 303 and "notice=" in made.headers["location"], made.headers
    table = console.ann.get("/ui/workflows/digits").text
    assert "nightly-digits" in table and "Europe/Paris" in table and "active" in table
    assert console.store.schedules.get("nightly-digits").params == {"images": {"obs_url": "/data/digits"}}
    assert console.post("/ui/schedules/nightly-digits/pause", {}).status_code == 303
    assert console.store.schedules.get("nightly-digits").paused
    assert console.post("/ui/schedules/nightly-digits/resume", {}).status_code == 303
    assert not console.store.schedules.get("nightly-digits").paused
    assert console.post("/ui/schedules/nightly-digits/explode", {}).headers["location"].count("error=") == 1
    assert console.post("/ui/schedules/nightly-digits/delete", {}).status_code == 303
    assert "nightly-digits" not in console.ann.get("/ui/workflows/digits").text


def test_subscriptions_are_added_and_removed_and_a_reader_sees_slack_urls_cut(console: Console) -> None:
    made = console.post("/ui/workflows/digits/subscriptions", {
        "sub": "team-chat", "channel": "slack", "target": "https://hooks.slack.com/services/T/B/secret1",
        "events": "failed"})
    assert made.status_code == 303 and "notice=" in made.headers["location"], made.headers
    sub = next(s for s in console.store.notify.list_subscriptions() if s.name == "team-chat")
    assert sub.workflow_name == "digits" and sub.events == ["run_failed"]
    assert "secret1" in console.ann.get("/ui/workflows/digits").text
    seen = console.rex.get("/ui/workflows/digits").text
    assert "team-chat" in seen and "secret1" not in seen and "https://hooks.slack.com/…" in seen
    bad = console.post("/ui/workflows/digits/subscriptions", {"sub": "x", "channel": "pigeon", "target": "t"})
    assert "error=" in bad.headers["location"]
    assert console.post("/ui/subscriptions/team-chat/delete", {}).status_code == 303
    assert all(s.name != "team-chat" for s in console.store.notify.list_subscriptions())


def test_a_read_scope_sees_no_forms_and_may_not_run(console: Console) -> None:
    html = console.rex.get("/ui/workflows/digits").text
    assert 'data-testid="run"' not in html and 'data-testid="schedule-form"' not in html
    rex_csrf = _nonce(html)
    refused = console.rex.post("/ui/workflows/digits/run", data={"csrf": rex_csrf, "v:images": "/x"},
                               follow_redirects=False)
    assert refused.status_code == 403
    no_csrf = console.ann.post("/ui/workflows/digits/run", data={"v:images": "/x"}, follow_redirects=False)
    assert no_csrf.status_code == 403


def test_an_unknown_workflow_is_a_404_page(console: Console) -> None:
    answer = console.ann.get("/ui/workflows/nope")
    assert answer.status_code == 404 and "no workflow named" in answer.text
