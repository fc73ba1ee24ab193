"""``mloop gc``: remove what nothing refers to any more.

* ``<home>/runs/<id>`` folders of runs the store no longer has (deleted runs);
* loose dataset objects (``datasets/objects/ab/<rest of the sha256>``) that no dataset version's manifest
  lists;
* model blobs (``models/blobs/ab/<digest>/`` and its ``.manifest.json``) that no model version
  refers to.
* per-job environments (``envs/<key>/``) no job has used for ``env_expiry`` (default 30 days)
  and none is using now, and builds or removals of them cut short (see
  :func:`mloop.runner.envs.collect`: each goes under its lock, so never one a job is using).

Anything written less than :data:`GRACE_SECONDS` ago is kept: an import or a registration
writes its objects before the version row that refers to them. Packed dataset objects are
kept (a pack is removed only whole, and packs are shared); manifests are kept. Only a local
artifact store is collected.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from mloop.artifacts import local_path
from mloop.context import Context
from mloop.durations import duration_seconds

__all__ = ["GRACE_SECONDS", "Garbage", "collect"]

#: Files younger than this are never removed (a writer may not have recorded them yet).
GRACE_SECONDS = 3600.0


@dataclass
class Garbage:
    """What ``gc`` found (and removed unless it was a dry run): ``(kind, path, bytes)``."""

    items: list[tuple[str, Path, int]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(size for _, _, size in self.items)


def _size(path: Path) -> int:
    from mloop.runner.envs import tree_size

    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    return tree_size(str(path))


def _newest_mtime(path: Path) -> float:
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                try:
                    newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
                except OSError:
                    pass
    return newest


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):  # objects are created read-only
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o755)
        shutil.rmtree(path)
    else:
        path.unlink()


def collect(backend: Context, *, dry_run: bool = False, grace_seconds: float = GRACE_SECONDS) -> Garbage:
    """Find (and unless ``dry_run``, remove) unreferenced run folders, dataset objects and
    model blobs. Nothing any run, dataset version or model version refers to is touched."""
    from mloop.services.datasets import list_datasets, list_versions, load_manifest

    garbage = Garbage()
    cutoff = time.time() - grace_seconds

    def old(path: Path) -> bool:
        try:
            return _newest_mtime(path) < cutoff
        except OSError:
            return False

    runs = backend.settings.home_path / "runs"
    if runs.is_dir():
        known = {r.id for r in backend.store.list_runs(limit=1_000_000_000)}
        for folder in sorted(runs.iterdir()):
            if folder.is_dir() and folder.name not in known and old(folder):
                garbage.items.append(("run folder", folder, _size(folder)))

    root = local_path(backend.artifacts.root)
    if root is None:
        garbage.skipped.append(f"the artifact store {backend.artifacts.root} is not local; "
                               "dataset objects and model blobs were not collected")
    else:
        root_path = Path(root)
        objects = root_path / "datasets" / "objects"
        if objects.is_dir():
            referenced: set[str] = set()
            for dataset in list_datasets(backend):
                for version in list_versions(backend, dataset.name):
                    referenced.update(f.hash for f in load_manifest(backend, version).files)
            for shard in sorted(objects.iterdir()):
                if not shard.is_dir():
                    continue
                for obj in sorted(shard.iterdir()):
                    # objects/ab/cdef...: the shard is the digest's first two characters
                    if obj.name.startswith(".") or shard.name + obj.name in referenced or not old(obj):
                        continue
                    garbage.items.append(("dataset object", obj, _size(obj)))
        blobs = root_path / "models" / "blobs"
        if blobs.is_dir():
            registry = backend.store.registry
            versions = [v for m in registry.list_models() for v in registry.list_versions(m.name)]
            used = {v.content_hash for v in versions}
            used_paths = {os.path.normpath(p.rstrip("/")) for v in versions if (p := local_path(v.uri)) is not None}
            for shard in sorted(blobs.iterdir()):
                if not shard.is_dir():
                    continue
                for blob in sorted(shard.iterdir()):
                    digest = blob.name.removesuffix(".manifest.json")
                    if digest in used or os.path.normpath(str(blob)) in used_paths or not old(blob):
                        continue
                    garbage.items.append(("model files", blob, _size(blob)))

    if not dry_run:
        for _, path, _ in garbage.items:
            _remove(path)
    _collect_envs(backend, garbage, dry_run)
    return garbage


def _collect_envs(backend: Context, garbage: Garbage, dry_run: bool) -> None:
    """Unused per-job environments: removed by the job runner's own module, which knows their
    locks (removal happens there, under each one's lock, not in :func:`_remove`)."""
    from mloop.runner import envs

    root = backend.settings.home_path / "envs"
    found, notes = envs.collect(str(root), duration_seconds(backend.settings.env_expiry), dry_run=dry_run)
    garbage.items.extend((kind, Path(path), size) for kind, path, size in found)
    garbage.skipped.extend(notes)
