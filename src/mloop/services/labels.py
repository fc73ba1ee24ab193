"""Labeling tasks: the functions the CLI (``mloop label``), the LabelingStep and the REST API call.

A task labels the samples of one dataset version. Labels arrive per sample, from a file
(:func:`import_labels`), the REST API or Python (:func:`submit_labels`); each submission is
checked whole (sample ids exist in the version, labels are in the task's label set) and
recorded in one transaction, or not at all. :func:`complete_task` turns the labels into a new
dataset version (:func:`mloop.services.datasets.relabel`: same files, new labels) and marks
the task completed; a LabelingStep waiting on the task then goes on.

Samples that already had labels in the base version count as labeled (a partly labeled
dataset only needs the rest); a task may still give them new labels.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mloop.datasets.labeling import (
    TemplateRow,
    check_task_name,
    label_set,
    normalise_labels,
    read_labels_file,
    task_type_name,
    write_template,
)
from mloop.datasets.manifest import Manifest
from mloop.errors import LabelingError, LabelTaskCompletedError
from mloop.context import Context
from mloop.services.datasets import cached_manifest, get_version, relabel
from mloop.store.base import RunRecord
from mloop.store.labels import LabelRepository, LabelTaskRecord, ReceivedLabel

__all__ = [
    "ImportResult", "TaskStatus", "complete_task", "create_task", "default_task_name", "export_template",
    "get_task", "get_task_by_id", "import_labels", "list_tasks", "resolve_task_value", "runs_waiting_on",
    "sample_rows", "submit_labels", "task_output", "task_status", "task_value",
]

#: Problems named in one error message (the message says how many there were).
_SHOWN = 5


def _repo(backend: Context) -> LabelRepository:
    repo: LabelRepository = backend.store.labels
    return repo


def _manifest(backend: Context, dataset: str, version: str) -> Manifest:
    return cached_manifest(backend, get_version(backend, dataset, version))


def _task(backend: Context, task: LabelTaskRecord | str, dataset: str | None = None) -> LabelTaskRecord:
    """The current state of ``task`` (a record is read again: it may have changed)."""
    if isinstance(task, LabelTaskRecord):
        return _repo(backend).get_by_id(task.id)
    return _repo(backend).get(task, dataset)


def default_task_name(run_id: str, step_name: str) -> str:
    """``workflow_created_task_<hex>`` for a LabelingStep that names no task: the same for the
    same run and step, so a step polled again (or after a restart) finds the task it made."""
    return "workflow_created_task_" + uuid.uuid5(uuid.NAMESPACE_URL, f"mloop:{run_id}/{step_name}").hex[:16]


# -- tasks --------------------------------------------------------------------------------------
def create_task(backend: Context, dataset: str, version: str | None = None, name: str | None = None,
                task_type: Any = "IMAGE_CLASSIFICATION", labels: Sequence[Any] | None = None, *,
                description: str = "", properties: Mapping[str, Any] | None = None, run_id: str | None = None,
                step_name: str | None = None, reuse: bool = False) -> LabelTaskRecord:
    """Make a labeling task over ``dataset:version`` (None: the latest version).

    Args:
        name: the task's name, unique within the dataset (default ``workflow_created_task_<hex>``).
        task_type: a ``LabelTaskTypeEnum`` member, number or name (sample-level types only).
        labels: the label set: names or ``Label``-like dicts; default the version's classes.
        properties: extra task attributes kept with it (``LabelTaskProperties.properties`` ...).
        run_id, step_name: the run and LabelingStep that made it.
        reuse: return the existing task of that name instead of refusing.

    Raises:
        LabelingError: bad name or type, no label set, or the name is taken (without ``reuse``).
        NotFoundError: no such dataset or version.
    """
    type_name = task_type_name(task_type)
    name = check_task_name(name) if name is not None else "workflow_created_task_" + uuid.uuid4().hex[:16]
    record = get_version(backend, dataset, version)
    if reuse:
        try:
            return _repo(backend).get(name, dataset)
        except LookupError:
            pass
    manifest = _manifest(backend, dataset, record.version)
    chosen = label_set(labels) if labels else label_set(record.classes)
    if not chosen:
        raise LabelingError(f"{dataset}:{record.version} has no classes, so task {name!r} needs its label set",
                            hint="give the labels: --labels cat,dog (or LabelTaskProperties(labels=[Label('cat'), ...]))")
    if not manifest.samples:
        raise LabelingError(f"{dataset}:{record.version} has no samples to label", hint="import data first")
    prelabeled = sum(1 for s in manifest.samples if s.labels)
    task, created = _repo(backend).get_or_create(
        dataset, name, base_version=record.version, task_type=type_name, labels=chosen,
        sample_count=len(manifest.samples), prelabeled_count=prelabeled, run_id=run_id, step_name=step_name,
        description=description, properties=dict(properties or {}))
    if not created and not reuse:
        raise LabelingError(f"dataset {dataset!r} already has a labeling task named {name!r} "
                            f"({task.status}, over {task.base_version})",
                            hint=f"pick another name, or add labels to it: mloop label import {name} FILE")
    return task


def get_task(backend: Context, name: str, dataset: str | None = None) -> LabelTaskRecord:
    """A task by name (``dataset`` tells apart tasks of the same name in two datasets).

    Raises:
        NotFoundError: no such task. LabelingError: the name is ambiguous.
    """
    return _repo(backend).get(name, dataset)


def get_task_by_id(backend: Context, task_id: str) -> LabelTaskRecord:
    """A task by its id (NotFoundError if there is none)."""
    return _repo(backend).get_by_id(task_id)


def list_tasks(backend: Context, dataset: str | None = None, status: str | None = None) -> list[LabelTaskRecord]:
    """Tasks by dataset and name, with their progress counts."""
    return _repo(backend).list(dataset, status)


@dataclass
class TaskStatus:
    """A task's progress: samples labeled (in the task or already in the base version)."""

    task: LabelTaskRecord
    total: int
    labeled: int
    by_label: dict[str, int] = field(default_factory=dict)  # samples per label, as the task stands
    labeled_in_task: int = 0
    annotators: dict[str, int] = field(default_factory=dict)

    @property
    def remaining(self) -> int:
        return self.total - self.labeled

    @property
    def complete(self) -> bool:
        return self.task.status == "completed"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.task.name, "dataset": self.task.dataset_name, "base_version": self.task.base_version,
                "task_type": self.task.task_type, "labels": self.task.label_names, "status": self.task.status,
                "total": self.total, "labeled": self.labeled, "remaining": self.remaining,
                "labeled_in_task": self.labeled_in_task, "by_label": self.by_label, "annotators": self.annotators,
                "output_version": self.task.output_version, "run_id": self.task.run_id,
                "step_name": self.task.step_name, "created_at": self.task.created_at.isoformat(),
                "completed_at": self.task.completed_at.isoformat() if self.task.completed_at else None}


