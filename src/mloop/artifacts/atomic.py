"""Atomic single-file writes and copies: readers see the old bytes or the new ones, never half.

Three strategies, picked per filesystem by :func:`default_strategy`:

``replace``
    Local disk. Write ``.<name>.<random>.tmp`` in the target's own folder (same
    filesystem, so the rename cannot turn into a copy), then ``os.replace`` it over the
    target, which POSIX and Windows both make atomic. No fsync: this protects readers
    and crashes of mloop, not a power cut, and keeps a write at tens of microseconds.
``move``
    Filesystems that can move a file but have no atomic put (``memory://``, sftp, …):
    the same temporary sibling, then ``fs.mv``. On ``memory://`` a move swaps one
    dictionary entry, so the target is never partial.
``direct``
    Object stores (``s3://``, ``gs://``, ``az://``): an object appears only when its
    single PUT (or multipart upload) completes, so writing the final key directly is
    already all-or-nothing. A temporary key plus ``mv`` would cost a server-side copy
    and a delete, and leave a visible ``.tmp`` key if mloop died in between. On S3, a
    file of two parts or more (see :class:`~mloop.artifacts.s3.S3Options`) goes up as a
    multipart upload, its parts in parallel; a failed one is aborted, and one whose
    process was killed stays an invisible pending upload (a bucket lifecycle rule
    ``AbortIncompleteMultipartUpload`` clears those), never a partial object.

On failure every strategy removes its temporary file and re-raises the original error.
A process killed outright (SIGKILL, power loss) cannot clean up: its hidden ``*.tmp``
sibling stays, but the target keeps its old content.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from typing import Literal

from fsspec.callbacks import Callback
from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractFileSystem

from mloop.artifacts.filesystems import backend_for

__all__ = ["CHUNK_SIZE", "WriteStrategy", "default_strategy", "download_file", "read_bytes",
           "temp_sibling", "upload_file", "write_bytes"]

log = logging.getLogger(__name__)

WriteStrategy = Literal["replace", "move", "direct"]

#: Writes are issued (and progress reported) in chunks of this many bytes.
CHUNK_SIZE = 1 << 20
_O_BINARY: int = getattr(os, "O_BINARY", 0)


def default_strategy(fs: AbstractFileSystem) -> WriteStrategy:
    """The atomic-write strategy for ``fs`` (see the module docstring)."""
    if isinstance(fs, LocalFileSystem):
        return "replace"
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return "direct" if backend_for(protocol).atomic_put else "move"


def _part_size(fs: AbstractFileSystem) -> dict[str, int]:
    """s3fs's multipart part size for uploads: the filesystem's block size (``s3_part_size_mb``),
    not its fixed 50 MiB default, so parts and ranged downloads use one configured size."""
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    block = getattr(fs, "default_block_size", None)
    return {"chunksize": int(block)} if "s3" in protocols and block else {}


def temp_sibling(path: str, sep: str = "/") -> str:
    """A unique hidden name next to ``path`` (same folder, so a rename stays cheap)."""
    parent, _, name = path.rpartition(sep)
    return f"{parent}{sep}.{name}.{uuid.uuid4().hex[:12]}.tmp" if parent else f".{name}.{uuid.uuid4().hex[:12]}.tmp"


def _chunks(data: bytes | bytearray | memoryview) -> Iterator[memoryview]:
    view = memoryview(data).cast("B")
    for start in range(0, max(len(view), 1), CHUNK_SIZE):
        yield view[start:start + CHUNK_SIZE]


def write_bytes(fs: AbstractFileSystem, path: str, data: bytes | bytearray | memoryview,
                callback: Callback, strategy: WriteStrategy) -> None:
    """Write ``data`` to ``path`` (a path already stripped of its protocol) atomically.

    ``callback`` gets ``set_size(len(data))`` and one ``relative_update`` per chunk; an
    exception raised by the callback aborts the write like any other failure.
    """
    size = memoryview(data).nbytes
    callback.set_size(size)
    if strategy == "direct":
        fs.pipe_file(path, bytes(data), **_part_size(fs))
        callback.relative_update(size)
        return
    if strategy == "replace":
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        tmp = temp_sibling(path, os.sep)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o666)
            with os.fdopen(fd, "wb") as out:
                for chunk in _chunks(data):
                    out.write(chunk)
                    callback.relative_update(len(chunk))
            os.replace(tmp, path)
        except BaseException:
            _remove_local(tmp)
            raise
        return
    tmp = temp_sibling(path)
    fs.makedirs(fs._parent(path), exist_ok=True)
    try:
        with fs.open(tmp, "wb") as out:
            for chunk in _chunks(data):
                out.write(chunk)
                callback.relative_update(len(chunk))
        fs.mv(tmp, path)
    except BaseException:
        _remove_remote(fs, tmp)
        raise


def read_bytes(fs: AbstractFileSystem, path: str, callback: Callback) -> bytes:
    """Read a whole file in chunks, reporting progress in bytes to ``callback``."""
    with fs.open(path, "rb") as src:
        callback.set_size(getattr(src, "size", None))
        parts: list[bytes] = []
        while chunk := src.read(CHUNK_SIZE):
            parts.append(chunk)
            callback.relative_update(len(chunk))
    return b"".join(parts)


def upload_file(fs: AbstractFileSystem, lpath: str, rpath: str, callback: Callback,
                strategy: WriteStrategy) -> None:
    """Copy the local file ``lpath`` to ``rpath`` on ``fs`` atomically (modes kept on local disk)."""
    if strategy == "direct":
        fs.put_file(lpath, rpath, callback=callback, **_part_size(fs))
    elif strategy == "replace":
        _copy_local(lpath, rpath, callback)
    else:
        tmp = temp_sibling(rpath)
        try:
            fs.put_file(lpath, tmp, callback=callback)
            fs.mv(tmp, rpath)
        except BaseException:
            _remove_remote(fs, tmp)
            raise


def download_file(fs: AbstractFileSystem, rpath: str, lpath: str, callback: Callback) -> None:
    """Copy ``rpath`` on ``fs`` to the local file ``lpath`` through a temporary sibling."""
    if isinstance(fs, LocalFileSystem):
        _copy_local(rpath, lpath, callback)
        return
    tmp = temp_sibling(lpath, os.sep)
    try:
        fs.get_file(rpath, tmp, callback=callback)
        os.replace(tmp, lpath)
    except BaseException:
        _remove_local(tmp)
        raise


def _copy_local(src: str, dst: str, callback: Callback) -> None:
    size = os.path.getsize(src)
    callback.set_size(size)
    parent = os.path.dirname(dst)
    if parent:
        os.makedirs(parent, exist_ok=True)
    tmp = temp_sibling(dst, os.sep)
    try:
        shutil.copyfile(src, tmp)
        shutil.copymode(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        _remove_local(tmp)
        raise
    callback.relative_update(size)


def _remove_local(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:  # the original error matters more; leave a trace of this one
        log.warning("could not remove temporary file %s: %s", path, exc)


def _remove_remote(fs: AbstractFileSystem, path: str) -> None:
    try:
        if fs.exists(path):
            fs.rm_file(path)
    except Exception as exc:  # never mask the error that got us here
        log.warning("could not remove temporary file %s: %s", path, exc)
