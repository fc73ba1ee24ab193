"""LabelingStep: create (or reuse) a labeling task and wait until a person completes it.

The input is dataset-like (``Dataset``, ``DatasetPlaceholder``, a dataset output consumed with
``as_input()``): the step then needs ``LabelTaskProperties`` and finds the task named
``task_name`` in that dataset, or creates it over the given version (default name
``workflow_created_task_<hex>``, stable per run and step). Or it is label-task-like
(``LabelTask``, ``LabelTaskPlaceholder``, a LabelingStep's output): the task must exist, and
the step has no properties.

:meth:`LabelingHandler.start` is idempotent (find or create, then check), so the engine's
default poll calls it again; it works from the store alone, so a run resumed after a restart
(``mloop resume``, ``mloop label complete``) picks up where it was. Until the task is
completed the step waits (``waiting_input``) with its progress as its message; then it
succeeds, its output holding the task and the labeled version (see
:func:`mloop.services.labels.task_output`), which a ReleaseDatasetStep or a job can consume.
"""

from __future__ import annotations

from typing import Any

from mloop.engine.context import RunContext
from mloop.errors import LabelingError, NotFoundError
from mloop.context import Context
from mloop.spec.models import InputSpec, StepSpec
from mloop.engine.handlers import Launched, Outcome, StepHandler, Waiting
from mloop.store.labels import LabelTaskRecord

__all__ = ["LabelingHandler"]

POLL_SECONDS = 1.0


class LabelingHandler(StepHandler):
    def start(self, step: StepSpec, ctx: RunContext, attempt: int, on_exit: Any) -> Outcome | Launched | Waiting:
        from mloop.services.labels import task_output

        backend: Context = ctx  # a run context is a context: the run service owns and closes it
        task = self._known_task(backend, step, ctx) or self._find_or_create(backend, step, ctx)
        output = step.outputs[0].name if step.outputs else "label_task"
        if task.status == "completed":
            return Outcome("succeeded", f"labeling task {task.name!r} completed: labeled version "
                                        f"{task.dataset_name}:{task.output_version}",
                           outputs={output: task_output(task)})
        progress = f"labeling task {task.name!r}: {task.labeled_count}/{task.sample_count} samples labeled"
        if task.remaining == 0:  # a person still decides when the task is done
            return Waiting(f"{progress}; complete it with `mloop label complete {task.name}`", POLL_SECONDS)
        return Waiting(f"{progress}; add labels with `mloop label import {task.name} FILE --complete`", POLL_SECONDS)

    # -- finding the task ---------------------------------------------------------------------
    @staticmethod
    def _known_task(backend: Context, step: StepSpec, ctx: RunContext) -> LabelTaskRecord | None:
        """The task an earlier call for this run's step recorded (polls, a resumed run)."""
        from mloop.services.labels import get_task_by_id

        ref = ctx.store.get_step(ctx.run_id, step.name).inputs.get("label_task")
        if not isinstance(ref, dict) or not ref.get("task_id"):
            return None
        try:
            return get_task_by_id(backend, str(ref["task_id"]))
        except NotFoundError:
            return None  # deleted meanwhile: find or create it again

    def _find_or_create(self, backend: Context, step: StepSpec, ctx: RunContext) -> LabelTaskRecord:
        from mloop.services.labels import create_task, default_task_name, resolve_task_value

        data_input = _input(step)
        value = ctx.resolve(data_input.data)
        properties = ctx.resolve(step.properties) if step.properties else {}
        if data_input.type == "label_task" or _names_task(value):
            if properties:
                raise LabelingError(f"step {step.name!r} labels an existing task ({data_input.name} is a label task), "
                                    "so it takes no LabelTaskProperties", step=step.name,
                                    hint="drop properties=..., or give a dataset as the input to create a task")
            try:
                task = resolve_task_value(backend, value)
            except NotFoundError as exc:
                raise LabelingError(f"step {step.name!r}: {exc}", step=step.name,
                                    hint="create the task first (mloop label create), or give the step a dataset "
                                         "and LabelTaskProperties to create it") from None
        else:
            if not isinstance(value, dict) or not value.get("dataset_name"):
                raise LabelingError(f"input {data_input.name!r} of step {step.name!r} is {value!r}, not a dataset",
                                    step=step.name, hint="give wf.data.Dataset(name, version), a DatasetPlaceholder "
                                                         "or a dataset step's output")
            if not properties or properties.get("task_type") is None:
                raise LabelingError(f"step {step.name!r} labels a dataset, so it needs "
                                    "properties=LabelTaskProperties(task_type=...)", step=step.name,
                                    hint="e.g. wf.steps.LabelTaskProperties(task_type=wf.data.LabelTaskTypeEnum."
                                         "IMAGE_CLASSIFICATION, task_name='pets', labels=[wf.steps.Label('cat'), ...])")
            name = properties.get("task_name") or default_task_name(ctx.run_id, step.name)
            extra = {k: properties[k] for k in ("properties", "auto_sync_dataset", "content_labeling",
                                                "sample_conditions") if properties.get(k) is not None}
            task = create_task(backend, str(value["dataset_name"]), value.get("version_name") or None, str(name),
                               properties["task_type"], properties.get("labels") or None,
                               description=properties.get("description") or step.description or "",
                               properties=extra, run_id=ctx.run_id, step_name=step.name, reuse=True)
        ctx.store.update_step(ctx.run_id, step.name, inputs={
            "values": {data_input.name: value},
            "label_task": {"task_id": task.id, "dataset_name": task.dataset_name, "task_name": task.name,
                           "base_version": task.base_version}})
        return task


def _input(step: StepSpec) -> InputSpec:
    if len(step.inputs) != 1:
        raise LabelingError(f"step {step.name!r} has {len(step.inputs)} inputs; a LabelingStep takes exactly one",
                            step=step.name, hint="give inputs=wf.steps.LabelingInput(name, data=...)")
    return step.inputs[0]


def _names_task(value: Any) -> bool:
    """A consumed value that is a label task (a LabelingStep's output), whatever its input type says."""
    return isinstance(value, dict) and bool(value.get("task_name"))
