"""Dataset steps: CreateDatasetStep, DatasetImportStep, ReleaseDatasetStep, and dataset job inputs.

Each step calls the dataset service (:mod:`mloop.services.datasets`) and outputs the version it
made or reused as a dataset value::

    {"type": "dataset", "dataset_name": "digits", "version_name": "v3", "version_id": "...",
     "manifest_hash": "...", "format": "ModelArts imageNet 1.0", "samples": 1797}

which a later step consumes with ``step.outputs[name].as_input()``, just like a fixed
``wf.data.Dataset(dataset_name, version_name)`` or a ``wf.data.DatasetPlaceholder`` value
(``"digits:v3"``, or ``"digits"`` for the latest version). A JobStep receives any of them as
``--<input>=<local folder>`` laid out by :func:`mloop.services.datasets.materialize`
(``train/<label>/<file>``, ``eval/<label>/<file>``, ``manifest.json``), and records the exact
version in its step inputs, where the model registry finds which data made a model.

The steps run in the engine's process: they read files and write the stores, no user code runs,
so there is nothing to isolate in a job process (the same choice as ModelStep). Imports, which
read every file, run in a thread (:func:`~mloop.engine.handlers.run_in_thread`): the engine goes on
with other steps meanwhile, and a stop ends them at the next file, with no version committed.
They are idempotent per run: a retried step finds the version its first attempt committed.
"""

from __future__ import annotations

import os
from typing import Any

from mloop.artifacts import is_local, local_path
from mloop.engine.context import RunContext
from mloop.errors import DatasetError, DatasetFormatError, NotFoundError, NotSupportedYetError
from mloop.context import Context
from mloop.spec.models import InputSpec, StepSpec
from mloop.engine.handlers import Launched, Outcome, StepHandler, ThreadHandle, run_in_thread
from mloop.store.datasets import DatasetVersionRecord

__all__ = ["CreateDatasetHandler", "DatasetImportHandler", "ReleaseDatasetHandler", "dataset_value", "stage_dataset"]

#: Problems shown in a step's message when data cleaning left files out (all are in the version's stats).
_SHOWN = 5


def dataset_value(record: DatasetVersionRecord) -> dict[str, Any]:
    """What a dataset step outputs: the version, as a JobStep or another dataset step consumes it."""
    return {"type": "dataset", "dataset_name": record.dataset_name, "version_name": record.version,
            "version_id": record.id, "manifest_hash": record.manifest_hash, "format": record.format,
            "samples": record.sample_count}


def _backend(ctx: RunContext) -> Context:
    return ctx  # a run context is a context: the run service owns and closes it


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return str(value).strip()


def _dataset_ref(value: Any, step: str, inp: str) -> tuple[str, str | None]:
    """``(name, version or None)`` of a resolved dataset input (Dataset, placeholder, consumption)."""
    if isinstance(value, dict) and _text(value.get("dataset_name")):
        return str(value["dataset_name"]).strip(), _text(value.get("version_name"))
    if isinstance(value, dict) and value.get("type") == "label_task":
        raise NotSupportedYetError(f"input {inp!r} of step {step!r} is a labeling task; this step takes a dataset",
                                   hint="give it the labeling step's released dataset instead", step=step)
    raise DatasetError(f"input {inp!r} of step {step!r} is {value!r}, not a dataset",
                       hint="give a wf.data.Dataset, a DatasetPlaceholder or a dataset step's output", step=step)


def _completed_task_version(backend: Context, value: dict[str, Any], step: str) -> dict[str, Any]:
    """A label task given directly (``wf.data.LabelTask``, a ``LabelTaskPlaceholder`` value) as
    the dataset version its completion made; releasing the latest version instead would
    silently skip the labels."""
    from mloop.services.labels import resolve_task_value

    task = resolve_task_value(backend, value)
    if task.status != "completed" or not task.output_version:
        raise DatasetError(f"step {step!r}: labeling task {task.name!r} is not completed, so it has no labeled "
                           "version to release", hint=f"finish it: `mloop label complete {task.name}` (or put a "
                           "LabelingStep before this step, which waits for it)", step=step)
    return {"dataset_name": task.dataset_name, "version_name": task.output_version}


