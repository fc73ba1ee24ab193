"""Labeling tasks through the service functions, on SQLite and PostgreSQL: tasks over a dataset
made from a folder of real PNGs (partly labeled), labels checked whole, completion into a new
version, and a LabelingStep in a workflow that waits, is left by its engine, and resumes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import UNLABELED, BOTH_DATABASES, Embedded, database_url, embedded, write_job, write_workflow, pets  # noqa: F401
from mloop.errors import LabelingError, LabelTaskCompletedError, NotFoundError
from mloop.services import labels as L
from mloop.services.datasets import create_dataset, get_version, list_versions, load_manifest

pytestmark = pytest.mark.timeout(120)




@pytest.fixture
def backend(embedded: Embedded, tmp_path: Path) -> Embedded:
    create_dataset(embedded.backend, "pets", pets(tmp_path / "pets"))
    return embedded


@BOTH_DATABASES
def test_a_task_labels_the_rest_of_a_partly_labeled_version(backend: Embedded) -> None:
    b = backend.backend
    task = L.create_task(b, "pets", "v1", "pets_task", "image_classification")
    assert task.label_names == ["cat", "dog"]  # the version's classes
    assert (task.sample_count, task.labeled_count, task.remaining) == (10, 6, 4)
    assert [r["id"] for r in L.sample_rows(b, task, labeled=False)] == UNLABELED

    assert L.submit_labels(b, task, {"u0.png": "cat", "u1.png": ["dog"]}, annotator="ann") == 2
    assert L.submit_labels(b, task, {"u1.png": ["cat"]}, annotator="bob") == 1  # the latest wins
    status = L.task_status(b, "pets_task")
    assert (status.total, status.labeled, status.remaining) == (10, 8, 2)
    assert status.by_label == {"cat": 5, "dog": 3}
    assert status.annotators == {"ann": 1, "bob": 1}
    assert L.get_task(b, "pets_task").labeled_count == 8  # the cheap count the step shows agrees

    with pytest.raises(LabelingError, match="2 of 10 samples still to label") as info:
        L.complete_task(b, task)
    assert "--allow-partial" in (info.value.hint or "")
    assert L.get_task(b, "pets_task").status == "in_progress"
    assert [v.version for v in list_versions(b, "pets")] == ["v1"]  # nothing made

    L.submit_labels(b, task, {"u2.png": "dog", "u3.png": "dog", "cat/cat0.png": "dog"})  # relabels a sample too
    done = L.complete_task(b, task)
    assert done.status == "completed" and done.output_version == "v2"
    manifest = load_manifest(b, get_version(b, "pets", "v2"))
    labels = {s.id: s.labels for s in manifest.samples}
    assert labels["u0.png"] == ("cat",) and labels["u1.png"] == ("cat",) and labels["u3.png"] == ("dog",)
    assert labels["cat/cat0.png"] == ("dog",) and labels["dog/dog1.png"] == ("dog",)
    assert load_manifest(b, get_version(b, "pets", "v1")).sample_map()["u0.png"].labels == ()  # v1 unchanged

    assert L.complete_task(b, "pets_task").output_version == "v2"  # idempotent: no second version
    assert [v.version for v in list_versions(b, "pets")] == ["v1", "v2"]
    with pytest.raises(LabelTaskCompletedError, match="takes no more labels"):
        L.submit_labels(b, "pets_task", {"u0.png": "dog"})


@BOTH_DATABASES
def test_bad_labels_are_refused_whole_and_nothing_is_recorded(backend: Embedded, tmp_path: Path) -> None:
    b = backend.backend
    task = L.create_task(b, "pets", None, "t", 0, ["cat", "dog"])
    with pytest.raises(LabelingError) as info:
        L.submit_labels(b, task, {"u0.png": "cat", "nope.png": "cat", "zz.png": "dog", "u1.png": ["dog", "horse"],
                                  "u2.png": []})
    text = str(info.value)
    assert "2 sample id(s) not in pets:v1: nope.png, zz.png" in text
    assert "labels outside the task's label set (cat, dog): u1.png: 'horse'" in text
    assert "1 sample(s) with no label: u2.png" in text
    assert "nothing was recorded" in (info.value.hint or "")
    assert L.task_status(b, task).labeled_in_task == 0  # u0.png, which was fine, was not recorded either

    malformed = tmp_path / "bad.csv"
    malformed.write_text('u0.png,cat\nu1.png,"dog\n')
    with pytest.raises(LabelingError, match="bad.csv is malformed"):
        L.import_labels(b, task, malformed)
    assert L.task_status(b, task).labeled_in_task == 0

    good = tmp_path / "labels.jsonl"
    good.write_text('{"sample_id": "u0.png", "labels": ["cat"]}\n{"sample_id": "u1.png", "labels": []}\n')
    result = L.import_labels(b, task, good, annotator="ann")
    assert (result.accepted, result.blank, result.completed) == (1, 1, False)


@BOTH_DATABASES
def test_task_names_are_unique_per_dataset(backend: Embedded, tmp_path: Path) -> None:
    b = backend.backend
    create_dataset(b, "more", pets(tmp_path / "more"))
    L.create_task(b, "pets", None, "same", "image_classification")
    with pytest.raises(LabelingError, match="already has a labeling task named 'same'"):
        L.create_task(b, "pets", None, "same", "image_classification")
    assert L.create_task(b, "pets", None, "same", "image_classification", reuse=True).dataset_name == "pets"
    L.create_task(b, "more", None, "same", "image_classification")
    with pytest.raises(LabelingError, match="several datasets have a labeling task named 'same': more, pets"):
        L.get_task(b, "same")
    assert L.get_task(b, "same", "more").dataset_name == "more"
    assert [(t.dataset_name, t.name) for t in L.list_tasks(b)] == [("more", "same"), ("pets", "same")]
    with pytest.raises(NotFoundError, match="no labeling task named 'other'"):
        L.get_task(b, "other")
    with pytest.raises(LabelingError, match="not allowed"):
        L.create_task(b, "pets", None, "bad name!", "image_classification")


FLOW = """
    data = wf.data.DatasetPlaceholder(name="data", default=wf.data.Dataset(dataset_name="pets", version_name="v1"))
    label = wf.steps.LabelingStep(
        name="label",
        inputs=wf.steps.LabelingInput(name="data", data=data),
        outputs=wf.steps.LabelingOutput(name="task"),
        properties=wf.steps.LabelTaskProperties(task_type=wf.data.LabelTaskTypeEnum.IMAGE_CLASSIFICATION,
                                                labels=[wf.steps.Label(name="cat"), wf.steps.Label(name="dog")]),
    )
    again = wf.steps.LabelingStep(
        name="again",
        inputs=wf.steps.LabelingInput(name="task", data=label.outputs["task"].as_input()),
        outputs=wf.steps.LabelingOutput(name="task"),
        depend_steps=[label],
    )
    release = wf.steps.ReleaseDatasetStep(
        name="release",
        inputs=wf.steps.ReleaseDatasetInput(name="data", data=again.outputs["task"].as_input()),
        outputs=wf.steps.ReleaseDatasetOutput(name="dataset", dataset_version_config=wf.data.DatasetVersionConfig(
            train_evaluate_sample_ratio="0.5")),
        depend_steps=[again],
    )
    after = job("after", inputs={"data_url": release.outputs["dataset"].as_input()}, depend=[release])
    workflow = wf.Workflow(name="labeling", desc="", steps=[label, again, release, after])
