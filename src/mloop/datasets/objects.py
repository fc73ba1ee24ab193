"""Content-addressed storage of dataset files in the artifact store.

Layout under the artifact root::

    datasets/objects/ab/cdef0123...        one file per distinct content (sha256 of its bytes)
    datasets/manifests/ab/cdef0123....json.gz   one manifest per version (see manifest.py)

An object is written once, whatever the number of versions holding it, before any version
refers to it. Large objects are written to a hidden temporary name and renamed into place;
small ones are created in place with ``O_EXCL`` and a killed writer's partial object is found
by its size and replaced (see :meth:`ObjectStore._put_small`). An object's name is its sha256, so anyone can
check it with ``sha256sum``.

Local roots take a fast path: plain ``os`` calls, no fsspec per file, and objects created
read-only (``0o444``) so that a job given hard links to them cannot change the store by
accident. Remote roots (``s3://``, ``memory://``, ...) go through the store's fsspec
filesystem, listing the objects once per operation instead of asking about each file.

sha256 is hashed by OpenSSL with the SHA extensions where the CPU has them (about 1.3 GB/s per
core here, near this machine's cold-disk read speed), and anyone can check an object with
``sha256sum``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from fsspec.callbacks import DEFAULT_CALLBACK

from mloop.artifacts import ArtifactStore, local_path
from mloop.artifacts.atomic import download_file, upload_file
from mloop.artifacts.filesystems import translate_errors
from mloop.errors import ArtifactError

__all__ = ["MANIFESTS", "OBJECTS", "Ingested", "ObjectStore", "hash_path"]

OBJECTS = "datasets/objects"
MANIFESTS = "datasets/manifests"

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
    """The dataset objects and manifests of one artifact store."""

    def __init__(self, artifacts: ArtifactStore) -> None:
        self.artifacts = artifacts
        root = local_path(artifacts.root)
        self.local_root: str | None = os.path.join(root, *OBJECTS.split("/")) if root is not None else None
        self._known_dirs: set[str] = set()
        self._remote_listing: set[str] | None = None

    # -- locations --------------------------------------------------------------------------
    def object_url(self, digest: str) -> str:
        return self.artifacts.url(OBJECTS, digest[:2], digest[2:])

    def object_path(self, digest: str) -> str | None:
        """The object's local path (local roots only)."""
        if self.local_root is None:
            return None
        return os.path.join(self.local_root, digest[:2], digest[2:])

    def manifest_url(self, digest: str) -> str:
        return self.artifacts.url(MANIFESTS, digest[:2], digest[2:] + ".json.gz")

    # -- queries ----------------------------------------------------------------------------
    def has(self, digest: str) -> bool:
        path = self.object_path(digest)
        if path is not None:
            return os.path.exists(path)
        return digest in self._remote_objects()

    def count(self) -> int:
        """How many objects are stored (for reports and tests)."""
        return len(self.all_objects())

    def all_objects(self) -> set[str]:
        """The digest of every stored object."""
        if self.local_root is not None:
            found: set[str] = set()
            if os.path.isdir(self.local_root):
                for prefix in os.listdir(self.local_root):
                    folder = os.path.join(self.local_root, prefix)
                    if len(prefix) == 2 and os.path.isdir(folder):
                        found.update(prefix + n for n in os.listdir(folder) if not n.startswith("."))
            return found
        self._remote_listing = None
        return set(self._remote_objects())

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
    def ingest(self, paths: Sequence[str], *, progress: Callable[[int], None] | None = None) -> list[Ingested]:
        """Hash each local file and store its content unless an object already holds it.

        On a local store one thread does it all: per file the work is a few system calls, and
        extra threads only fight over the GIL and the folder locks (measured: slower). Remote
        stores use a thread pool, since each upload mostly waits on the network.

        Args:
            paths: absolute paths of source files.
            progress: called with the number of files just done, from the calling thread.

        Returns:
            One :class:`Ingested` per path, in order.

        Raises:
            ArtifactError: a source file can't be read or the store refused a write.
        """
        results: list[Ingested] = []
        if self.local_root is not None:
            for start in range(0, len(paths), BATCH):
                batch = paths[start:start + BATCH]
                results.extend(self._ingest_local_batch(batch))
                if progress:
                    progress(len(batch))
            return results
        self._remote_objects()  # list once, before the threads start

        def run(start: int) -> list[Ingested]:
            done = []
            for path in paths[start:start + BATCH]:
                with translate_errors(path, "read"):
                    done.append(self._ingest_remote(path))
            return done

        with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="mloop-ingest") as pool:
            for batch_result in pool.map(run, range(0, len(paths), BATCH)):
                results.extend(batch_result)
                if progress:
                    progress(len(batch_result))
        return results

    def _ingest_local_batch(self, batch: Sequence[str]) -> list[Ingested]:
        """The hot loop of a first version: read, hash, store, with nothing per file but that."""
        assert self.local_root is not None
        root, sha256, put = self.local_root, hashlib.sha256, self._put_small
        out: list[Ingested] = []
        path = ""
        try:
            for path in batch:
                fd = os.open(path, os.O_RDONLY | _O_BINARY)
                try:
                    size = os.fstat(fd).st_size
                    large = size > SMALL
                    if not large:
                        data = os.read(fd, size + 1)  # one read; one byte more shows a file that grew
                        if len(data) > size:
                            data += _read_rest(fd)
                finally:
                    os.close(fd)
                if large:
                    out.append(self._ingest_local(path))
                    continue
                digest = sha256(data).hexdigest()
                stored = put(os.path.join(root, digest[:2], digest[2:]), data)
                out.append(Ingested(path, len(data), digest, stored))
        except OSError as exc:
            with translate_errors(path, "read or store"):
                raise exc
        return out

    def _ingest_local(self, path: str) -> Ingested:
        assert self.local_root is not None
        with open(path, "rb", buffering=0) as src:
            size = os.fstat(src.fileno()).st_size
            if size <= SMALL:
                data = src.readall()
                digest = hashlib.sha256(data).hexdigest()
                stored = self._put_small(os.path.join(self.local_root, digest[:2], digest[2:]), data)
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
                return Ingested(path, total, digest, True)
            except BaseException:
                _unlink(tmp)
                raise

    def _put_small(self, target: str, data: bytes) -> bool:
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
            self._write_local(target, (data,))  # left partial by a killed writer
            return True
        except FileNotFoundError:
            pass
        self._ensure_dir(os.path.dirname(target))
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o444)
        except FileExistsError:
            self._write_local(target, (data,))  # another writer is at it: don't trust its bytes yet
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
        return True

    def _ensure_dir(self, folder: str) -> None:
        if folder not in self._known_dirs:
            os.makedirs(folder, exist_ok=True)
            self._known_dirs.add(folder)

    def _write_local(self, target: str, chunks: Iterable[bytes]) -> None:
        folder = os.path.dirname(target)
        self._ensure_dir(folder)
        tmp = os.path.join(folder, f".{os.path.basename(target)[:16]}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            # Read-only from birth: hard links handed to jobs can't write through to the store.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o444)
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
            os.replace(tmp, target)  # same content if another writer won: replacing is harmless
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
        path = self.object_path(digest)
        if path is not None:
            with translate_errors(path, "read"):
                with open(path, "rb") as src:
                    return src.read()
        return self.artifacts.read_bytes(self.object_url(digest))

    def copy_out(self, digest: str, dest: str, *, link: bool) -> bool:
        """Put the object's bytes at the local path ``dest`` (its folder must exist).

        Args:
            link: hard-link when the store is local and on the same filesystem (falls back
                to a copy); a copy otherwise.

        Returns:
            Whether a hard link was made.

        Raises:
            ArtifactError: the object is missing or can't be copied.
        """
        path = self.object_path(digest)
        if path is not None:
            if link:
                try:
                    os.link(path, dest)
                    return True
                except FileNotFoundError as exc:
                    raise _missing(digest, path) from exc
                except OSError:
                    pass  # another filesystem, or links not allowed: copy instead
            try:
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

    # -- manifests --------------------------------------------------------------------------
    def put_manifest(self, digest: str, blob: bytes) -> None:
        url = self.manifest_url(digest)
        if not self.artifacts.exists(url):
            self.artifacts.write_bytes(url, blob)

    def get_manifest(self, digest: str) -> bytes:
        return self.artifacts.read_bytes(self.manifest_url(digest))


def _missing(digest: str, where: str) -> ArtifactError:
    return ArtifactError(f"dataset object {digest} is missing from the artifact store ({where})",
                         hint="the artifact store was changed outside mloop; restore it from a backup",
                         url=where)


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