def _source_folder(ctx: RunContext, step: StepSpec, inp: InputSpec) -> str:
    """The local path of an OBS-like input (a remote folder is staged into the run's folder)."""
    url = ctx.resolve(inp.data)
    if not isinstance(url, str) or not url:
        raise DatasetError(f"input {inp.name!r} of step {step.name!r} is {url!r}, not a folder",
                           hint="give an OBSPath, an OBSPlaceholder or a job's output (.as_input())", step=step.name)
    if is_local(url):
        return local_path(url) or url
    dest = os.path.join(ctx.run_dir, "steps", step.name, "source", inp.name)
    ctx.artifacts.get_dir(url, dest)
    return dest


def _format(props: dict[str, Any], config_key: str | None) -> tuple[str | None, dict[str, Any]]:
    """The import format and its parameters from ``ImportConfig``/``ImportDataInfo`` properties."""
    config = props.get(config_key) if config_key else props
    config = config if isinstance(config, dict) else {}
    formats = [c for c in config.get("annotation_format_config") or [] if isinstance(c, dict) and c.get("format_name")]
    names = list(dict.fromkeys(str(c["format_name"]) for c in formats))
    if len(names) > 1:
        raise DatasetError(f"one annotation format per import, got {', '.join(map(repr, names))}",
                           hint="split the import into one step per format")
    if str(config.get("import_type") or "").lower() == "manifest":
        return "manifest", {}
    if not names:
        return None, {}
    params = {k: v for k, v in (formats[0].get("parameters") or {}).items() if v is not None}
    return names[0], params


