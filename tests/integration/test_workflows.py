"""Workflows as released objects: versions and spec diffs, saved run configurations, starting a
run from one, copying runs, and deleting runs and whole workflows (refused while a run lives),
through the domain operations, the CLI (typer's runner, in this process) and the REST API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import Embedded, write_job, write_workflow
from mloop.errors import MloopError, PlaceholderValueError, RunStateError
from mloop.runs import release_spec

pytestmark = pytest.mark.timeout(120)

FLOW = """
    lr = wf.Placeholder(name="lr", placeholder_type=wf.PlaceholderType.FLOAT, default={lr_default})
    epochs = wf.Placeholder(name="epochs", placeholder_type=wf.PlaceholderType.INT, default=1)
    train = job("train", params={{"lr": lr, "epochs": epochs{extra}}})
    workflow = wf.Workflow(name="flow", desc="", steps=[train])
"""


def _flow(folder: Path, lr_default: float = 0.1, extra: str = "") -> Path:
    write_job(folder / "code", "print('lr', args.lr, 'epochs', args.epochs)", args=("out", "lr", "epochs", "mode"))
    return write_workflow(folder, FLOW.format(lr_default=lr_default, extra=extra))


@pytest.fixture
def released(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Embedded]:
    """Workflow ``flow`` released twice: v2 adds a parameter to step ``train`` and changes lr's default."""
    from mloop.cli import load_workflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLOOP_HOME", str(tmp_path / ".mloop"))
    emb = Embedded(tmp_path / ".mloop")
    assert release_spec(emb.backend, load_workflow(str(_flow(tmp_path)))).version == 1
    v2 = release_spec(emb.backend, load_workflow(str(_flow(tmp_path, 0.2, ', "mode": "fast"'))))
    assert v2.version == 2
    yield emb
    emb.backend.close()


def _rows(emb: Embedded, run_id: str) -> dict[str, int]:
    """How many rows of each table that cascades from runs still name ``run_id``."""
    from sqlalchemy import text

    with emb.store.engine.connect() as conn:
        return {table: conn.execute(text(f"SELECT count(*) FROM {table} WHERE run_id = :r"), {"r": run_id}).scalar()
                for table in ("steps", "events", "metrics", "artifacts")}


def _cli(*args: str) -> Any:
    from typer.testing import CliRunner

    from mloop.cli import app

    return CliRunner().invoke(app, list(args), env={"COLUMNS": "80"})


def _ok(*args: str) -> str:
    result = _cli(*args)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return str(result.output)


def test_versions_show_and_diff(released: Embedded) -> None:
    listed = json.loads(_ok("workflow", "list", "--json"))
    assert [(w["name"], w["latest_version"], w["versions"], w["runs"]) for w in listed] == [("flow", 2, 2, 0)]
    assert [v["version"] for v in json.loads(_ok("workflow", "versions", "flow", "--json"))] == [1, 2]

    shown = json.loads(_ok("workflow", "show", "flow", "--version", "1", "--json"))
    assert shown["version"] == 1 and shown["versions"] == [1, 2]
    assert [s["name"] for s in shown["steps"]] == ["train"] and shown["steps"][0]["outputs"][0]["name"] == "out"
    assert {p["name"]: p["default"] for p in shown["placeholders"]} == {"lr": 0.1, "epochs": 1}
    assert "train" in _ok("workflow", "show", "flow")

    diff = json.loads(_ok("workflow", "diff", "flow", "1", "2", "--json"))
    assert diff["steps_changed"] == ["train"] and not diff["steps_added"] and not diff["steps_removed"]
    assert diff["defaults_changed"] == ["lr (0.1 -> 0.2)"]
    assert diff["diff"][0] == "--- flow v1" and any(line.startswith("+") and "fast" in line for line in diff["diff"])
    text = _ok("workflow", "diff", "flow", "1", "2")
    assert "steps changed: train" in text and "defaults changed: lr" in text
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "same spec" in _ok("workflow", "diff", "flow", "2", "2")
    snapshot = shown["extend"]["code_snapshots"]["train"]  # the release stored its code
    assert (Path(snapshot["url"]) / "job.py").is_file() and len(snapshot["digest"]) >= 32

    missing = _cli("workflow", "diff", "flow", "1", "7")
    assert isinstance(missing.exception, MloopError) and "no version 7" in str(missing.exception)


