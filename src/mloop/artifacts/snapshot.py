"""Snapshots of a job's code folder: a private copy, so later edits can't change a running job.

:func:`snapshot_dir` runs once per job launch, so it is built to cost about a millisecond
for a folder of a few small files: one walk, and each file is read once, hashed while it
is copied (the digest is :func:`~mloop.artifacts.hashing.hash_dir`'s, for free). The copy
is built under a temporary sibling name and renamed into place, so a snapshot folder is
either complete or absent.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import uuid
from collections.abc import Iterable

from mloop.artifacts.filesystems import translate_errors
from mloop.artifacts.hashing import DEFAULT_IGNORE, HASH_CHUNK, ManifestEntry, manifest_digest, walk_tree
from mloop.errors import ArtifactError

__all__ = ["snapshot_dir"]

_O_BINARY: int = getattr(os, "O_BINARY", 0)
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY


def snapshot_dir(src: str | os.PathLike[str], dst: str | os.PathLike[str],
                 ignore: Iterable[str] = DEFAULT_IGNORE) -> str:
    """Copy the folder ``src`` to ``dst`` and return the copy's digest.

    The same files are copied that :func:`~mloop.artifacts.hashing.hash_dir` counts
    (same ``ignore`` patterns and symlink rules: links to files inside ``src`` are copied
    as regular files; nothing outside ``src`` is followed). File permission bits are kept;
    empty folders are copied too.

    Args:
        src: the folder to copy (a job's ``code_dir``).
        dst: where the copy goes; it must not exist, or be an empty folder. Its parent
            folders are created.
        ignore: fnmatch patterns for names to skip (see :data:`~mloop.artifacts.DEFAULT_IGNORE`).

    Returns:
        The sha256 digest of the copy, equal to ``hash_dir(src, ignore)`` at copy time.

    Raises:
        ArtifactError: ``src`` is not a folder, ``dst`` already has content, or a copy failed
            (nothing is left at ``dst`` then).
    """
    tree = walk_tree(src, ignore)  # listed before anything is created, even if dst is inside src
    target = os.path.abspath(os.fspath(dst))
    if os.path.lexists(target) and not (os.path.isdir(target) and not os.listdir(target)):
        raise ArtifactError(f"cannot snapshot into {target}: it already exists and is not an empty folder",
                            hint="snapshots are never overwritten; choose a new folder", url=target)
    staging = f"{target}.{uuid.uuid4().hex[:12]}.tmp"
    entries: list[ManifestEntry] = []
    with translate_errors(target, "write the snapshot"):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.mkdir(staging)
        try:
            for rel, _ in tree.dirs:
                os.mkdir(os.path.join(staging, rel))
            for rel, full in tree.files:
                size, sha = _copy_and_hash(full, os.path.join(staging, rel))
                entries.append(ManifestEntry(rel, size, sha))
            _copy_dir_modes(tree.dirs, staging)
            if os.path.isdir(target):
                os.rmdir(target)  # empty, checked above
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return manifest_digest(entries)


def _copy_and_hash(src: str, dst: str) -> tuple[int, str]:
    """Copy one file, returning its size and sha256 from the bytes that were written."""
    src_fd = os.open(src, os.O_RDONLY | _O_BINARY)
    try:
        info = os.fstat(src_fd)
        dst_fd = os.open(dst, _CREATE, 0o600)
        try:
            digest = hashlib.sha256()
            size = 0
            while chunk := os.read(src_fd, HASH_CHUNK if info.st_size > HASH_CHUNK else info.st_size + 1):
                digest.update(chunk)
                size += len(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(dst_fd, view):]
            _chmod_fd(dst_fd, dst, stat.S_IMODE(info.st_mode))
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)
    return size, digest.hexdigest()


def _chmod_fd(fd: int, path: str, mode: int) -> None:
    if hasattr(os, "fchmod"):
        os.fchmod(fd, mode)
    else:  # Windows before 3.13
        os.chmod(path, mode)


def _copy_dir_modes(dirs: list[tuple[str, str]], staging: str) -> None:
    # Deepest first and after all files are in: a read-only source folder must not stop
    # the copy from being filled.
    for rel, full in reversed(dirs):
        os.chmod(os.path.join(staging, rel), stat.S_IMODE(os.stat(full).st_mode))
