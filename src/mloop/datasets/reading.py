"""Reading new source files once: size, sha256, image check, and (small files) the bytes to store.

A first version of a folder of tens of thousands of small images is CPU-bound: per file an
open and a read, a sha256, and the image check (PNG chunk CRCs and inflate). This module does
all three from one read of each file, on every core: a ``fork`` process pool (spawn would
re-import the caller's ``__main__``) takes chunks of a few thousand files and streams back,
per file, what the version build needs. Threads would not help: for files of a few hundred
bytes hashlib and zlib hold the GIL.

Small folders (fewer than :data:`PARALLEL_MIN` files to read), machines with one core, and
platforms without ``fork`` are read serially in the calling process; ``MLOOP_DATASET_WORKERS``
sets the number of processes (``1``: serial).

The bytes of files up to :data:`~mloop.datasets.objects.PACK_MAX` come back with their hash so
that storing them (in a pack, see :mod:`mloop.datasets.objects`) reads nothing again; at most
:data:`KEEP_BYTES` are kept in memory, later files are read again when stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field

from mloop.datasets.formats._common import is_image, verify_image, verify_image_bytes
from mloop.datasets.objects import _O_BINARY, PACK_MAX, _read_rest

__all__ = ["KEEP_BYTES", "PARALLEL_MIN", "FileRead", "SourceReads", "read_sources", "worker_count"]

#: Fewer files than this are read in the calling process (a pool costs ~50 ms to start).
PARALLEL_MIN = 2000
#: Files per task handed to a worker (bounds: the pool's per-task overhead vs. load balance).
CHUNK_MIN, CHUNK_MAX = 250, 4000
#: Bytes of small files kept in memory for storing; past this they are read again.
KEEP_BYTES = 512 << 20


#: ``(size, sha256 hex or None, bytes or None)`` of a file read: the hash and the bytes of files up
#: to ``PACK_MAX`` (the bytes within :data:`KEEP_BYTES`); larger files are hashed while they are
#: stored, so that they are read once.
FileRead = tuple[int, str | None, bytes | None]


@dataclass
class SourceReads:
    """What reading the new files of a source found.

    Attributes:
        files: relative path -> :data:`FileRead`.
        verified: relative path -> why it is not a usable image, or None, for each file checked
            as an image (as :func:`mloop.datasets.formats.scan` takes it).
    """

    files: dict[str, FileRead] = field(default_factory=dict)
    verified: dict[str, str | None] = field(default_factory=dict)


#: What a worker sends back for a chunk, column by column (a tuple per file pickles 10x slower):
#: relative paths, sizes, hashes, bytes, and the problems of the checked files that have one.
_Chunk = tuple[list[str], list[int], list[str | None], list[bytes | None], dict[str, str]]


def worker_count() -> int:
    """Processes to read with: ``MLOOP_DATASET_WORKERS``, else the CPUs this process may use."""
    value = os.environ.get("MLOOP_DATASET_WORKERS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def read_sources(files: Sequence[tuple[str, str]], *, check: Callable[[str], bool] = is_image,
                 progress: Callable[[int], None] | None = None, workers: int | None = None) -> SourceReads:
    """Read each ``(relative path, absolute path)``: size, hash, bytes, and the image check.

    Args:
        files: the files to read.
        check: which relative paths to check as images (default: by their suffix).
        progress: called with the number of files just read, in the calling thread.
        workers: processes (default :func:`worker_count`); 1 reads in this process.

    Raises:
        OSError: a file can't be opened or read (it vanished, permissions): the caller reports
            it with the path, which ``OSError.filename`` holds.
    """
    n = workers if workers is not None else worker_count()
    todo = [(rel, path, check(rel)) for rel, path in files]
    out = SourceReads()
    found, verified = out.files, out.verified
    kept = 0
    # closing(): an interrupted caller (an exception from progress, Ctrl-C) ends the pool at once.
    with contextlib.closing(_results(todo, n)) as results:
        for rels, sizes, hashes, datas, problems in results:
            if kept > KEEP_BYTES:
                datas = [None] * len(datas)
            else:
                kept += sum(sizes)
            found.update(zip(rels, zip(sizes, hashes, datas)))
            if progress is not None:
                progress(len(rels))
            if problems:
                verified.update(problems)
    for rel, _, checked in todo:
        if checked and rel not in verified:
            verified[rel] = None
    return out


def _results(todo: list[tuple[str, str, bool]], workers: int) -> Generator[_Chunk, None, None]:
    if workers <= 1 or len(todo) < PARALLEL_MIN or sys.platform != "linux":
        for start in range(0, len(todo), CHUNK_MIN):
            yield _read_chunk(todo[start:start + CHUNK_MIN])
        return
    size = max(CHUNK_MIN, min(CHUNK_MAX, len(todo) // (workers * 4) + 1))
    chunks = [todo[start:start + size] for start in range(0, len(todo), size)]
    ctx = multiprocessing.get_context("fork")
    # The pool is terminated on the way out, also when the caller is interrupted.
    with ctx.Pool(min(workers, len(chunks)), initializer=_ignore_sigint) as pool:
        yield from pool.imap_unordered(_read_chunk, chunks)


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the parent, which ends the pool (no traceback per worker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _read_chunk(items: list[tuple[str, str, bool]]) -> _Chunk:
    """The worker: read, hash and check each file (runs in a pool process or in the caller)."""
    sha256, limit = hashlib.sha256, PACK_MAX
    rels: list[str] = []
    sizes: list[int] = []
    hashes: list[str | None] = []
    datas: list[bytes | None] = []
    problems: dict[str, str] = {}
    for rel, path, check in items:
        fd = os.open(path, os.O_RDONLY | _O_BINARY)
        try:
            size = os.fstat(fd).st_size
            if size <= limit:
                data = os.read(fd, size + 1)  # one read; one byte more shows a file that grew
                if len(data) > size:
                    data += _read_rest(fd)
            else:
                data = None
        finally:
            os.close(fd)
        rels.append(rel)
        if data is None:
            sizes.append(size)
            hashes.append(None)
            datas.append(None)
            reason = verify_image(path) if check else None
        else:
            sizes.append(len(data))
            hashes.append(sha256(data).hexdigest())
            datas.append(data)
            reason = verify_image_bytes(data) if check else None
        if reason is not None:
            problems[rel] = reason
    return rels, sizes, hashes, datas, problems