def test_configs_start_copy_and_delete_on_the_cli(released: Embedded, tmp_path: Path) -> None:
    assert "saved run configuration fast" in _ok("workflow", "config", "save", "flow", "fast", "-p", "lr=0.5")
    bad = _cli("workflow", "config", "save", "flow", "bad", "-p", "lr=abc")
    assert isinstance(bad.exception, PlaceholderValueError) and "lr" in str(bad.exception.problems)
    unknown = _cli("workflow", "config", "save", "flow", "bad", "-p", "nope=1")
    assert isinstance(unknown.exception, PlaceholderValueError) and "nope" in str(unknown.exception.problems)
    assert [c["name"] for c in json.loads(_ok("workflow", "config", "list", "flow", "--json"))] == ["fast"]

    run_id = _ok("workflow", "start", "flow", "--config", "fast", "-p", "epochs=3", "-q").strip().splitlines()[0]
    run = released.store.get_run(run_id)
    assert run.status == "succeeded" and run.params == {"lr": 0.5, "epochs": 3}
    assert released.store.get_release(run.release_id).version == 2  # the latest release, not a new one
    assert len(released.store.list_releases("flow")) == 2
    folder = tmp_path / ".mloop" / "runs" / run.id
    before = _rows(released, run.id)
    assert folder.is_dir() and before["steps"] == 1 and before["events"] > 0 and before["artifacts"] > 0, before

    copy_id = _ok("copy", run.id[:8], "-q").strip().splitlines()[0]
    copied = released.store.get_run(copy_id)
    assert copied.id != run.id and copied.status == "succeeded" and copied.params == run.params
    assert copied.release_id == run.release_id and copied.origin["copied_from"] == run.id

    _ok("delete", run.id, "--yes")
    assert not folder.exists()
    gone = _cli("show", run.id)
    assert isinstance(gone.exception, MloopError) and gone.exception.code == "not_found"
    assert _rows(released, run.id) == {"steps": 0, "events": 0, "metrics": 0, "artifacts": 0}
    listed = json.loads(_ok("workflow", "list", "--json"))[0]
    assert listed["runs"] == 1 and listed["last_run_status"] == "succeeded"

    _ok("workflow", "config", "delete", "flow", "fast")
    assert json.loads(_ok("workflow", "config", "list", "flow", "--json")) == []
    deleted = json.loads(_ok("workflow", "delete", "flow", "--yes", "--json"))
    assert deleted == {"name": "flow", "releases": 2, "configs": 0, "runs": [copied.id]}
    assert released.store.list_releases("flow") == [] and released.store.list_runs("flow") == []
    assert not (tmp_path / ".mloop" / "runs" / copied.id).exists()


def test_api(released: Embedded, tmp_path: Path) -> None:
    from fastapi import Depends
    from fastapi.testclient import TestClient

    from mloop.config import Settings
    from mloop.server.api import workflows
    from mloop.server.app import create_app
    from mloop.server.auth import requires

    app = create_app(Settings(home=tmp_path / ".mloop"), background=False)  # the routes, no queue
    with TestClient(app) as client:
        store = app.state.backend.store
        client.headers["Authorization"] = f"Bearer {store.tokens.create('t', 'admin')[1]}"
        reader = {"Authorization": f"Bearer {store.tokens.create('r', 'read')[1]}"}
        api = "/api/v1"

        shown = client.get(f"{api}/workflows/flow", headers=reader)
        assert shown.status_code == 200, shown.text
        assert shown.json()["version"] == 2 and shown.json()["steps"][0]["name"] == "train"
        diff = client.get(f"{api}/workflows/flow/diff", params={"a": 1, "b": 2}).json()
        assert diff["steps_changed"] == ["train"] and diff["same"] is False
        assert client.get(f"{api}/workflows/nope").status_code == 404

        assert client.put(f"{api}/workflows/flow/configs/fast", json={"parameters": {"lr": 0.5}},
                          headers=reader).status_code == 403
        saved = client.put(f"{api}/workflows/flow/configs/fast", json={"parameters": {"lr": "0.5"}})
        assert saved.status_code == 200, saved.text
        assert saved.json()["parameters"] == {"lr": 0.5}
        bad = client.put(f"{api}/workflows/flow/configs/bad", json={"parameters": {"lr": "abc"}})
        assert bad.status_code == 422 and "lr" in bad.text
        assert [c["name"] for c in client.get(f"{api}/workflows/flow/configs").json()] == ["fast"]
        assert client.get(f"{api}/workflows/flow/configs/fast").json()["parameters"] == {"lr": 0.5}

        made = client.post(f"{api}/workflows/flow/runs", json={"config": "fast", "parameters": {"epochs": 3}})
        assert made.status_code == 201, made.text
        run = made.json()
        assert run["params"] == {"lr": 0.5, "epochs": 3} and run["queued"] is True
        assert run["origin"]["config"] == "fast"
        copied = client.post(f"{api}/runs/{run['id']}/copy")
        assert copied.status_code == 201, copied.text
        copy = copied.json()
        assert copy["id"] != run["id"] and copy["params"] == run["params"]
        assert copy["release_id"] == run["release_id"] and copy["number"] == run["number"] + 1

        live = client.delete(f"{api}/runs/{run['id']}")
        assert live.status_code == 409 and "stop it first" in live.text
        refused = client.delete(f"{api}/workflows/flow")
        assert refused.status_code == 409 and "not ended" in refused.text
        assert len(store.list_releases("flow")) == 2  # nothing removed

        for r in (run, copy):
            assert client.post(f"{api}/runs/{r['id']}/stop").json()["status"] == "stopped"
        assert client.delete(f"{api}/runs/{copy['id']}").json()["id"] == copy["id"]
        assert client.get(f"{api}/runs/{copy['id']}").status_code == 404

        deleted = client.delete(f"{api}/workflows/flow")
        assert deleted.status_code == 200, deleted.text
        assert deleted.json() == {"name": "flow", "releases": 2, "configs": 1, "runs": [run["id"]]}
        assert client.get(f"{api}/workflows/flow").status_code == 404
        assert client.get(f"{api}/workflows/flow/configs").json() == []
        assert store.list_runs("flow") == []


def test_run_numbers_are_not_reused_after_a_delete(released: Embedded) -> None:
    from mloop.runs.queue import submit
    from mloop.runs.service import stop_run
    from mloop.services.workflows import delete_run

    first, second = submit(released.backend, "flow"), submit(released.backend, "flow")
    with pytest.raises(RunStateError):
        delete_run(released.backend, first.id)
    stop_run(released.backend, first.id)
    delete_run(released.backend, first.id)
    assert submit(released.backend, "flow").number == second.number + 1
