"""The labeling REST API on a real ``mloop server`` process (uvicorn on a free loopback port),
spoken to with httpx: list, create, samples, labels (good and refused), complete."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helpers import UNLABELED, Cli, Embedded, wait_until, write_workflow, pets
from mloop.services.datasets import create_dataset, get_version, load_manifest

pytestmark = pytest.mark.timeout(120)


#: A run that waits on an existing task (a label-task input: no properties).
FLOW = """
    label = wf.steps.LabelingStep(
        name="label",
        inputs=wf.steps.LabelingInput(name="task", data=wf.data.LabelTask(dataset_name="pets", task_name="api_task")),
        outputs=wf.steps.LabelingOutput(name="task"),
    )
    workflow = wf.Workflow(name="waits", desc="", steps=[label])
"""



@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[httpx.Client, Embedded]]:
    store = Embedded(tmp_path / ".mloop")
    create_dataset(store.backend, "pets", pets(tmp_path / "images"))
    cli = Cli(tmp_path, tmp_path / ".mloop")
    bg = cli.start("server", "--port", "0")
    found = wait_until(lambda: re.search(r"mloop server at (http://127\.0\.0\.1:\d+)", bg.output()), 60, bg.output)
    url = found.group(1)
    token = re.search(r"admin token: (mlp_\S+)", bg.output())
    assert token, bg.output()
    with httpx.Client(base_url=url + "/api/v1", timeout=30,
                      headers={"Authorization": f"Bearer {token.group(1)}"}) as client:
        wait_until(lambda: _answers(client), 30, bg.output)
        yield client, store
    bg.proc.terminate()
    bg.proc.wait(timeout=15)
    store.close()
    cli.cleanup()


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/health").status_code == 200
    except httpx.TransportError:
        return False


def test_label_a_task_over_http(server: tuple[httpx.Client, Embedded], tmp_path: Path) -> None:
    client, store = server
    created = client.post("/label-tasks", json={"dataset": "pets", "name": "api_task", "task_type": "image_classification",
                                                "labels": ["cat", "dog"]})
    assert created.status_code == 201, created.text
    assert (created.json()["labeled"], created.json()["total"]) == (6, 10)

    # A run waits on the task, and its engine has left (mloop run --no-wait).
    import mloop.steps  # noqa: F401 - registers the built-in step kinds
    from mloop.engine.engine import Engine

    run = store.create(write_workflow(tmp_path, FLOW))
    b = store.backend
    assert Engine(b.store, b.settings, b.artifacts, detach_when_waiting=True).execute(run.id).status == "waiting_input"

    tasks = client.get("/label-tasks").json()["tasks"]
    assert [(t["name"], t["dataset_name"], t["remaining"]) for t in tasks] == [("api_task", "pets", 4)]
    todo = client.get("/label-tasks/api_task/samples", params={"labeled": "false"}).json()["samples"]
    assert [s["id"] for s in todo] == UNLABELED and all(s["labels"] == [] for s in todo)

    refused = client.post("/label-tasks/api_task/labels", json={"labels": {"u0.png": ["cat"], "nope.png": ["dog"]}})
    assert refused.status_code == 422
    body = refused.json()
    assert body["code"] == "labeling_error" and "1 sample id(s) not in pets:v1: nope.png" in body["error"]
    assert "nothing was recorded" in body["hint"] and body["unknown_samples"] == ["nope.png"]
    outside = client.post("/label-tasks/api_task/labels", json={"labels": {"u0.png": "horse"}})
    assert outside.status_code == 422 and "u0.png: 'horse'" in outside.json()["error"]
    malformed = client.post("/label-tasks/api_task/labels", json={"lables": {"u0.png": "cat"}})
    assert malformed.status_code == 422 and "body.labels" in malformed.json()["error"]
    assert client.get("/label-tasks/api_task").json()["labeled"] == 6  # nothing recorded

    early = client.post("/label-tasks/api_task/complete")
    assert early.status_code == 422 and "4 of 10 samples still to label" in early.json()["error"]

    given = client.post("/label-tasks/api_task/labels", json={
        "labels": {"u0.png": ["cat"], "u1.png": "dog", "u2.png": ["cat"], "u3.png": ["dog"]}, "annotator": "ann"})
    assert given.status_code == 200, given.text
    assert given.json()["accepted"] == 4 and given.json()["status"]["annotators"] == {"ann": 4}

    done = client.post("/label-tasks/api_task/complete", json={"allow_partial": False})
    assert done.status_code == 200, done.text
    answer = done.json()
    assert answer["output_version"] == "v2" and answer["task"]["status"] == "completed"
    assert "resumes no run by itself" in answer["note"]
    assert answer["waiting_runs"] == [{"run_id": run.id, "workflow": "waits", "engine_alive": False,
                                       "continue_with": f"mloop resume {run.id[:12]}"}]
    assert store.store.get_run(run.id).status == "waiting_input"  # the API resumed nothing
    labels = {s.id: s.labels for s in load_manifest(b, get_version(b, "pets", "v2")).samples}
    assert labels["u1.png"] == ("dog",) and labels["cat/cat0.png"] == ("cat",)

    late = client.post("/label-tasks/api_task/labels", json={"labels": {"u0.png": "dog"}})
    assert late.status_code == 409 and late.json()["code"] == "label_task_completed"
    missing = client.get("/label-tasks/nope")
    assert missing.status_code == 404 and "mloop label list" in missing.json()["hint"]

    from mloop.runs.service import resume_run

    assert resume_run(b, run.id).status == "succeeded"  # what `mloop resume` does