def _import_kwargs(fmt: str | None, params: dict[str, Any], fn: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if fmt is not None:
        kwargs["format"] = fmt
    if params:  # AnnotationFormatParameters: the text format's separators
        kwargs["params"] = params
    return kwargs


def _import(backend: Context, name: str, folder: str, fmt: str | None, params: dict[str, Any],
            handle: ThreadHandle, **more: Any) -> DatasetVersionRecord:
    """``import_data`` with a hint that fits a workflow: a step has no data-cleaning switch (the SDK
    has no such property), so the files must be fixed at the source. A stop of the step ends
    the import at the next file (an interrupted import commits no version)."""
    from mloop.services.datasets import import_data

    def progress(phase: str, done: int, total: int) -> None:
        handle.check()

    try:
        return import_data(backend, name, folder, **_import_kwargs(fmt, params, import_data), progress=progress,
                           **more)
    except DatasetFormatError as exc:
        if getattr(exc, "problems", None):  # bad files, not an unsupported format
            exc.hint = f"fix or remove these files in {folder}, then run again"
        raise


def _made(record: DatasetVersionRecord, verb: str) -> str:
    stats = record.stats or {}
    if stats.get("unchanged"):
        text = f"{record.dataset_name}:{record.version} already holds this data (no new version)"
    else:
        text = (f"{verb} {record.dataset_name}:{record.version} ({record.sample_count} samples, "
                f"{len(record.classes)} classes)")
    problems = stats.get("problems") or []
    if problems:
        shown = "; ".join(f"{p['path']}: {p['reason']}" for p in problems[:_SHOWN])
        more = stats.get("problem_count", len(problems)) - min(len(problems), _SHOWN)
        text += f"; data cleaning left out {stats.get('problem_count', len(problems))} file(s): {shown}"
        text += f" ... and {more} more" if more > 0 else ""
    return text


def _record_inputs(ctx: RunContext, step: StepSpec, **inputs: Any) -> None:
    ctx.store.update_step(ctx.run_id, step.name, inputs=inputs)


def _output_name(step: StepSpec) -> str:
    if not step.outputs:
        raise DatasetError(f"step {step.name!r} has no output", step=step.name)
    return step.outputs[0].name


class CreateDatasetHandler(StepHandler):
    """Make (or add to) the dataset ``DatasetProperties.dataset_name`` from the input folder.

    A dataset of that name is reused, as ModelArts does: the folder's data goes on top of its
    latest version (no new version when nothing changed); otherwise the dataset is created.
    """

    def start(self, step: StepSpec, ctx: RunContext, attempt: int, on_exit: Any) -> Outcome | Launched:
        props = ctx.resolve(step.properties)
        name = _text(props.get("dataset_name"))
        if name is None:
            raise DatasetError(f"step {step.name!r} has no dataset_name",
                               hint="set wf.steps.DatasetProperties(dataset_name=...)", step=step.name)
        fmt, params = _format(props, "import_config")
        sources = [i for i in step.inputs if i.type in ("obs", "data_selector")] or step.inputs
        if len(sources) != 1:
            raise DatasetError(f"step {step.name!r} needs exactly one input folder, got {len(sources)}",
                               hint="give one CreateDatasetInput", step=step.name)
        output = _output_name(step)

        def work(handle: ThreadHandle) -> Outcome:
            folder = _source_folder(ctx, step, sources[0])
            record = _import(_backend(ctx), str(name), folder, fmt, params, handle, create=True,
                             description=_text(props.get("description")) or "")
            _record_inputs(ctx, step, values={sources[0].name: folder}, format=record.format,
                           dataset={"dataset_name": record.dataset_name, "version_name": record.version})
            return Outcome("succeeded", _made(record, "created"), outputs={output: dataset_value(record)})

        return run_in_thread(step, work, on_exit)


class DatasetImportHandler(StepHandler):
    """Add the data of the OBS-like input to the dataset input: its next version."""

    def start(self, step: StepSpec, ctx: RunContext, attempt: int, on_exit: Any) -> Outcome | Launched:
        from mloop.services.datasets import get_version

        resolved = [(i, ctx.resolve(i.data)) for i in step.inputs]
        folders = [(i, v) for i, v in resolved if isinstance(v, str)]
        targets = [(i, v) for i, v in resolved if not isinstance(v, str)]
        if len(folders) != 1 or len(targets) != 1:
            raise DatasetError(f"step {step.name!r} needs one folder input (what to import) and one dataset input "
                               f"(where to import it), got {', '.join(f'{i.name} ({i.type})' for i in step.inputs)}",
                               hint="inputs=[DatasetImportInput(name, data=OBSPath(...)), "
                                    "DatasetImportInput(name, data=Dataset(...) or a dataset step's output)]",
                               step=step.name)
        name, _ = _dataset_ref(targets[0][1], step.name, targets[0][0].name)
        backend = _backend(ctx)
        fmt, params = _format(ctx.resolve(step.properties), None)
        if fmt is None:
            fmt = get_version(backend, name).format  # imports continue in the dataset's own format
        output = _output_name(step)

        def work(handle: ThreadHandle) -> Outcome:
            folder = _source_folder(ctx, step, folders[0][0])
            record = _import(backend, name, folder, fmt, params, handle)
            _record_inputs(ctx, step, values={folders[0][0].name: folder}, format=record.format,
                           dataset={"dataset_name": record.dataset_name, "version_name": record.version})
            return Outcome("succeeded", _made(record, "imported into"), outputs={output: dataset_value(record)})

        return run_in_thread(step, work, on_exit)


def _ratio(value: Any, step: str) -> float:
    try:
        ratio = float(value)
    except (TypeError, ValueError):
        ratio = float("nan")
    if not 0.0 < ratio < 1.0:
        default = " (the SDK's default, 1.00, puts nothing in eval)" if ratio == 1.0 else ""
        raise DatasetError(f"step {step!r}: train_evaluate_sample_ratio {value!r} is not between 0 and 1 "
                           f"(exclusive){default}",
                           hint='set wf.data.DatasetVersionConfig(train_evaluate_sample_ratio="0.8")', step=step)
    return ratio


class ReleaseDatasetHandler(StepHandler):
    """Release a dataset version with a deterministic, stratified train/eval split.

    ``DatasetVersionConfig.train_evaluate_sample_ratio`` is the train share; ``version_name``
    names the release (default ``v<next number>``). A release equal to one that already exists
    (same base version, ratio and seed) is reused rather than made again, so re-running an
    unchanged pipeline, or retrying this step, adds no version.
    """

    SEED = 0  # the SDK has no seed: every run of a workflow splits the same way

    def start(self, step: StepSpec, ctx: RunContext, attempt: int, on_exit: Any) -> Outcome | Launched:
        from mloop.services.datasets import get_version, release_version

        if len(step.inputs) != 1:
            raise DatasetError(f"step {step.name!r} needs exactly one dataset input", step=step.name)
        value = ctx.resolve(step.inputs[0].data)
        if isinstance(value, dict) and _text(value.get("task_name")) and not _text(value.get("version_name")):
            value = _completed_task_version(_backend(ctx), value, step.name)
        name, version = _dataset_ref(value, step.name, step.inputs[0].name)
        output = step.outputs[0] if step.outputs else None
        config = ctx.resolve(output.config) if output is not None else {}
        ratio = _ratio(config.get("train_evaluate_sample_ratio", "1.00"), step.name)
        version_name = _text(config.get("version_name"))
        backend = _backend(ctx)
        base = get_version(backend, name, version)
        record = self._existing(backend, base, ratio, version_name)
        reused = record is not None
        if record is None:
            record = release_version(backend, name, base.version, ratio=ratio, seed=self.SEED,
                                     version_name=version_name, description=_text(config.get("description")) or "")
        release = record.release or {}
        _record_inputs(ctx, step, dataset={"dataset_name": name, "version_name": base.version},
                       release={"ratio": ratio, "seed": self.SEED, "version_name": record.version})
        what = (f"{name}:{record.version} (release of {release.get('of')}: {release.get('train')} train / "
                f"{release.get('eval')} eval, ratio {ratio:g})")
        message = f"reused release {what}" if reused else f"released {what}"
        return Outcome("succeeded", message, outputs={_output_name(step): dataset_value(record)})

    def _existing(self, backend: Context, base: DatasetVersionRecord, ratio: float,
                  version_name: str | None) -> DatasetVersionRecord | None:
        from mloop.services.datasets import get_version

        def same_split(r: DatasetVersionRecord) -> bool:
            return (r.release or {}).get("ratio") == ratio and (r.release or {}).get("seed") == self.SEED

        # The input is already such a release: an unchanged re-run feeds the last release back.
        if same_split(base) and version_name in (None, base.version):
            return base
        try:
            candidate = get_version(backend, base.dataset_name, version_name)  # None: the latest
        except NotFoundError:
            return None
        of_base = (candidate.release or {}).get("of") == base.version
        return candidate if same_split(candidate) and of_base else None


def stage_dataset(ctx: RunContext, step: str, inp: str, value: Any, dest: str) -> tuple[str, dict[str, Any]]:
    """Materialise a dataset input of a JobStep into ``dest``; the path and the exact version.

    Args:
        value: the resolved input: a ``Dataset``/``DatasetPlaceholder`` value or a dataset
            step's output (``version_name`` None means the latest version).

    Returns:
        ``(dest, {"dataset_name", "version_name", "version_id", "manifest_hash"})``.
    """
    from mloop.services.datasets import get_version, materialize

    name, version = _dataset_ref(value, step, inp)
    backend = _backend(ctx)
    record = get_version(backend, name, version)
    materialize(backend, name, record.version, dest)
    return dest, {"dataset_name": name, "version_name": record.version, "version_id": record.id,
                  "manifest_hash": record.manifest_hash}
