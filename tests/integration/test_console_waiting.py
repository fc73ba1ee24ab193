"""A run waiting for a delayed placeholder, on the console's run page (the real app with its
queue running, a real job): the page shows a form for what the run asks for, a bad value is
refused beside its field and nothing is recorded, a good one lets the run go on to the end;
a reader sees the form but no button and is refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from console_helpers import form_login  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from helpers import Cli, wait_until, write_job, write_workflow  # noqa: E402

from mloop.config import Settings  # noqa: E402
from mloop.server.app import create_app  # noqa: E402
from mloop.server.web import pages  # noqa: E402

PASSWORD = "correct horse battery"

FLOW = """
    epochs = wf.Placeholder(name="epochs", placeholder_type=wf.PlaceholderType.INT, delay=True,
                            description="how long to train")
    prepare = job("prepare")
    train = job("train", params={"epochs": epochs}, depend=[prepare])
    workflow = wf.Workflow(name="delayed", desc="", steps=[prepare, train])
"""

JOB = """
import pathlib
out = pathlib.Path(args.out)
out.mkdir(parents=True, exist_ok=True)
(out / "epochs.txt").write_text(str(args.epochs))
"""


def _login(client: TestClient, name: str) -> str:
    return form_login(client, name)


def test_a_waiting_run_asks_for_its_input_on_its_page(tmp_path: Path) -> None:
    from mloop.runs.queue import submit

    write_job(tmp_path / "code", JOB, args=("out", "epochs"))
    write_workflow(tmp_path, FLOW)
    cli = Cli(tmp_path, tmp_path / ".mloop")
    cli.ok("release", "flow.py")
    pages.assets_present = lambda: True  # type: ignore[assignment]
    app = create_app(Settings(home=tmp_path / ".mloop"), background=True)  # the queue runs the run
    with TestClient(app, base_url="http://127.0.0.1") as ann:
        ctx = app.state.backend
        ctx.store.users.add("ann", PASSWORD, "run")
        ctx.store.users.add("rex", PASSWORD, "read")
        csrf = _login(ann, "ann")
        run = submit(ctx, "delayed", {})
        app.state.dispatcher.wake()
        wait_until(lambda: ctx.store.get_run(run.id).status == "waiting_input", 60, "the run to wait for input")

        page = ann.get(f"/ui/runs/{run.id}").text
        assert 'data-testid="input-form"' in page and 'name="v:epochs"' in page and "how long to train" in page
        bad = ann.post(f"/ui/runs/{run.id}/input", data={"csrf": csrf, "v:epochs": "lots"}, follow_redirects=False)
        assert bad.status_code == 422
        err = re.search(r'data-testid="error-epochs">([^<]*)<', bad.text)
        assert err and "INT" in err.group(1) and re.search(r'name="v:epochs" value="lots"', bad.text)
        assert ctx.store.get_run(run.id).params.get("epochs") is None  # nothing recorded

        with TestClient(app, base_url="http://127.0.0.1") as rex:
            rex_csrf = _login(rex, "rex")
            seen = rex.get(f"/ui/runs/{run.id}").text
            assert 'data-testid="input-form"' in seen and 'data-testid="give-input"' not in seen
            refused = rex.post(f"/ui/runs/{run.id}/input", data={"csrf": rex_csrf, "v:epochs": "3"},
                               follow_redirects=False)
            assert refused.status_code == 403

        good = ann.post(f"/ui/runs/{run.id}/input", data={"csrf": csrf, "v:epochs": "3"}, follow_redirects=False)
        assert good.status_code == 303 and "notice=" in good.headers["location"]
        wait_until(lambda: ctx.store.get_run(run.id).status == "succeeded", 60, "the run to finish")
        out = ctx.store.get_step(run.id, "train").outputs["out"]
        assert (Path(out.get("url", out) if isinstance(out, dict) else out) / "epochs.txt").read_text() == "3"
        assert 'data-testid="waiting"' not in ann.get(f"/ui/runs/{run.id}").text

        # The API's door to the same thing: a run whose engine detached while it waited goes on.
        again = submit(ctx, "delayed", {})
        app.state.dispatcher.wake()
        wait_until(lambda: ctx.store.get_run(again.id).status == "waiting_input", 60, "the second run to wait")
        token = ctx.store.tokens.create("bot", "run")[1]
        given = ann.post(f"/api/v1/runs/{again.id}/input", json={"values": {"epochs": 5}},
                         headers={"Authorization": f"Bearer {token}"})
        assert given.status_code == 200, given.text
        wait_until(lambda: ctx.store.get_run(again.id).status == "succeeded", 60, "the second run to finish")

        # Copy and delete from the run page.
        copied = ann.post(f"/ui/runs/{again.id}/copy", data={"csrf": csrf}, follow_redirects=False)
        assert copied.status_code == 303
        copy_id = copied.headers["location"].split("/ui/runs/", 1)[1].split("?", 1)[0]
        assert copy_id != again.id and ctx.store.get_run(copy_id).params["epochs"] == 5
        live = ann.post(f"/ui/runs/{copy_id}/delete", data={"csrf": csrf}, follow_redirects=False)
        if ctx.store.get_run(copy_id).status not in ("succeeded", "failed", "stopped"):
            assert "error=" in live.headers["location"]  # a live run is not deleted
        wait_until(lambda: ctx.store.get_run(copy_id).status in ("succeeded", "failed", "stopped")
                   or not _exists(ctx, copy_id), 60, "the copy to end")
        gone = ann.post(f"/ui/runs/{run.id}/delete", data={"csrf": csrf}, follow_redirects=False)
        assert gone.status_code == 303 and gone.headers["location"].startswith("/ui/runs?workflow=delayed")
        assert not _exists(ctx, run.id)
    cli.cleanup()


def _exists(ctx: object, run_id: str) -> bool:
    from mloop.errors import NotFoundError

    try:
        ctx.store.get_run(run_id)  # type: ignore[attr-defined]
    except NotFoundError:
        return False
    return True
