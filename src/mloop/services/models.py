"""The model registry's plain functions: the CLI, the ModelStep, the inference server and
(later) the REST API all call these.

A model reference is ``NAME`` (the latest version), ``NAME:VERSION`` or ``NAME@alias``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fsspec.callbacks import Callback

from mloop.artifacts import ArtifactStore, ManifestEntry, is_local, local_path
from mloop.errors import ArtifactError, ModelError, ModelVersionExistsError, NotFoundError
from mloop.registry import files
from mloop.registry.types import inspect_model_folder
from mloop.store.registry import (
    ModelRecord,
    ModelRepository,
    ModelVersionRecord,
    check_alias,
    check_model_name,
    check_version,
)

if TYPE_CHECKING:
    from mloop.context import Context

__all__ = ["delete_alias", "export_model", "get_model_version", "get_model_version_by_id", "list_model_versions",
           "list_models", "model_files", "model_local_path", "parse_model_ref", "register_model", "set_alias",
           "versions_registered_by_run"]


def _repo(backend: Context) -> ModelRepository:
    return backend.store.registry


def parse_model_ref(ref: str) -> tuple[str, str | None, str | None]:
    """Split a model reference into (name, version, alias); at most one of the last two is set.

    Raises:
        ModelError: the reference is malformed.
    """
    text = ref.strip() if isinstance(ref, str) else ""
    name, version, alias = text, None, None
    if "@" in text:
        name, _, alias = text.partition("@")
    elif ":" in text:
        name, _, version = text.partition(":")
    if not name or (alias is not None and not alias) or (version is not None and not version):
        raise ModelError(f"invalid model reference {ref!r}",
                         hint="write NAME (latest version), NAME:VERSION or NAME@alias")
    check_model_name(name)
    return name, version, alias


def get_model_version(backend: Context, ref: str) -> ModelVersionRecord:
    """The version a reference names: ``NAME`` (latest), ``NAME:VERSION`` or ``NAME@alias``.

    Raises:
        ModelError: a malformed reference.
        NotFoundError: no such model, version or alias (the hint says what exists).
    """
    name, version, alias = parse_model_ref(ref)
    repo = _repo(backend)
    if alias is not None:
        return repo.get_by_alias(name, alias)
    if version is not None:
        return repo.get_version(name, version)
    return repo.get_latest(name)


def get_model_version_by_id(backend: Context, model_id: str) -> ModelVersionRecord:
    """A version by its ``model_id`` (what ``ServiceInputPlaceholder`` values and ModelStep outputs carry).

    Raises:
        NotFoundError: no version has this id.
    """
    return _repo(backend).get_by_id(model_id)


def versions_registered_by_run(backend: Context, run_id: str, step_name: str | None = None) -> list[ModelVersionRecord]:
    """The versions a run's ModelSteps registered (oldest first), e.g. to deploy what this run made."""
    return _repo(backend).find_versions(run_id=run_id, step_name=step_name)


def register_model(backend: Context, name: str, source_dir: str | os.PathLike[str], *,
                   model_type: str | None = None, version: str | None = None, run_id: str | None = None,
                   step_name: str | None = None, dataset: dict[str, Any] | None = None,
                   metrics: dict[str, float] | None = None, description: str = "", runtime: str | None = None,
                   extra: dict[str, Any] | None = None, callback: Callback | None = None) -> ModelVersionRecord:
    """Register the model in ``source_dir`` as the next version of ``name``.

    The folder is checked for what its type needs (the model is not loaded), copied into the
    artifact store content-addressed (an identical folder shares the stored files), and
    recorded as a new immutable version.

    Args:
        backend: the open backend.
        name: the model's name (created on its first version).
        source_dir: the model folder: a local path, or a URL on the artifact store's filesystem.
        model_type: a canonical type or ModelArts name (``PyTorch``, ``Scikit_Learn``, ``ONNX``,
            ``Custom``); None reads ``config.json``'s ``model_type`` or detects it from the files.
        version: an explicit version (e.g. ``0.0.1``); None takes the next number.
        run_id: the run that made it, if any.
        step_name: the step that made it, if any.
        dataset: the dataset version it was trained on, e.g. ``{"name": "mnist", "version": "3"}``.
        metrics: float metrics; those under ``metrics`` in ``config.json`` are kept too (these win).
        description: free text.
        runtime: the runtime it needs (``config.json``'s ``runtime`` when None).
        extra: anything else to keep with the version.
        callback: upload progress, in files.

    Returns:
        The new version.

    Raises:
        ModelError: an invalid name or version, an unknown or unsupported type, or a folder
            that lacks what its type needs (the message names the missing file).
        ModelVersionExistsError: ``version`` is already registered.
        ArtifactError: the files could not be read or stored.
    """
    check_model_name(name)
    repo = _repo(backend)
    if version is not None:
        check_version(version)
        try:
            repo.get_version(name, version)
        except NotFoundError:
            pass
        else:
            raise ModelVersionExistsError(f"model {name!r} already has version {version!r}; registered versions "
                                          "never change", hint="give another version, or leave it out to take "
                                          "the next number", model=name, version=version)
    with _local_folder(backend.artifacts, str(source_dir)) as folder:
        found = inspect_model_folder(folder, model_type)
        stored = files.store_folder(backend.artifacts, backend.settings.home_path, folder, callback)
    config = found.config
    merged = {k: float(v) for k, v in (config.get("metrics") or {}).items()
              if isinstance(v, (int, float)) and not isinstance(v, bool)} if isinstance(config.get("metrics"),
                                                                                         dict) else {}
    merged.update({k: float(v) for k, v in (metrics or {}).items()})
    config_runtime = config.get("runtime")
    return repo.create_version(
        name, version=version, model_type=found.model_type, layout=found.layout, uri=stored.uri,
        content_hash=stored.digest, size=stored.size, file_count=stored.file_count, run_id=run_id,
        step_name=step_name, dataset=dataset, metrics=merged, description=description or "",
        runtime=runtime if runtime is not None else config_runtime if isinstance(config_runtime, str) else None,
        extra=extra,
    )


