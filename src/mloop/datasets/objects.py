"""Content-addressed storage of dataset files in the artifact store.

Layout under the artifact root::

    datasets/objects/ab/cdef0123...        a loose object: one file per distinct content (sha256)
    datasets/packs/<sha256>.pack           small objects, concatenated (its name: sha256 of it)
    datasets/packs/<sha256>.idx            the pack's index: digest -> (offset, size)
    datasets/manifests/ab/cdef0123....json.gz   one manifest per version (see manifest.py)

An object is written once, whatever the number of versions holding it, before any version
refers to it. Files up to :data:`PACK_MAX` go into packs, as git does: creating a file costs
tens of microseconds of metadata work, more than reading, hashing and verifying a small image
together, so a version of 70,000 small files writes a handful of packs of a few MB instead of
70,000 files (and a remote store gets a few big PUTs instead of 70,000 small ones). A pack is
written completely, then its index; an object exists for the store once its index does, so a
killed writer leaves at most an unindexed pack (ignored, its objects written again next time)
and no version ever refers to an object that is not indexed. The indexes of all packs together
are the global index that deduplicates across versions and datasets; it is read once per
operation (48 bytes an object). Two imports running at the same time may both pack the same new
content: both copies are valid and the first index listed wins.

Larger files are loose objects: written to a hidden temporary name and renamed into place;
small ones are created in place with ``O_EXCL`` and a killed writer's partial object is found
by its size and replaced (see :meth:`ObjectStore._put_small`). An object's name is its sha256,
so anyone can check a loose object with ``sha256sum`` (a packed one with
``tail -c +$((offset+1)) PACK | head -c size | sha256sum``).

Local roots take a fast path: plain ``os`` calls, no fsspec per file, and objects created
read-only (``0o444``). Nobody outside the store is ever handed an object's inode: exports and
job stagings get their own copy (a reflink, sharing blocks copy-on-write, where the file system
has one; a plain copy otherwise), because a job running as root ignores file modes and would
otherwise change every version holding the object by writing to its input. Remote roots (``s3://``, ``memory://``, ...) go through the store's fsspec
filesystem, listing the objects once per operation instead of asking about each file.

Integrity: every object written is *sealed*: ``datasets/seals.log`` records its inode, size,
mtime and ctime (a pack's seal stands for all its objects; a pack's name is its sha256).
Exports and stagings check each object against its seal (:meth:`ObjectStore.check`): a stat,
no read, as long as nothing touched the file; any write moves the ctime, which no one can set
back, so a changed file is hashed again in full and, if its bytes no longer match its name,
reported damaged and never copied out. ``mloop dataset verify`` hashes everything in full.

sha256 is hashed by OpenSSL with the SHA extensions where the CPU has them (about 1.3 GB/s per
core here, near this machine's cold-disk read speed), and anyone can check an object with
``sha256sum``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import struct
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from fsspec.callbacks import DEFAULT_CALLBACK

from mloop.artifacts import ArtifactStore, local_path
from mloop.artifacts.atomic import download_file, upload_file
from mloop.artifacts.filesystems import translate_errors
from mloop.errors import ArtifactError

__all__ = ["MANIFESTS", "OBJECTS", "PACKS", "PACK_MAX", "SEALS", "Ingested", "ObjectStore", "Prepared", "clone_file",
           "hash_path"]

OBJECTS = "datasets/objects"
PACKS = "datasets/packs"
MANIFESTS = "datasets/manifests"
#: The seals of local objects and packs (see :class:`_Seals`).
SEALS = "datasets/seals.log"

#: Files up to this size are packed; larger ones are loose objects.
PACK_MAX = 64 << 10
#: A pack is closed (written, then indexed) once it holds this many bytes or objects.
PACK_BYTES = 16 << 20
PACK_OBJECTS = 20_000
_IDX_MAGIC = b"MLOOPIDX1\n"
_IDX_ENTRY = struct.Struct(">32sQQ")  # digest, offset, size

#: ``(size, sha256 hex, bytes)`` of a source file read already (see :mod:`mloop.datasets.reading`).
Prepared = tuple[int, str, bytes]
#: Where a packed object is: ``(pack name, offset, size)``.
Location = tuple[str, int, int]

#: Files up to this size are read in one call and hashed from memory; larger ones stream.
SMALL = 4 << 20
#: Streaming chunk for large files.
CHUNK = 4 << 20
#: Files handed to one worker at a time (amortises the pool's per-task overhead).
BATCH = 256
#: Reader threads: the work is system calls that release the GIL.
WORKERS = max(2, min(8, 2 * (os.cpu_count() or 1)))

_O_BINARY: int = getattr(os, "O_BINARY", 0)


def hash_path(path: str) -> tuple[int, str]:
    """``(size, sha256 hex)`` of a local file, read in 4 MiB chunks (the throughput benchmark's
    measure)."""
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as src:
        while n := src.readinto(buffer):
            digest.update(view[:n])
            size += n
    return size, digest.hexdigest()


@dataclass
class Ingested:
    """What :meth:`ObjectStore.ingest` did for one file."""

    path: str  # the source file (absolute)
    size: int
    hash: str
    stored: bool  # a new object was written


class ObjectStore:
    """The dataset objects (packed and loose) and manifests of one artifact store."""

    def __init__(self, artifacts: ArtifactStore) -> None:
        self.artifacts = artifacts
        root = local_path(artifacts.root)
        self.local_root: str | None = os.path.join(root, *OBJECTS.split("/")) if root is not None else None
        self.local_packs: str | None = os.path.join(root, *PACKS.split("/")) if root is not None else None
        self._known_dirs: set[str] = set()
        self._remote_listing: set[str] | None = None
        self._index: dict[str, Location] | None = None
        self.seals = _Seals(os.path.join(root, *SEALS.split("/")) if root is not None else None)

    # -- locations --------------------------------------------------------------------------
    def object_url(self, digest: str) -> str:
        return self.artifacts.url(OBJECTS, digest[:2], digest[2:])

    def object_path(self, digest: str) -> str | None:
        """The loose object's local path (local roots only)."""
        if self.local_root is None:
            return None
        return os.path.join(self.local_root, digest[:2], digest[2:])

    def pack_url(self, name: str, suffix: str = ".pack") -> str:
        return self.artifacts.url(PACKS, name + suffix)

    def manifest_url(self, digest: str) -> str:
        return self.artifacts.url(MANIFESTS, digest[:2], digest[2:] + ".json.gz")

    # -- queries ----------------------------------------------------------------------------
    def has(self, digest: str) -> bool:
        if digest in self.pack_index():
            return True
        path = self.object_path(digest)
        if path is not None:
            return os.path.exists(path)
        return digest in self._remote_objects()

    def count(self) -> int:
        """How many distinct objects are stored (for reports and tests)."""
        return len(self.all_objects())

    def all_objects(self) -> set[str]:
        """The digest of every stored object, packed or loose."""
        self._index = None
        found = set(self.pack_index())
        if self.local_root is not None:
            if os.path.isdir(self.local_root):
                for prefix in os.listdir(self.local_root):
                    folder = os.path.join(self.local_root, prefix)
                    if len(prefix) == 2 and os.path.isdir(folder):
                        found.update(prefix + n for n in os.listdir(folder) if not n.startswith("."))
            return found
        self._remote_listing = None
        return found | self._remote_objects()

    def pack_index(self) -> dict[str, Location]:
        """digest -> (pack, offset, size) for every packed object (every index read once)."""
        if self._index is None:
            index: dict[str, Location] = {}
            for name, blob in self._read_indexes():
                if not blob.startswith(_IDX_MAGIC) or (len(blob) - len(_IDX_MAGIC)) % _IDX_ENTRY.size:
                    continue  # not an index this mloop wrote whole: its objects count as absent
                for digest, offset, size in _IDX_ENTRY.iter_unpack(memoryview(blob)[len(_IDX_MAGIC):]):
                    index.setdefault(digest.hex(), (name, offset, size))
            self._index = index
        return self._index

    def _read_indexes(self) -> Iterator[tuple[str, bytes]]:
        if self.local_packs is not None:
            try:
                names = sorted(n for n in os.listdir(self.local_packs) if n.endswith(".idx"))
            except FileNotFoundError:
                return
            for n in names:
                with translate_errors(os.path.join(self.local_packs, n), "read"):
                    with open(os.path.join(self.local_packs, n), "rb") as fh:
                        yield n[:-4], fh.read()
            return
        base = self.artifacts.url(PACKS)
        if not self.artifacts.exists(base):
            return
        for url in sorted(self.artifacts.list(base)):
            n = url.rstrip("/").rsplit("/", 1)[-1]
            if n.endswith(".idx"):
                yield n[:-4], self.artifacts.read_bytes(url)

    def _remote_objects(self) -> set[str]:
        if self._remote_listing is None:
            base = self.artifacts.url(OBJECTS)
            listing: set[str] = set()
            if self.artifacts.exists(base):
                for url in self.artifacts.list(base, recursive=True):
                    parts = url.rstrip("/").split("/")
                    if len(parts) >= 2 and len(parts[-2]) == 2 and not parts[-1].startswith("."):
                        listing.add(parts[-2] + parts[-1])
            self._remote_listing = listing
        return self._remote_listing

    # -- writing ----------------------------------------------------------------------------
    def ingest(self, paths: Sequence[str], *, prepared: Mapping[str, Prepared] | None = None,
               progress: Callable[[int], None] | None = None) -> list[Ingested]:
        """Store the content of each local file unless an object already holds it.

        Files up to :data:`PACK_MAX` are packed: each new content is appended to the open pack,
        which is written and indexed when it is full and at the end. Larger files become loose
        objects, hashed while they are copied (so read once); on a remote store uploads run on
        a thread pool, since each mostly waits on the network.

        Args:
            paths: absolute paths of source files.
            prepared: ``{path: (size, sha256, bytes)}`` for files read already (not read again).
            progress: called with the number of files just done (their objects durably
                stored: a pack is reported once written and indexed), from the calling thread.

        Returns:
            One :class:`Ingested` per path, in order.

        Raises:
            ArtifactError: a source file can't be read or the store refused a write.
        """
        prepared = prepared or {}
        index = self.pack_index()
        pack = _PackWriter(self)
        results: list[Ingested | None] = [None] * len(paths)
        large: list[int] = []
        pending = 0
        path = ""
        try:
            for i, path in enumerate(paths):
                got = prepared.get(path)
                if got is None:
                    got = _read_small(path)
                    if got is None:
                        large.append(i)
                        continue
                size, digest, data = got
                new = digest not in index and digest not in pack.entries
                if new:
                    pack.add(digest, data)
                results[i] = Ingested(path, size, digest, new)
                pending += 1
                if pack.full() or (not pack.entries and pending >= BATCH):
                    pack.flush()
                    if progress:
                        progress(pending)
                    pending = 0
            pack.flush()
        except OSError as exc:
            with translate_errors(path, "read or store"):
                raise exc
        if progress and pending:
            progress(pending)
        if large:
            for i, stored in zip(large, self._ingest_large([paths[i] for i in large], progress)):
                results[i] = stored
        self.seals.flush()
        return [r for r in results if r is not None]

    def _ingest_large(self, paths: Sequence[str], progress: Callable[[int], None] | None) -> list[Ingested]:
        results: list[Ingested] = []
        if self.local_root is not None:
            for path in paths:
                with translate_errors(path, "read or store"):
                    results.append(self._ingest_local(path))
                if progress:
                    progress(1)
            return results
        self._remote_objects()  # list once, before the threads start

        def run(path: str) -> Ingested:
            with translate_errors(path, "read"):
                return self._ingest_remote(path)

        with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="mloop-ingest") as pool:
            for got in pool.map(run, paths):
                results.append(got)
                if progress:
                    progress(1)
        return results

    def _write_pack(self, blob: bytes, entries: Sequence[tuple[str, int, int]]) -> str:
        """Write a pack, then its index (the pack's objects exist from then on); its name."""
        name = hashlib.sha256(blob).hexdigest()
        index = _IDX_MAGIC + b"".join(_IDX_ENTRY.pack(bytes.fromhex(d), off, size) for d, off, size in entries)
        if self.local_packs is not None:
            self._write_local(os.path.join(self.local_packs, name + ".pack"), (blob,), seal="pack:" + name)
            self._write_local(os.path.join(self.local_packs, name + ".idx"), (index,))
        else:
            self.artifacts.write_bytes(self.pack_url(name), blob)
            self.artifacts.write_bytes(self.pack_url(name, ".idx"), index)
        known = self.pack_index()
        for digest, off, size in entries:
            known.setdefault(digest, (name, off, size))
        return name

    def _ingest_local(self, path: str) -> Ingested:
        assert self.local_root is not None
        with open(path, "rb", buffering=0) as src:
            size = os.fstat(src.fileno()).st_size
            if size <= SMALL:
                data = src.readall()
                digest = hashlib.sha256(data).hexdigest()
                stored = self._put_small(os.path.join(self.local_root, digest[:2], digest[2:]), data, digest)
                return Ingested(path, len(data), digest, stored)
            # Large: copy to a temporary object while hashing, so the file is read once.
            tmp = os.path.join(self.local_root, f".incoming.{uuid.uuid4().hex}.tmp")
            os.makedirs(self.local_root, exist_ok=True)
            hasher = hashlib.sha256()
            total = 0
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o444)
                with os.fdopen(fd, "wb") as out:
                    while chunk := src.read(CHUNK):
                        hasher.update(chunk)
                        out.write(chunk)
                        total += len(chunk)
                digest = hasher.hexdigest()
                target = os.path.join(self.local_root, digest[:2], digest[2:])
                if os.path.exists(target):
                    os.unlink(tmp)
                    return Ingested(path, total, digest, False)
                self._ensure_dir(os.path.dirname(target))
                os.replace(tmp, target)
                self.seals.add(digest, os.stat(target))
                return Ingested(path, total, digest, True)
            except BaseException:
                _unlink(tmp)
                raise

    def _put_small(self, target: str, data: bytes, digest: str) -> bool:
        """Store a small object; whether it was written (False: already there, whole).

        Written in place with ``O_EXCL`` (one file creation, not a temporary file plus a
        rename: half the metadata work, which dominates for small files). A writer killed
        mid-write leaves an object shorter than its content; the size check below finds it
        and replaces it atomically. An object is referenced by a version only after its write
        returned, so no committed version sees a partial one.
        """
        try:
            if os.stat(target).st_size == len(data):
                return False
            self._write_local(target, (data,), seal=digest)  # left partial by a killed writer
            return True
        except FileNotFoundError:
            pass
        self._ensure_dir(os.path.dirname(target))
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o444)
        except FileExistsError:
            self._write_local(target, (data,), seal=digest)  # another writer is at it: don't trust its bytes yet
            return True
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except BaseException:
            os.close(fd)
            _unlink(target)
            raise
        os.close(fd)
        self.seals.add(digest, os.stat(target))
        return True

    def _ensure_dir(self, folder: str) -> None:
        if folder not in self._known_dirs:
            os.makedirs(folder, exist_ok=True)
            self._known_dirs.add(folder)

    def _write_local(self, target: str, chunks: Iterable[bytes], *, seal: str | None = None) -> None:
        folder = os.path.dirname(target)
        self._ensure_dir(folder)
        tmp = os.path.join(folder, f".{os.path.basename(target)[:16]}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            # Read-only from birth (no one is handed the inode: see clone_file; root ignores modes).
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o444)
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
            os.replace(tmp, target)  # same content if another writer won: replacing is harmless
            if seal is not None:
                self.seals.add(seal, os.stat(target))
        except BaseException:
            _unlink(tmp)
            raise

    def _ingest_remote(self, path: str) -> Ingested:
        size, digest = hash_path(path)
        listing = self._remote_objects()
        if digest in listing:
            return Ingested(path, size, digest, False)
        url = self.object_url(digest)
        if size <= SMALL:
            with open(path, "rb") as src:
                self.artifacts.write_bytes(url, src.read())
        else:
            with translate_errors(url, "upload to"):
                upload_file(self.artifacts.fs, path, self.artifacts.fs._strip_protocol(url), DEFAULT_CALLBACK,
                            self.artifacts.write_strategy)
        listing.add(digest)
        return Ingested(path, size, digest, True)

    # -- reading ----------------------------------------------------------------------------
    def read(self, digest: str) -> bytes:
        loc = self.pack_index().get(digest)
        if loc is not None:
            name, offset, size = loc
            if self.local_packs is not None:
                pack_path = os.path.join(self.local_packs, name + ".pack")
                try:
                    with open(pack_path, "rb") as src:
                        src.seek(offset)
                        data = src.read(size)
                except FileNotFoundError as exc:
                    raise _missing(digest, pack_path) from exc
            else:
                url = self.pack_url(name)
                with translate_errors(url, "read"):
                    data = bytes(self.artifacts.fs.cat_file(self.artifacts.fs._strip_protocol(url), offset,
                                                            offset + size))
            if len(data) != size:
                raise _missing(digest, f"pack {name}")
            return data
        path = self.object_path(digest)
        if path is not None:
            with translate_errors(path, "read"):
                with open(path, "rb") as src:
                    return src.read()
        return self.artifacts.read_bytes(self.object_url(digest))

    def copy_out(self, digest: str, dest: str, *, link: bool) -> bool:
        """Put the object's bytes at the local path ``dest`` (its folder must exist).

        The copy is always a file of its own, never the object's inode (a job writing to it,
        even as root, can't change the store): with ``link``, a reflink (copy-on-write, no
        bytes copied) where the file system has them, else a copy; without, a copy.

        Args:
            link: reflink a loose object when the store is local, if the file system can.

        Returns:
            Whether a reflink was made.

        Raises:
            ArtifactError: the object is missing or can't be copied.
        """
        if digest in self.pack_index():
            _write_file(dest, self.read(digest))
            return False
        path = self.object_path(digest)
        if path is not None:
            try:
                if link:
                    return clone_file(path, dest)
                shutil.copyfile(path, dest)
            except FileNotFoundError as exc:
                raise _missing(digest, path) from exc
            except OSError as exc:
                raise ArtifactError(f"cannot copy {path} to {dest}: {exc}", url=path) from exc
            return False
        url = self.object_url(digest)
        with translate_errors(url, "download"):
            download_file(self.artifacts.fs, self.artifacts.fs._strip_protocol(url), dest, DEFAULT_CALLBACK)
        return False

    def copy_out_many(self, items: Sequence[tuple[str, str]], *, link: bool,
                      progress: Callable[[int], None] | None = None) -> int:
        """:meth:`copy_out` for each ``(digest, dest)``, reading each pack once; how many were reflinked.

        Packs and batches of loose objects are handled on a few threads (the work is mostly
        system calls); ``progress`` is called from the calling thread with the count just done.
        """
        index = self.pack_index()
        by_pack: dict[str, list[tuple[int, int, str]]] = {}
        loose: list[tuple[str, str]] = []
        for digest, dest in items:
            loc = index.get(digest)
            if loc is None:
                loose.append((digest, dest))
            else:
                by_pack.setdefault(loc[0], []).append((loc[1], loc[2], dest))

        def from_pack(name: str) -> tuple[int, int]:
            entries = by_pack[name]
            blob = memoryview(self._read_pack(name))
            for offset, size, dest in entries:
                if offset + size > len(blob):
                    raise _missing(name, f"pack {name} (shorter than its index says)")
                with translate_errors(dest, "write"):
                    _write_file(dest, blob[offset:offset + size])
            return len(entries), 0

        def from_loose(start: int) -> tuple[int, int]:
            chunk = loose[start:start + 512]
            return len(chunk), sum(self.copy_out(d, dest, link=link) for d, dest in chunk)

        linked = 0
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="mloop-export") as pool:
            futures = [pool.submit(from_pack, name) for name in by_pack]
            futures += [pool.submit(from_loose, start) for start in range(0, len(loose), 512)]
            for future in futures:
                n, k = future.result()
                linked += k
                if progress:
                    progress(n)
        return linked

    def _read_pack(self, name: str) -> bytes:
        if self.local_packs is not None:
            path = os.path.join(self.local_packs, name + ".pack")
            try:
                with open(path, "rb") as src:
                    return src.read()
            except FileNotFoundError as exc:
                raise _missing(name, path) from exc
        return self.artifacts.read_bytes(self.pack_url(name))

    # -- integrity --------------------------------------------------------------------------
    def check(self, items: Iterable[tuple[str, int]], *, full: bool = False,
              progress: Callable[[int], None] | None = None) -> dict[str, str]:
        """The damaged objects among ``(digest, size)``: ``{digest: what is wrong}`` (empty: all whole).

        Cheap by default (see the module's note on seals): a stat per loose object and per
        pack; an object whose file changed since it was sealed is hashed in full, and sealed
        again if it is whole. ``full`` hashes everything (``mloop dataset verify``). On a remote
        store the cheap check trusts the objects (nothing there hands out inodes); ``full``
        downloads and hashes them.

        Args:
            progress: called with the number of objects just checked.
        """
        index = self.pack_index()
        damaged: dict[str, str] = {}
        by_pack: dict[str, list[tuple[str, int, int]]] = {}
        loose: dict[str, int] = {}
        for digest, size in items:
            loc = index.get(digest)
            if loc is None:
                loose[digest] = size
            elif loc[2] != size:
                damaged[digest] = f"the pack index says {loc[2]} bytes, the version {size}"
            else:
                by_pack.setdefault(loc[0], []).append((digest, loc[1], loc[2]))
        try:
            for name, entries in by_pack.items():
                unique = list(dict.fromkeys(entries))
                self._check_pack(name, unique, full, damaged)
                if progress:
                    progress(len(unique))
            for digest, size in loose.items():
                self._check_loose(digest, size, full, damaged)
                if progress:
                    progress(1)
        finally:
            self.seals.flush()
        return damaged

    def _check_loose(self, digest: str, size: int, full: bool, damaged: dict[str, str]) -> None:
        path = self.object_path(digest)
        if path is None:
            if full:
                url = self.object_url(digest)
                try:
                    with self.artifacts.fs.open(self.artifacts.fs._strip_protocol(url), "rb") as src:
                        got_size, got = _hash_stream(src)
                except FileNotFoundError:
                    damaged[digest] = "missing from the artifact store"
                    return
                if got_size != size or got != digest:
                    damaged[digest] = _mismatch(got_size, size)
            return
        try:
            fd = os.open(path, os.O_RDONLY | _O_BINARY)
        except FileNotFoundError:
            damaged[digest] = "missing from the artifact store"
            return
        with open(fd, "rb", buffering=0) as src:
            st = os.fstat(fd)
            if st.st_size != size:
                damaged[digest] = _mismatch(st.st_size, size)
                return
            if not full and self.seals.matches(digest, st):
                return
            got_size, got = _hash_stream(src)
        if got_size != size or got != digest:
            damaged[digest] = _mismatch(got_size, size)
        else:
            self.seals.add(digest, st)  # the stat from before the read: a write during it unseals

    def _check_pack(self, name: str, entries: Sequence[tuple[str, int, int]], full: bool,
                    damaged: dict[str, str]) -> None:
        if self.local_packs is None:
            if not full:
                return
            blob = self._read_pack(name)
            st = None
        else:
            path = os.path.join(self.local_packs, name + ".pack")
            try:
                fd = os.open(path, os.O_RDONLY | _O_BINARY)
            except FileNotFoundError:
                for digest, _, _ in entries:
                    damaged[digest] = f"its pack {name} is missing from the artifact store"
                return
            with open(fd, "rb", buffering=0) as src:
                st = os.fstat(fd)
                if not full and self.seals.matches("pack:" + name, st):
                    return
                blob = src.readall()
        if hashlib.sha256(blob).hexdigest() == name:
            if st is not None:
                self.seals.add("pack:" + name, st)
            return
        view = memoryview(blob)
        for digest, offset, size in entries:  # the pack changed: which of these objects did?
            part = view[offset:offset + size]
            if len(part) != size:
                damaged[digest] = f"its pack {name} is shorter than its index says"
            elif hashlib.sha256(part).hexdigest() != digest:
                damaged[digest] = f"its bytes in pack {name} no longer match its sha256"

    # -- manifests --------------------------------------------------------------------------
    def put_manifest(self, digest: str, blob: bytes) -> None:
        url = self.manifest_url(digest)
        if not self.artifacts.exists(url):
            self.artifacts.write_bytes(url, blob)

    def get_manifest(self, digest: str) -> bytes:
        return self.artifacts.read_bytes(self.manifest_url(digest))


