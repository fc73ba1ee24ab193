"""Where a model version's files live: content-addressed in the artifact store, cached locally.

In the artifact store, a version's files are one folder named by the digest of their manifest
(:mod:`mloop.artifacts.hashing`), with the manifest itself beside it, written last::

    <artifact root>/models/blobs/ab/abcdef.../              the model files, exactly
    <artifact root>/models/blobs/ab/abcdef....manifest.json  [[path, size, sha256], ...]

The manifest is the completion mark: a folder without it is an interrupted upload, and the
next registration of the same content uploads it again. Nothing is ever changed in place, so
registering an identical folder twice shares the files and cannot harm the first version.

Readers (the inference server, ``export``) work on a local copy under
``<home>/cache/models/<digest>/``, downloaded once, checked against the digest, and renamed
into place whole, so two processes asking at once each either find the complete copy or
build their own and the loser throws its copy away.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from fsspec.callbacks import Callback

from mloop.artifacts import ArtifactStore, ManifestEntry, dir_manifest, manifest_digest, snapshot_dir
from mloop.errors import ArtifactError

__all__ = ["StoredFiles", "blob_url", "cache_root", "materialize", "read_manifest", "store_folder"]

MANIFEST_SUFFIX = ".manifest.json"


@dataclass(frozen=True)
class StoredFiles:
    """A model folder stored in the artifact store."""

    digest: str
    uri: str
    entries: tuple[ManifestEntry, ...]
    cached: Path  # the verified local copy

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries)

    @property
    def file_count(self) -> int:
        return len(self.entries)


def blob_url(artifacts: ArtifactStore, digest: str) -> str:
    """The artifact-store folder of the files with manifest digest ``digest``."""
    return artifacts.url("models", "blobs", digest[:2], digest)


def _manifest_url(artifacts: ArtifactStore, digest: str) -> str:
    return artifacts.url("models", "blobs", digest[:2], digest + MANIFEST_SUFFIX)


def cache_root(home: Path) -> Path:
    """The local cache of model files under the mloop home."""
    return home / "cache" / "models"


def _manifest_json(entries: tuple[ManifestEntry, ...]) -> str:
    return json.dumps([list(e) for e in entries], separators=(",", ":"))


def _parse_manifest(text: str, where: str) -> tuple[ManifestEntry, ...]:
    try:
        return tuple(ManifestEntry(str(p), int(s), str(h)) for p, s, h in json.loads(text))
    except (ValueError, TypeError) as exc:
        raise ArtifactError(f"the model manifest {where} is damaged: {exc}",
                            hint="register the model again from its source folder") from exc


def store_folder(artifacts: ArtifactStore, home: Path, folder: str | os.PathLike[str],
                 callback: Callback | None = None) -> StoredFiles:
    """Copy ``folder`` into the artifact store (unless identical files are there already).

    The folder is first snapshotted into the local cache (one read: copy and hash together),
    so what is hashed is exactly what is uploaded, even if the source changes meanwhile.

    Args:
        artifacts: the artifact store.
        home: the mloop home (for the cache).
        folder: the model folder; ``__pycache__``, ``*.pyc``, ``.git`` and ``.mloop`` are left out.
        callback: upload progress in files (see :meth:`ArtifactStore.put_dir`).

    Raises:
        ArtifactError: a read, copy or upload failed (nothing half-written is left to be trusted).
    """
    cache = cache_root(home)
    cache.mkdir(parents=True, exist_ok=True)
    staging = cache / f".stage-{uuid.uuid4().hex}"
    try:
        digest = snapshot_dir(folder, staging)
        entries = tuple(dir_manifest(staging, ignore=()))
        if manifest_digest(entries) != digest:  # the snapshot changed under us: refuse, don't guess
            raise ArtifactError(f"the files of {folder} changed while they were being copied",
                                hint="register the model once the job that writes it has finished")
        uri = blob_url(artifacts, digest)
        marker = _manifest_url(artifacts, digest)
        if not artifacts.exists(marker):
            artifacts.put_dir(str(staging), uri, callback=callback)
            artifacts.write_text(marker, _manifest_json(entries))
        cached = _install(cache, digest, staging, entries)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return StoredFiles(digest, uri, entries, cached)


def read_manifest(artifacts: ArtifactStore, digest: str) -> tuple[ManifestEntry, ...]:
    """The manifest of stored files.

    Raises:
        ArtifactError: the files are not (completely) in the artifact store.
    """
    marker = _manifest_url(artifacts, digest)
    if not artifacts.exists(marker):
        raise ArtifactError(f"the model files {blob_url(artifacts, digest)} are missing from the artifact store "
                            f"(no {digest}{MANIFEST_SUFFIX})",
                            hint="the artifact store was cleaned or moved; register the model again")
    return _parse_manifest(artifacts.read_text(marker), marker)


def materialize(artifacts: ArtifactStore, home: Path, digest: str, uri: str) -> Path:
    """A verified local folder holding the files with digest ``digest`` (stored at ``uri``).

    A cached copy is used when every file of its manifest is there with the right size;
    otherwise the files are downloaded into a private folder, their digest checked, and the
    folder renamed into place. Safe when several processes ask at once.

    Raises:
        ArtifactError: the files are missing, or what was downloaded does not match ``digest``.
    """
    cache = cache_root(home)
    final = cache / digest
    if _intact(cache, digest):
        return final
    cache.mkdir(parents=True, exist_ok=True)
    staging = cache / f".fetch-{uuid.uuid4().hex}"
    try:
        artifacts.get_dir(uri, str(staging))
        entries = tuple(dir_manifest(staging, ignore=()))
        got = manifest_digest(entries)
        if got != digest:
            raise ArtifactError(f"the model files at {uri} do not match their content hash "
                                f"(expected {digest[:12]}, found {got[:12]}): they were changed or damaged",
                                hint="register the model again from its source folder", url=uri)
        return _install(cache, digest, staging, entries)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _intact(cache: Path, digest: str) -> bool:
    """Cheap check of a cached copy: every manifest file present with its size (no re-hash)."""
    final = cache / digest
    manifest = cache / (digest + MANIFEST_SUFFIX)
    if not final.is_dir() or not manifest.is_file():
        return False
    try:
        entries = _parse_manifest(manifest.read_text(), str(manifest))
        return all((final / e.path).stat().st_size == e.size for e in entries)
    except (OSError, ArtifactError):
        return False


def _install(cache: Path, digest: str, staging: Path, entries: tuple[ManifestEntry, ...]) -> Path:
    """Rename a complete, verified ``staging`` folder to ``<cache>/<digest>`` (another process may win)."""
    final = cache / digest
    manifest = cache / (digest + MANIFEST_SUFFIX)
    # The manifest first (same content from every writer, replaced atomically): a cached
    # folder is then never without the manifest that checks it.
    tmp = cache / f".{digest}.{uuid.uuid4().hex[:12]}.tmp"
    tmp.write_text(_manifest_json(entries))
    os.replace(tmp, manifest)
    if _intact(cache, digest):
        return final
    if final.exists():  # damaged copy: move it aside (a rename is atomic), then replace it
        trash = cache / f".trash-{uuid.uuid4().hex}"
        try:
            os.rename(final, trash)
            shutil.rmtree(trash, ignore_errors=True)
        except FileNotFoundError:
            pass
    try:
        os.rename(staging, final)
    except OSError:
        if not _intact(cache, digest):  # lost the race to a copy that is itself broken
            raise
    return final