def list_models(backend: Context) -> list[ModelRecord]:
    """Every registered model, by name."""
    return _repo(backend).list_models()


def list_model_versions(backend: Context, name: str) -> list[ModelVersionRecord]:
    """A model's versions, oldest first.

    Raises:
        NotFoundError: no such model.
    """
    return _repo(backend).list_versions(name)


def set_alias(backend: Context, name: str, alias: str, version: str) -> ModelVersionRecord:
    """Point ``alias`` (e.g. ``production``) of model ``name`` at ``version``, in one transaction.

    Raises:
        ModelError: an invalid alias.
        NotFoundError: no such model or version.
    """
    check_alias(alias)
    return _repo(backend).set_alias(name, alias, version)


def move_alias(backend: Context, name: str, alias: str, version: str) -> tuple[ModelVersionRecord, list[Any]]:
    """:func:`set_alias`, then switch every service that follows ``name@alias`` to the version
    (``mloop.services.serving.follow_alias``): how a stage such as ``production`` goes live.

    Returns:
        The version, and one ``FollowResult`` per following service (its error, if its switch failed).
    """
    record = set_alias(backend, name, alias, version)
    from mloop.services.serving import follow_alias

    return record, follow_alias(backend, name, alias)


def delete_alias(backend: Context, name: str, alias: str) -> None:
    """Remove an alias.

    Raises:
        NotFoundError: no such model or alias.
    """
    _repo(backend).delete_alias(name, alias)


def model_local_path(backend: Context, record: ModelVersionRecord) -> Path:
    """A local folder holding the version's files, verified against its content hash.

    Files come from the artifact store into a cache under the mloop home, once; the folder is
    shared and must be treated as read-only. Safe when two processes ask at once.

    Raises:
        ArtifactError: the files are missing from the artifact store or damaged.
    """
    return files.materialize(backend.artifacts, backend.settings.home_path, record.content_hash, record.uri)


def model_files(backend: Context, record: ModelVersionRecord) -> list[ManifestEntry]:
    """The version's files (path, size, sha256), sorted by path.

    Raises:
        ArtifactError: the files are missing from the artifact store.
    """
    return list(files.read_manifest(backend.artifacts, record.content_hash))


def export_model(backend: Context, ref: str, dest: str | os.PathLike[str]) -> Path:
    """Copy a version's files, byte for byte, into the folder ``dest``.

    Args:
        backend: the open backend.
        ref: ``NAME``, ``NAME:VERSION`` or ``NAME@alias``.
        dest: a folder that does not exist or is empty.

    Returns:
        ``dest`` as an absolute path.

    Raises:
        NotFoundError: no such model, version or alias.
        ModelError: ``dest`` exists and is not an empty folder.
        ArtifactError: the files are missing or damaged.
    """
    record = get_model_version(backend, ref)
    target = Path(dest).expanduser().absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ModelError(f"cannot export {record.ref} into {target}: it exists and is not an empty folder",
                         hint="choose a new folder; export never overwrites files", folder=str(target))
    source = model_local_path(backend, record)
    entries = files.read_manifest(backend.artifacts, record.content_hash)
    target.mkdir(parents=True, exist_ok=True)
    try:
        for entry in entries:
            out = target / entry.path
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / entry.path, out)
            shutil.copymode(source / entry.path, out)
    except OSError as exc:
        raise ArtifactError(f"cannot export {record.ref} into {target}: {exc}", url=str(target)) from exc
    return target


class _local_folder:
    """A local path for a model folder given as a path or as a URL (downloaded to a temp folder)."""

    def __init__(self, artifacts: ArtifactStore, source: str) -> None:
        self.artifacts, self.source = artifacts, source
        self._tmp: str | None = None

    def __enter__(self) -> str:
        if is_local(self.source):
            return local_path(self.source) or self.source
        self._tmp = tempfile.mkdtemp(prefix="mloop-model-")
        try:
            try:
                self.artifacts.get_dir(self.source, self._tmp)
            except ArtifactError:
                ArtifactStore(self.source).get_dir(self.source, self._tmp)
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise
        return self._tmp

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