def _mismatch(got: int, want: int) -> str:
    if got != want:
        return f"{got} bytes instead of {want}"
    return "its bytes no longer match its sha256"


def _hash_stream(src) -> tuple[int, str]:  # type: ignore[no-untyped-def]  # noqa: ANN001
    digest = hashlib.sha256()
    size = 0
    while chunk := src.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


#: ``ioctl(dest, FICLONE, src)``: Linux's reflink (btrfs, XFS with reflink=1, bcachefs, ...).
_FICLONE = 0x40049409
#: What a file system that can't reflink (or copy_file_range) these two files answers.
_NO_CLONE = frozenset({errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EBADF,
                       errno.EPERM, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)})


def clone_file(src: str, dest: str) -> bool:
    """Make ``dest`` a file of its own with ``src``'s bytes; True if it is a reflink.

    A reflink shares the blocks copy-on-write (instant, no space used until one side is
    written); where the file system has none (ext4, tmpfs, another file system) the bytes are
    copied in the kernel (``copy_file_range``), else read and written. Either way ``dest`` is a
    new inode (mode ``0o644``): writing to it never changes ``src``.
    """
    fin = os.open(src, os.O_RDONLY | _O_BINARY)
    try:
        fout = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_BINARY, 0o644)
        try:
            if _reflink(fin, fout):
                return True
            _copy_fd(fin, fout, os.fstat(fin).st_size)
            return False
        except BaseException:
            os.close(fout)
            fout = -1
            _unlink(dest)
            raise
        finally:
            if fout >= 0:
                os.close(fout)
    finally:
        os.close(fin)


