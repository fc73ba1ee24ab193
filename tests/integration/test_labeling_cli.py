"""``mloop label`` with a workflow waiting on a labeling task: real ``mloop`` processes on a real
store, images as real PNGs. The run waits; ``mloop label status`` shows progress; ``mloop label
import TASK FILE --complete`` completes the task and resumes the run (or leaves it to its live
engine), also after the process that ran it was SIGKILLed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import UNLABELED, Cli, Embedded, process_gone, wait_until, write_job, write_workflow, pets
from mloop.services import labels as L
from mloop.services.datasets import list_versions

pytestmark = pytest.mark.timeout(150)


FLOW = """
    data = wf.data.Dataset(dataset_name="pets", version_name="v1")
    label = wf.steps.LabelingStep(
        name="label",
        inputs=wf.steps.LabelingInput(name="data", data=data),
        outputs=wf.steps.LabelingOutput(name="task"),
        properties=wf.steps.LabelTaskProperties(
            task_type=wf.data.LabelTaskTypeEnum.IMAGE_CLASSIFICATION, task_name="pets_task",
            labels=[wf.steps.Label(name="cat"), wf.steps.Label(name="dog")]),
    )
    release = wf.steps.ReleaseDatasetStep(
        name="release",
        inputs=wf.steps.ReleaseDatasetInput(name="data", data=label.outputs["task"].as_input()),
        outputs=wf.steps.ReleaseDatasetOutput(name="dataset", dataset_version_config=wf.data.DatasetVersionConfig(
            train_evaluate_sample_ratio="0.5")),
        depend_steps=[label],
    )
    train = job("train", inputs={"data_url": release.outputs["dataset"].as_input()}, depend=[release])
    workflow = wf.Workflow(name="labeling", desc="", steps=[label, release, train])
"""

#: The job reports the labels its data_url folder holds (the job layout's manifest.json).
JOB = """
    manifest = json.load(open(os.path.join(args.data_url, "manifest.json")))
    with open(os.path.join(args.out, "seen.json"), "w") as fh:
        json.dump({"version": manifest["version"], "labels": {s["id"]: s["labels"] for s in manifest["samples"]}}, fh)
"""



@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    write_job(tmp_path / "code", JOB, args=("out", "data_url"))
    write_workflow(tmp_path, FLOW)
    pets(tmp_path / "images")
    c = Cli(tmp_path, tmp_path / ".mloop")
    c.ok("dataset", "create", "pets", "--from", "images")
    yield c
    c.cleanup()


@pytest.fixture
def store(cli: Cli) -> Iterator[Embedded]:
    """The same store, read in this process (each check by `mloop` would cost a process start)."""
    embedded = Embedded(cli.home)
    yield embedded
    embedded.close()


def _run_id(store: Embedded) -> str | None:
    runs = store.store.list_runs()
    return runs[0].id if runs and runs[0].status == "waiting_input" else None


def _labels_csv(tmp_path: Path) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text("sample_id,label\nu0.png,cat\nu1.png,dog\nu2.png,cat\nu3.png,dog\n")
    return path


def _check_succeeded(store: Embedded, tmp_path: Path, run_id: str) -> None:
    result = store.result(run_id)
    assert result.status == "succeeded", result.why()
    assert result.steps["label"].outputs["task"]["version_name"] == "v2"
    seen = json.loads((tmp_path / "out" / run_id / "train" / "out" / "seen.json").read_text())
    assert seen["labels"]["u0.png"] == ["cat"] and seen["labels"]["u3.png"] == ["dog"]
    assert seen["labels"]["cat/cat1.png"] == ["cat"]
    assert [v.version for v in list_versions(store.backend, "pets")][:2] == ["v1", "v2"]


@pytest.mark.slow
def test_import_complete_resumes_a_run_left_waiting(cli: Cli, store: Embedded, tmp_path: Path) -> None:
    result = cli.ok("run", "flow.py", "--no-wait")
    assert "labeling task 'pets_task': 6/10 samples labeled" in result.text
    run_id = _run_id(store)
    assert run_id is not None

    status = cli.ok("label", "status", "pets_task")
    assert "6/10 labeled (60%), 4 to go" in status.out
    assert f"created by run {run_id[:12]}, step label" in status.out
    assert "cat  ██████░░░░░░░░░░░░░░ 3" in status.out

    cli.ok("label", "export", "pets_task", "todo.csv")
    assert (tmp_path / "todo.csv").read_text().splitlines() == ["sample_id,label"] + [f"{u}," for u in UNLABELED]

    bad = tmp_path / "bad.csv"
    bad.write_text("u0.png,cat\nu9.png,dog\nu1.png,bird\n")
    refused = cli("label", "import", "pets_task", str(bad), "--complete")
    assert refused.code == 2
    assert "1 sample id(s) not in pets:v1: u9.png" in refused.err and "u1.png: 'bird'" in refused.err
    assert L.task_status(store.backend, "pets_task").labeled == 6  # nothing recorded
    assert store.store.get_run(run_id).status == "waiting_input"

    done = cli.ok("label", "import", "pets_task", str(_labels_csv(tmp_path)), "--complete")
    assert "recorded labels for 4 samples" in done.out and "labeled version pets:v2" in done.out
    assert f"resuming run {run_id[:12]}" in done.err
    _check_succeeded(store, tmp_path, run_id)
    assert "already completed" in cli.ok("label", "complete", "pets_task").out


@pytest.mark.slow
def test_a_waiting_run_survives_the_death_of_its_engine(cli: Cli, store: Embedded, tmp_path: Path) -> None:
    bg = cli.start("run", "flow.py")
    run_id = wait_until(lambda: _run_id(store), 60, bg.output)
    bg.kill()  # SIGKILL while waiting: no chance to clean up
    wait_until(lambda: process_gone(bg.pid), 10, "the engine to die")
    shown = cli.show(run_id)  # a new process reconciles: the run lost nothing, so it still waits
    assert shown["run"]["status"] == "waiting_input" and shown["steps"]["label"]["status"] == "waiting_input"

    done = cli.ok("label", "import", "pets_task", str(_labels_csv(tmp_path)), "--complete")
    assert f"resuming run {run_id[:12]}" in done.err
    _check_succeeded(store, tmp_path, run_id)


@pytest.mark.slow
def test_a_live_engine_picks_the_completion_up_by_itself(cli: Cli, store: Embedded, tmp_path: Path) -> None:
    bg = cli.start("run", "flow.py")
    run_id = wait_until(lambda: _run_id(store), 60, bg.output)
    cli.ok("label", "import", "pets_task", str(_labels_csv(tmp_path)))  # labels, not completed yet
    wait_until(lambda: "10/10 samples labeled" in (store.store.get_step(run_id, "label").message or ""), 30,
               "the waiting step to show the new progress")
    done = cli.ok("label", "complete", "pets_task")
    assert "goes on by itself" in done.err and "resuming" not in done.err
    finished = bg.wait(60)
    assert finished.code == 0, str(finished)
    _check_succeeded(store, tmp_path, run_id)