def _effective(manifest: Manifest, received: Mapping[str, ReceivedLabel]) -> dict[str, tuple[str, ...]]:
    """Every sample's labels as the task stands: received ones over the base version's."""
    return {s.id: tuple(received[s.id].labels) if s.id in received else s.labels for s in manifest.samples}


def task_status(backend: Context, task: LabelTaskRecord | str, dataset: str | None = None) -> TaskStatus:
    """Progress of a task: total, labeled, remaining, samples per label, who labeled how many."""
    record = _task(backend, task, dataset)
    manifest = _manifest(backend, record.dataset_name, record.base_version)
    received = _repo(backend).received(record.id)
    labels = _effective(manifest, received)
    by_label: Counter[str] = Counter(x for values in labels.values() for x in values)
    order = {name: i for i, name in enumerate(record.label_names)}
    return TaskStatus(task=record, total=len(labels), labeled=sum(1 for v in labels.values() if v),
                      by_label=dict(sorted(by_label.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))),
                      labeled_in_task=len(received),
                      annotators=dict(Counter(r.annotator or "(unknown)" for r in received.values())))


def sample_rows(backend: Context, task: LabelTaskRecord | str, *, labeled: bool | None = None,
                dataset: str | None = None, offset: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
    """The task's samples, by id: ``{"id", "file", "labels", "labeled_by", "labeled_at", "text"?}``.

    Args:
        labeled: only labeled (True) or only still-to-label (False) samples; None for all.
    """
    record = _task(backend, task, dataset)
    manifest = _manifest(backend, record.dataset_name, record.base_version)
    received = _repo(backend).received(record.id)
    out: list[dict[str, Any]] = []
    skipped = 0
    for s in manifest.samples:
        got = received.get(s.id)
        labels = list(got.labels) if got else list(s.labels)
        if labeled is not None and bool(labels) != labeled:
            continue
        if skipped < offset:
            skipped += 1
            continue
        row: dict[str, Any] = {"id": s.id, "file": s.file, "labels": labels,
                               "labeled_by": (got.annotator or "(unknown)") if got else ("dataset" if s.labels else None),
                               "labeled_at": got.labeled_at.isoformat() if got else None}
        text = s.annotation.get("text") if s.annotation else None
        if isinstance(text, str):
            row["text"] = text
        out.append(row)
        if limit is not None and len(out) >= limit:
            break
    return out


# -- labels -------------------------------------------------------------------------------------
def submit_labels(backend: Context, task: LabelTaskRecord | str, labels: Mapping[str, Any], *,
                  annotator: str | None = None, dataset: str | None = None) -> int:
    """Record labels for samples of a task: all of them, or (on any problem) none.

    Args:
        labels: ``{sample id: [label, ...]}`` (a single label may be a plain string).
        annotator: who gave them (kept with each sample's labels).

    Returns:
        How many samples got labels.

    Raises:
        LabelingError: the task is completed, nothing was given, sample ids not in the task's
            dataset version, labels outside its label set, or a sample with no label; the
            message names the first few of each.
    """
    record = _task(backend, task, dataset)
    if record.status != "in_progress":
        raise LabelTaskCompletedError(f"labeling task {record.name!r} is completed (its labeled version is "
                            f"{record.dataset_name}:{record.output_version}) and takes no more labels",
                            hint="create a new task over that version to change labels", task=record.name)
    if not labels:
        raise LabelingError("no labels given", hint='give {"sample_id": ["label"]} for at least one sample')
    manifest = _manifest(backend, record.dataset_name, record.base_version)
    samples = manifest.sample_map()
    allowed = set(record.label_names)
    unknown_ids: list[str] = []
    outside: list[str] = []
    empty: list[str] = []
    entries: list[tuple[str, list[str], bool]] = []
    for sample_id, raw in labels.items():
        sid = str(sample_id)
        values = normalise_labels(raw)
        if sid not in samples:
            unknown_ids.append(sid)
            continue
        if values is None:
            outside.append(f"{sid}: {raw!r} is not a label name or a list of them")
            continue
        if not values:
            empty.append(sid)
            continue
        bad = [v for v in values if v not in allowed]
        if bad:
            outside.append(f"{sid}: {', '.join(map(repr, bad))}")
            continue
        entries.append((sid, values, bool(samples[sid].labels)))
    problems = []
    if unknown_ids:
        problems.append(f"{len(unknown_ids)} sample id(s) not in {record.dataset_name}:{record.base_version}: "
                        f"{_first(sorted(unknown_ids))}")
    if outside:
        problems.append(f"{len(outside)} sample(s) with labels outside the task's label set "
                        f"({', '.join(record.label_names)}): {_first(outside)}")
    if empty:
        problems.append(f"{len(empty)} sample(s) with no label: {_first(sorted(empty))}")
    if problems:
        hint = "nothing was recorded; fix these and submit again"
        if unknown_ids:
            hint += f" (`mloop label export {record.name} todo.csv` lists the sample ids still to label)"
        raise LabelingError(f"labels for task {record.name!r} refused: " + "; ".join(problems), hint=hint,
                            task=record.name, unknown_samples=sorted(unknown_ids)[:_SHOWN])
    return _repo(backend).add_labels(record.id, entries, annotator=annotator)


def _first(items: Sequence[str]) -> str:
    return ", ".join(items[:_SHOWN]) + (", ..." if len(items) > _SHOWN else "")


@dataclass
class ImportResult:
    """What :func:`import_labels` did."""

    task: LabelTaskRecord
    accepted: int
    blank: int
    completed: bool = False


def import_labels(backend: Context, task: LabelTaskRecord | str, file: str | os.PathLike[str], *,
                  format: str | None = None, annotator: str | None = None, dataset: str | None = None,
                  complete: bool = False, allow_partial: bool = False) -> ImportResult:
    """Submit the labels of a CSV, JSON or JSON-lines file (formats:
    :mod:`mloop.datasets.labeling`); entries left blank are skipped.

    Args:
        complete: complete the task afterwards (:func:`complete_task`).

    Raises:
        LabelingError: the file is missing or malformed, or its labels are refused (nothing
            recorded), or ``complete`` and samples are still to label (the labels are kept).
    """
    record = _task(backend, task, dataset)
    parsed = read_labels_file(file, format)
    accepted = submit_labels(backend, record, parsed.labels, annotator=annotator or _whoami())
    done = False
    if complete:
        record = complete_task(backend, record, allow_partial=allow_partial)
        done = True
    return ImportResult(_task(backend, record), accepted, parsed.blank, done)


def _whoami() -> str | None:
    try:
        import getpass

        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name is fine
        return None


def export_template(backend: Context, task: LabelTaskRecord | str, file: str | os.PathLike[str], *,
                    format: str | None = None, dataset: str | None = None, include_labeled: bool = False) -> int:
    """Write the samples still to label (all, with ``include_labeled``) as a file to fill in
    for :func:`import_labels`; how many samples it lists.

    Raises:
        LabelingError: the file exists.
    """
    rows = sample_rows(backend, task, labeled=None if include_labeled else False, dataset=dataset)
    write_template(file, [TemplateRow(r["id"], r["file"], r.get("text")) for r in rows], format)
    return len(rows)


def complete_task(backend: Context, task: LabelTaskRecord | str, *, allow_partial: bool = False,
                  dataset: str | None = None) -> LabelTaskRecord:
    """Make the labeled dataset version and mark the task completed (a completed task is
    returned as it is).

    The new version has the base version's files, with the labels the task received; a task
    that received none (everything was labeled already) outputs its base version.

    Raises:
        LabelingError: samples are still to label and ``allow_partial`` is false (nothing changes).
    """
    record = _task(backend, task, dataset)
    if record.status == "completed":
        return record
    status = task_status(backend, record)
    if status.remaining and not allow_partial:
        todo = [r["id"] for r in sample_rows(backend, record, labeled=False, limit=_SHOWN)]
        raise LabelingError(f"labeling task {record.name!r} has {status.remaining} of {status.total} samples still "
                            f"to label ({_first(todo)})",
                            hint=f"label them (`mloop label export {record.name} todo.csv` writes them to a file), "
                                 "or complete with --allow-partial to leave them unlabeled", task=record.name)
    received = _repo(backend).received(record.id)
    if received:
        version = relabel(backend, record.dataset_name, record.base_version,
                          {sid: r.labels for sid, r in received.items()},
                          description=f"labeled by task {record.name}").version
    else:
        version = record.base_version
    done, _ = _repo(backend).complete(record.id, version)
    return done


# -- what runs see ------------------------------------------------------------------------------
def task_value(task: LabelTaskRecord) -> dict[str, Any]:
    """A task as a run's data value (``LabelTask``-like): ``{"dataset_name", "task_name"}``."""
    return {"dataset_name": task.dataset_name, "task_name": task.name}


def task_output(task: LabelTaskRecord) -> dict[str, Any]:
    """What a LabelingStep's output holds once its task is completed: the label task, plus the
    labeled version (``version_name``) so a dataset consumer (ReleaseDatasetStep, a job's
    ``--data_url``) can read it as a dataset value."""
    return {"type": "label_task", **task_value(task), "task_id": task.id, "task_type": task.task_type,
            "base_version": task.base_version, "version_name": task.output_version}


def resolve_task_value(backend: Context, value: Any) -> LabelTaskRecord:
    """The task a label-task data value names: ``{"dataset_name"?, "task_name"}``, a LabelingStep
    output, ``"dataset:task"`` or ``"task"``.

    Raises:
        LabelingError: the value names no task. NotFoundError: no such task.
    """
    dataset: str | None = None
    name: Any = None
    if isinstance(value, Mapping):
        dataset, name = value.get("dataset_name"), value.get("task_name")
    elif isinstance(value, str):
        dataset, sep, name = value.rpartition(":")
        dataset = dataset if sep else None
    if not isinstance(name, str) or not name:
        raise LabelingError(f"{value!r} does not name a labeling task",
                            hint='give {"dataset_name": ..., "task_name": ...} or "DATASET:TASK"')
    return _repo(backend).get(name, dataset or None)


def runs_waiting_on(backend: Context, task: LabelTaskRecord) -> list[RunRecord]:
    """Runs with a LabelingStep waiting on ``task``, newest first."""
    found = []
    for run in backend.store.list_runs(status=["waiting_input"], limit=10_000):
        for step in backend.store.list_steps(run.id):
            ref = step.inputs.get("label_task") if isinstance(step.inputs, dict) else None
            if (step.type == "labeling" and step.status == "waiting_input" and isinstance(ref, dict)
                    and ref.get("task_id") == task.id):
                found.append(run)
                break
    return found