def _reflink(fin: int, fout: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        return False
    try:
        fcntl.ioctl(fout, _FICLONE, fin)
        return True
    except OSError as exc:
        if exc.errno in _NO_CLONE:
            return False
        raise


def _copy_fd(fin: int, fout: int, size: int) -> None:
    done = 0
    copy_range = getattr(os, "copy_file_range", None)
    while copy_range is not None and done < size:
        try:
            n = copy_range(fin, fout, min(size - done, 1 << 30))
        except OSError as exc:
            if done or exc.errno not in _NO_CLONE:
                raise
            break  # not between these two files: plain reads and writes
        if n == 0:
            return  # the source is shorter than it was: copied all there is
        done += n
    if done >= size and copy_range is not None:
        return
    while chunk := os.read(fin, CHUNK):
        view = memoryview(chunk)
        while view:
            view = view[os.write(fout, view):]


class _Seals:
    """``datasets/seals.log``: ``KEY INODE SIZE MTIME_NS CTIME_NS`` per line, the last line of a
    key winning. KEY is an object's digest or ``pack:<name>``. A seal says "these bytes were
    hashed whole when the file had this stat"; any write to the file moves its ctime (which
    user space can't set back), so a matching stat means unchanged bytes short of a disk fault
    (``mloop dataset verify`` hashes everything for that). Appended with ``O_APPEND`` in one
    write per batch (concurrent writers interleave whole lines); a lost or torn line only
    costs one more full hash. Rewritten, atomically, when mostly superseded lines."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._seals: dict[str, tuple[int, int, int, int]] | None = None
        self._lines = 0
        self._pending: list[str] = []
        self._lock = threading.Lock()

    @staticmethod
    def _key(st: os.stat_result) -> tuple[int, int, int, int]:
        return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns

    def _load(self) -> dict[str, tuple[int, int, int, int]]:
        if self._seals is None:
            seals: dict[str, tuple[int, int, int, int]] = {}
            lines = 0
            if self.path is not None:
                try:
                    with open(self.path, "rb") as fh:
                        for line in fh:
                            parts = line.split()
                            lines += 1
                            if len(parts) == 5 and line.endswith(b"\n"):
                                try:
                                    seals[parts[0].decode()] = (int(parts[1]), int(parts[2]), int(parts[3]),
                                                                int(parts[4]))
                                except ValueError:
                                    continue
                except FileNotFoundError:
                    pass
            self._seals, self._lines = seals, lines
        return self._seals

    def matches(self, key: str, st: os.stat_result) -> bool:
        with self._lock:
            return self._load().get(key) == self._key(st)

    def add(self, key: str, st: os.stat_result) -> None:
        if self.path is None:
            return
        value = self._key(st)
        with self._lock:
            seals = self._load()
            if seals.get(key) != value:
                seals[key] = value
                self._pending.append(f"{key} {value[0]} {value[1]} {value[2]} {value[3]}\n")

    def flush(self) -> None:
        with self._lock:
            if self.path is None or not self._pending:
                return
            blob = "".join(self._pending).encode()
            self._lines += len(self._pending)
            self._pending = []
            seals = self._seals or {}
            try:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                if self._lines > 2 * len(seals) + 10_000:
                    tmp = f"{self.path}.{uuid.uuid4().hex[:12]}.tmp"
                    with open(tmp, "w") as fh:
                        fh.writelines(f"{k} {v[0]} {v[1]} {v[2]} {v[3]}\n" for k, v in seals.items())
                    os.replace(tmp, self.path)
                    self._lines = len(seals)
                    return
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _O_BINARY, 0o644)
                try:
                    os.write(fd, blob)
                finally:
                    os.close(fd)
            except OSError:
                pass  # seals are a cache: without them the next check hashes in full


def _missing(digest: str, where: str) -> ArtifactError:
    return ArtifactError(f"dataset object {digest} is missing from the artifact store ({where})",
                         hint="the artifact store was changed outside mloop; restore it from a backup",
                         url=where)


class _PackWriter:
    """The pack being filled by one :meth:`ObjectStore.ingest`."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.buffer = bytearray()
        self.entries: dict[str, tuple[int, int]] = {}

    def add(self, digest: str, data: bytes) -> None:
        self.entries[digest] = (len(self.buffer), len(data))
        self.buffer += data

    def full(self) -> bool:
        return len(self.buffer) >= PACK_BYTES or len(self.entries) >= PACK_OBJECTS

    def flush(self) -> None:
        if self.entries:
            self.store._write_pack(bytes(self.buffer), [(d, off, size) for d, (off, size) in self.entries.items()])
            self.buffer = bytearray()
            self.entries = {}


def _read_small(path: str) -> Prepared | None:
    """``(size, sha256, bytes)`` of a file up to :data:`PACK_MAX`; None for a larger one."""
    fd = os.open(path, os.O_RDONLY | _O_BINARY)
    try:
        size = os.fstat(fd).st_size
        if size > PACK_MAX:
            return None
        data = os.read(fd, size + 1)  # one read; one byte more shows a file that grew
        if len(data) > size:
            data += _read_rest(fd)
    finally:
        os.close(fd)
    return len(data), hashlib.sha256(data).hexdigest(), data


def _write_file(dest: str, data: bytes | memoryview) -> None:
    with open(dest, "wb") as out:
        out.write(data)


def _read_rest(fd: int) -> bytes:
    parts = []
    while chunk := os.read(fd, CHUNK):
        parts.append(chunk)
    return b"".join(parts)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