"""

REPORT = """
    labels = json.load(open(os.path.join(args.data_url, "manifest.json")))
    with open(os.path.join(args.out, "seen.json"), "w") as fh:
        json.dump({s["id"]: s["labels"] for s in labels["samples"]}, fh)
"""


@BOTH_DATABASES
def test_a_labeling_step_waits_is_left_and_resumes_when_its_task_completes(backend: Embedded,
                                                                           tmp_path: Path) -> None:
    import mloop.steps  # noqa: F401 - registers the built-in step kinds
    from mloop.engine.engine import Engine
    from mloop.runs.service import resumable, resume_run

    b = backend.backend
    write_job(tmp_path / "code", REPORT, args=("out", "data_url"))
    run = backend.create(write_workflow(tmp_path, FLOW))
    engine = Engine(b.store, b.settings, b.artifacts, detach_when_waiting=True)
    left = engine.execute(run.id)
    assert left.status == "waiting_input" and left.engine_pid is None
    step = b.store.get_step(run.id, "label")
    assert step.status == "waiting_input"
    task = L.get_task(b, step.inputs["label_task"]["task_name"])
    assert task.name.startswith("workflow_created_task_") and task.run_id == run.id and task.step_name == "label"
    assert step.message == (f"labeling task {task.name!r}: 6/10 samples labeled; add labels with "
                            f"`mloop label import {task.name} FILE --complete`")
    assert [r.id for r in L.runs_waiting_on(b, task)] == [run.id]
    assert resumable(b, b.store.get_run(run.id))

    # Resumed with the task still open: the step is polled, finds the same task, waits again.
    assert resume_run(b, run.id, detach_when_waiting=True).status == "waiting_input"
    assert [t.name for t in L.list_tasks(b)] == [task.name]

    L.submit_labels(b, task, dict(zip(UNLABELED, ["cat", "dog", "cat", "dog"])))
    L.complete_task(b, task)
    finished = resume_run(b, run.id)
    assert finished.status == "succeeded", backend.result(run.id).why()
    steps = {s.name: s for s in b.store.list_steps(run.id)}
    out = steps["label"].outputs["task"]
    assert (out["type"], out["dataset_name"], out["task_name"], out["version_name"]) == (
        "label_task", "pets", task.name, "v2")
    assert steps["again"].outputs["task"]["task_name"] == task.name  # a label-task input reuses the task
    seen = (tmp_path / "out" / run.id / "after" / "out" / "seen.json").read_text()
    assert '"u0.png": ["cat"]' in seen and '"u3.png": ["dog"]' in seen  # the job got the labeled version
    assert get_version(b, "pets", steps["release"].outputs["dataset"]["version_name"]).release["of"] == "v2"
