"""Versioned datasets: the functions the CLI, the SDK's dataset steps and the REST API call.

A version is made in three stages, in this order, so an interrupted create or import leaves no
partial version visible and loses nothing committed before it:

1. every file's content goes to the artifact store as a content-addressed object (a file
   already stored, by this or any other version, is not stored again);
2. the manifest (files and samples) goes to the artifact store as one more object;
3. the version row is committed to the metadata store in one transaction, numbering locked
   per dataset. Until then nobody sees the version; objects left by a crash are reused by the
   next attempt.

A second machine pointed at the same database and artifact store reads and exports every
version (DVC's push/pull, without a separate tool).
"""

from __future__ import annotations

import contextlib
import gc
import operator
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mloop.datasets.cache import Entry, HashCache, files_fingerprint
from mloop.datasets.manifest import MAX_DEPTH, FileEntry, Manifest, SampleEntry
from mloop.datasets.objects import ObjectStore
from mloop.datasets.reading import SourceReads
from mloop.datasets.source import SourceFile, walk_stats
from mloop.datasets.split import EVAL, TRAIN, check_ratio, split_samples
from mloop.errors import DatasetError, NotFoundError
from mloop.context import Context
from mloop.store.datasets import DatasetRecord, DatasetRepository, DatasetVersionRecord

__all__ = [
    "CLASS_FOLDER_FORMATS", "DatasetDiff", "LabelChange", "Progress", "check_dataset_name", "create_dataset",
    "diff_versions", "export_version", "get_version", "import_data", "list_datasets", "list_versions",
    "cached_manifest", "load_manifest", "materialize", "parse_ref", "relabel", "release_version",
    "DamagedFile", "VerifyReport", "ensure_intact", "verify_version",
]

#: ``progress(phase, done, total)``: phases are ``"checking"`` (verifying new files) and
#: ``"storing"`` (hashing and storing them), then ``"exporting"`` for export/materialize.
Progress = Callable[[str, int, int], None]

#: The first field of a tuple (a file's path, a sample's id), as a sort key that runs in C.
_first = operator.itemgetter(0)
_third = operator.itemgetter(2)  # a FileEntry's hash

#: Image-classification formats, materialised as ``<split>/<label>/<file>``.
CLASS_FOLDER_FORMATS = frozenset({"ModelArts imageNet 1.0", "ModelArts image classification 1.0"})
_SINGLE_FILE_FORMATS = frozenset({"manifest", "ModelArts text classfication combine 1.0"})

#: Dataset names (reference 2.1): Chinese characters, letters, digits, '_' or '-', 1-100 long.
DATASET_NAME_RE = re.compile(r"^[A-Za-z0-9_\-\u4e00-\u9fff]{1,100}$")
#: Problems listed in a version's stats (all of them are in the error or the CLI report).
_MAX_REPORTED = 1000


# -- names and references -------------------------------------------------------------------
def check_dataset_name(name: str) -> str:
    """``name`` if it is a valid dataset name.

    Raises:
        DatasetError: it is empty, longer than 100 characters, or has other characters than
            letters, digits, Chinese characters, ``_`` and ``-``.
    """
    if not isinstance(name, str) or not DATASET_NAME_RE.fullmatch(name):
        raise DatasetError(f"dataset name {name!r} is not allowed",
                           hint="use 1 to 100 letters, digits, Chinese characters, '_' or '-'", dataset=str(name))
    return name


def parse_ref(ref: str) -> tuple[str, str | None]:
    """``"digits:v3"`` -> ``("digits", "v3")``; ``"digits"`` -> ``("digits", None)`` (the latest)."""
    name, sep, version = ref.partition(":")
    return name, (version or None) if sep else None


# -- reading --------------------------------------------------------------------------------
def _repo(backend: Context) -> DatasetRepository:
    repo: DatasetRepository = backend.store.datasets
    return repo


def _objects(backend: Context) -> ObjectStore:
    return ObjectStore(backend.artifacts)


def _cache(backend: Context) -> HashCache:
    return HashCache(backend.settings.home_path / "cache" / "dataset-hashes.sqlite")


def get_version(backend: Context, name: str, version: str | None = None) -> DatasetVersionRecord:
    """A version of ``name``: ``"v3"``, ``"3"`` or a release's name; None for the latest.

    Raises:
        NotFoundError: no such dataset or version.
    """
    return _repo(backend).get_version(name, version)


def list_versions(backend: Context, name: str) -> list[DatasetVersionRecord]:
    """Every version of ``name``, oldest first (NotFoundError for an unknown dataset)."""
    return _repo(backend).list_versions(name)


def list_datasets(backend: Context) -> list[DatasetRecord]:
    """Every dataset, by name, with its latest version."""
    return _repo(backend).list_datasets()


def load_manifest(backend: Context, record: DatasetVersionRecord) -> Manifest:
    """The manifest of a version, read from the artifact store and checked against its hash.

    Raises:
        ArtifactError: the manifest is missing from the artifact store.
        DatasetError: its content doesn't match the hash the version row records.
    """
    what = f"{record.dataset_name}:{record.version}"
    chain = [_read_manifest(backend, record.manifest_hash, what)]
    # An increment names the manifest it adds to (see mloop.datasets.manifest): read down to a
    # whole one, each checked against its hash, then apply the increments from the bottom up.
    while chain[-1].base is not None:
        if len(chain) > MAX_DEPTH:
            raise DatasetError(f"the manifest of {what} is more than {MAX_DEPTH} increments deep",
                               hint="the artifact store was changed outside mloop; restore it from a backup")
        chain.append(_read_manifest(backend, chain[-1].base, what))
    manifest = chain.pop()
    while chain:
        manifest = chain.pop().applied_to(manifest)
    return manifest


#: Manifests read lately by this process (immutable, named by their hash): a server serving a
#: page of a version's pictures, or an engine polling a labeling task, reads each once.
_recent: dict[str, Manifest] = {}
_recent_lock = threading.Lock()


def cached_manifest(backend: Context, record: DatasetVersionRecord) -> Manifest:
    """:func:`load_manifest`, kept for the last 8 manifests read here. Shared: don't mutate it."""
    with _recent_lock:
        found = _recent.get(record.manifest_hash)
    if found is not None:
        return found
    manifest = load_manifest(backend, record)
    with _recent_lock:
        if len(_recent) >= 8:
            _recent.pop(next(iter(_recent)))
        _recent[record.manifest_hash] = manifest
    return manifest


def _read_manifest(backend: Context, digest: str, what: str) -> Manifest:
    """One stored manifest object (whole or an increment), checked against its hash."""
    import gzip
    import hashlib

    blob = _objects(backend).get_manifest(digest)
    raw = gzip.decompress(blob)
    if hashlib.sha256(raw).hexdigest() != digest:
        raise DatasetError(f"the manifest of {what} is damaged (its content doesn't match {digest})",
                           hint="the artifact store was changed outside mloop; restore it from a backup")
    return Manifest.decode(raw)


# -- making versions from a folder ----------------------------------------------------------
def create_dataset(backend: Context, name: str, source: str | os.PathLike[str], *, format: str = "folder",
                   classes: Sequence[str] | None = None, clean: bool = False, description: str = "",
                   progress: Progress | None = None, params: Mapping[str, Any] | None = None) -> DatasetVersionRecord:
    """Make version ``v1`` of a new dataset from a source folder.

    Args:
        name: the dataset's name (1-100 letters, digits, Chinese characters, ``_``, ``-``).
        source: the folder (or, for the manifest and text formats, the file) to read.
        format: an import format: canonical name, alias (``folder``, ``voc``, ``yolo``,
            ``manifest``, ``text``, ...) or ``AnnotationFormatEnum`` member.
        classes: the declared classes (labels outside them are refused).
        clean: leave corrupt images and bad annotations out (listed in ``stats["problems"]``)
            instead of failing.
        description: the dataset's description.
        progress: ``progress(phase, done, total)`` while files are checked and stored.
        params: the format's parameters (``AnnotationFormatParameters``: for the text format,
            ``sample_label_separator`` and ``label_separator``).

    Returns:
        The new version (``stats`` says how many files were read, stored or found in the
        re-read cache).

    Raises:
        DatasetError: bad name, missing or empty source, or the dataset already has versions.
        DatasetFormatError: the source doesn't fit the format (every problem listed).
    """
    check_dataset_name(name)
    try:
        existing = _repo(backend).get(name)
    except NotFoundError:
        existing = None
    if existing is not None and existing.latest_version is not None:
        raise DatasetError(f"dataset {name!r} already exists (latest version {existing.latest_version})",
                           hint=f"add data with: mloop dataset import {name} --from {os.fspath(source)}",
                           dataset=name)
    with _gc_paused():
        manifest, stats, _ = _build(backend, name, source, format=format, classes=classes, clean=clean,
                                    params=params,
                                    base=None, base_version=None, replace=True, progress=progress)
        assert manifest is not None  # only a base version can be found unchanged
        record = _commit(backend, name, manifest, stats, description=description, create=True,
                         dataset_description=description)
        _remember_files(backend, record.manifest_hash, manifest)
        return record


def import_data(backend: Context, name: str, source: str | os.PathLike[str], *, format: str = "folder",
                classes: Sequence[str] | None = None, clean: bool = False, create: bool = False,
                progress: Progress | None = None, replace: bool = False,
                description: str = "", params: Mapping[str, Any] | None = None) -> DatasetVersionRecord:
    """Make the next version of ``name``: the latest version plus what ``source`` adds or changes.

    Files and samples at paths the latest version already has are replaced by the source's;
    everything else is kept. With ``replace``, the new version is exactly the source (what is
    no longer there is removed): re-versioning a folder, as ``dvc add`` does. Files unchanged
    since they were last read on this machine (same path, size, mtime and inode) are not read
    again, so the cost follows the change, not the folder.

    When nothing changed no version is made: the latest version is returned, with ``stats``
    describing this check (``stats["unchanged"]`` is true).

    Args:
        create: make the dataset (as :func:`create_dataset`) if it doesn't exist.
        replace: the new version holds exactly the source's files and samples.
        Others: as :func:`create_dataset`.

    Raises:
        NotFoundError: no such dataset and ``create`` is false.
        DatasetConflictError: another version was committed while this one was made (retry).
        DatasetError, DatasetFormatError: as :func:`create_dataset`.
    """
    check_dataset_name(name)
    try:
        latest: DatasetVersionRecord | None = _repo(backend).get_version(name)
    except NotFoundError:
        if not create:
            raise
        latest = None
    if latest is None:
        return create_dataset(backend, name, source, format=format, classes=classes, clean=clean,
                              description=description, progress=progress, params=params)
    with _gc_paused():
        base = _Base(backend, latest)
        manifest, stats, fingerprint = _build(backend, name, source, format=format, classes=classes,
                                              clean=clean, params=params, base=base, base_version=latest.version,
                                              replace=replace, progress=progress)
        if manifest is None or (manifest.base is None and _same_data(base.manifest, manifest)):
            return latest.model_copy(update={"stats": {**stats, "unchanged": True}})
        record = _commit(backend, name, manifest, stats, description=description, expect_latest=True,
                         on=latest)
        _remember_files(backend, record.manifest_hash, manifest, fingerprint)
        return record


class _Base:
    """The version an import builds on; its manifest is read only when first needed (a folder
    found unchanged by its files' fingerprint never needs it)."""

    def __init__(self, backend: Context, record: DatasetVersionRecord) -> None:
        self.backend = backend
        self.record = record
        self._manifest: Manifest | None = None

    @property
    def manifest(self) -> Manifest:
        if self._manifest is None:
            self._manifest = load_manifest(self.backend, self.record)
        return self._manifest


def _remember_files(backend: Context, manifest_hash: str, manifest: Manifest,
                    fingerprint: str | None = None) -> None:
    """Remember the fingerprint of a committed version's files (see :mod:`mloop.datasets.cache`);
    ``fingerprint`` when the caller has it (an increment's manifest lists only the new files)."""
    with _cache(backend) as cache:
        if fingerprint is None:
            files = manifest.files
            fingerprint = files_fingerprint(zip(map(_first, files), map(_third, files)))
        cache.remember_files(manifest_hash, fingerprint)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a version is built.

    A build makes hundreds of thousands of small tuples and strings that live until it ends and
    hold no reference cycles; the collector would walk the growing heap again and again (measured:
    a third of the manifest encoding). Collection resumes, as it was, when the block exits.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _build(backend: Context, name: str, source: str | os.PathLike[str], *, format: str,
           classes: Sequence[str] | None, clean: bool, base: _Base | None, base_version: str | None,
           replace: bool, progress: Progress | None,
           params: Mapping[str, Any] | None = None) -> tuple[Manifest | None, dict[str, Any], str | None]:
    """Scan ``source``, store its new contents, and return the new manifest with build stats
    (and, for an increment, the fingerprint of the new version's files, which its manifest
    does not list).

    The manifest is None when ``source`` is found unchanged without scanning it: every file was
    in the re-read cache and ``base`` holds each at the same path with the same hash (a
    scan is a function of the files' paths and bytes, so it would find ``base``'s samples).
    """
    from mloop.datasets.formats import IMAGENET, canonical_format, scan
    from mloop.datasets.formats._common import image_pixel_limit

    started = time.perf_counter()
    started_ns = time.time_ns()
    fmt = canonical_format(format)
    src = Path(os.fspath(source)).expanduser()
    if not src.exists():
        raise DatasetError(f"dataset source {src} does not exist",
                           hint="give the folder that holds the data (--from PATH)", source=str(src))
    single_file: str | None = None
    if src.is_file():
        if fmt not in _SINGLE_FILE_FORMATS:
            raise DatasetError(f"dataset source {src} is a file, but the {fmt!r} format reads a folder",
                               hint="give the folder that holds the data", source=str(src))
        root, single_file = src.resolve().parent, src.name
    else:
        root = src.resolve()
    if base is not None and base.record.format != fmt:
        raise DatasetError(f"dataset {name!r} is in the {base.record.format!r} format, not {fmt!r}",
                           hint=f"import with --format {base.record.format!r}", dataset=name)

    empty_dirs: list[str] = []
    walked = walk_stats(str(root), empty_dirs)
    if not walked:
        raise DatasetError(f"dataset source {src} is empty (no files outside hidden folders)",
                           hint="put the data in the folder, or give the right folder", source=str(src))
    with _cache(backend) as cache:
        cached = cache.load(str(root))
        known: dict[str, str] = {}  # relative path -> sha256, for files unchanged since last read
        valid: dict[str, Entry] = {}
        unread: set[str] = set()
        for rel, _, size, mtime_ns, inode in walked:
            hit = cached.get(rel)
            if hit is not None and hit[0] == size and hit[1] == mtime_ns and hit[2] == inode:
                known[rel] = hit[3]
                valid[rel] = hit
            else:
                unread.add(rel)
        if (base is not None and not unread and single_file is None
                and _holds(base, cache, known, replace, classes)):
            return None, {"source": str(src), "files": len(walked), "cache_hits": len(walked), "read": 0,
                          "stored_objects": 0, "stored_bytes": 0, "excluded": 0, "problems": [],
                          "problem_count": 0, "seconds": round(time.perf_counter() - started, 3)}, None
        # An increment: the folder holds the base version's files, unchanged, plus new ones. Its
        # manifest then lists only the new files and samples (schema 3, on the base's manifest),
        # and the base's manifest is never read. Only in the folder format, where a sample is a
        # function of its own file's path, and on a base whose samples are what a scan of its
        # files finds (not a release's split, not relabelled): then the result is the version a
        # whole build would make.
        increment = (base is not None and not replace and bool(unread) and single_file is None
                     and classes is None and fmt == IMAGENET and base.record.release is None
                     and (base.record.stats or {}).get("from_scan") is True and _depth(base.record) < MAX_DEPTH
                     and cache.files_of(base.record.manifest_hash) == files_fingerprint(known.items()))
        # Then only the new files are read, stored and listed.
        listed = [f for f in walked if f[0] in unread] if increment else walked

        checked = stored = 0
        to_store = 0
        objects = _objects(backend)

        def on_checked(n: int) -> None:
            nonlocal checked
            checked += n
            if progress:
                progress("checking", checked, len(unread))

        def on_stored(n: int) -> None:
            nonlocal stored
            stored += n
            if progress:
                progress("storing", stored, to_store)

        # Files known to the cache were verified when first read: only the others are read, each
        # once, on every core: size, sha256, the image check, and the bytes of small files to
        # store (see mloop.datasets.reading). The format scan then uses those checks.
        # Images declaring more pixels than the max_image_pixels setting are refused from their
        # header, before any of their data is inflated (decompression bombs).
        with image_pixel_limit(getattr(backend.settings, "max_image_pixels", None)):
            reads = _read_unread([(f[0], f[1]) for f in listed if f[0] in unread], on_checked)
            result = scan(src, fmt, classes=list(classes) if classes is not None else None, clean=clean,
                          params=dict(params) if params else None, only=unread, progress=on_checked,
                          files=[f[0] for f in walked], verified=reads.verified,
                          empty_dirs=empty_dirs, samples_for=unread if increment else None)

        by_rel = {f[0]: f for f in walked}
        if increment:
            samples = SampleEntry.from_samples(result.samples)  # the new files' only
            excluded = result.excluded
            files = [f for f in listed if f[0] not in excluded] if excluded else listed
        else:
            samples = SampleEntry.from_samples(result.samples)
        needed = {p for s in samples for p in (s.files or (s.file,))}  # each sample's all_files
        missing = sorted(needed - by_rel.keys())
        if missing:
            raise DatasetError(f"the {fmt!r} format names files that are not in {src}: {', '.join(missing[:5])}",
                               hint="files must be inside the source folder and not hidden", source=str(src))
        if increment:
            pass  # files: the new ones, above
        elif single_file is not None:
            files = [by_rel[rel] for rel in sorted(needed | {single_file})]
        elif result.excluded:
            files = [by_rel[rel] for rel in sorted(by_rel.keys() - result.excluded)]
        else:
            files = walked  # every file, sorted already

        # Read what the cache doesn't know; a known hash also needs its object in this store
        # (the cache is per machine, the store may be another one than last time).
        in_base = {f.hash for f in base.manifest.files} if base is not None and not increment else set()
        to_read: list[SourceFile] = []
        for f in files:
            digest = known.get(f[0])
            if digest is None or (digest not in in_base and not objects.has(digest)):
                to_read.append(f)
        to_store = len(to_read)
        if progress:
            progress("storing", 0, to_store)
        prepared: dict[str, tuple[int, str, bytes]] = {}
        read_files = reads.files
        for f in to_read:
            was_read = read_files.get(f[0])
            if was_read is not None:
                size_read, hash_read, data_read = was_read
                if hash_read is not None and data_read is not None:
                    prepared[f[1]] = (size_read, hash_read, data_read)
        done = dict(zip((f[0] for f in to_read),
                        objects.ingest([f[1] for f in to_read], prepared=prepared, progress=on_stored)))
        del prepared, reads, read_files
        sizes: dict[str, int] = {}
        fresh: dict[str, Entry] = {}
        for rel, _, size, mtime_ns, inode in to_read:
            got = done[rel]
            known[rel] = got.hash
            sizes[rel] = got.size
            if got.size == size:  # unchanged between the walk and the read: safe to remember
                fresh[rel] = (size, mtime_ns, inode, got.hash)
        # Left-out (corrupt) files are not remembered: a cache hit means "verified".
        cache.save(str(root), valid, fresh, started_ns=started_ns)
        ingested = list(done.values())  # in the order of files

    entries = [FileEntry(rel, sizes.get(rel, size), known[rel]) for rel, _, size, _, _ in files]
    new_classes = set(result.classes)
    stats: dict[str, Any]
    if increment:
        assert base is not None
        stats = {
            "source": str(src), "files": len(valid) + len(entries), "cache_hits": len(valid),
            "read": len(ingested), "stored_objects": sum(1 for g in ingested if g.stored),
            "stored_bytes": sum(g.size for g in ingested if g.stored), "excluded": len(result.excluded),
            "problems": [{"path": p.path, "reason": p.reason} for p in result.problems[:_MAX_REPORTED]],
            "problem_count": len(result.problems), "seconds": round(time.perf_counter() - started, 3),
        }
        if not entries:  # every new file was left out (--clean): the base version holds this data
            return None, stats, None
        depth = _depth(base.record) + 1
        stats["increment_depth"], stats["from_scan"] = depth, True
        # The new version's files, for the "nothing changed" check of the next import: ``known``
        # holds the base's (exactly, by the fingerprint) and now the new ones read above.
        every = sorted(known.items(), key=_first)
        manifest = Manifest(dataset=name, format=fmt, files=entries, samples=samples,
                            classes=sorted(new_classes | set(base.record.classes)), parent=base_version,
                            base=base.record.manifest_hash, depth=depth)
        return manifest, stats, files_fingerprint(every)
    # The scan's samples are sorted by id and unsplit; kept ones are merged in and sorted again.
    # Sorted by path and by id: the first field of each tuple (paths and ids are unique).
    # Whether every sample is what a scan of its files finds (kept samples: if the base's were).
    from_scan = True
    if base is not None and not replace:
        replaced = set(map(_first, entries))
        kept_files = [e for e in base.manifest.files if e.path not in replaced]
        if kept_files:
            from_scan = (base.record.stats or {}).get("from_scan") is True and base.record.release is None
            new_ids = set(map(_first, samples))
            kept_samples = [_unsplit(s) for s in base.manifest.samples
                            if s.id not in new_ids and s.file not in replaced
                            and not (s.files and any(p in replaced for p in s.files))]
            if kept_samples:
                samples = sorted(kept_samples + samples, key=_first)
            entries = kept_files + entries
        # else: the source has every file of base, so no sample of base stays (a sample's files
        # are among its version's files), and base's samples need not even be decoded.
        new_classes |= set(base.manifest.classes)
    manifest = Manifest(dataset=name, format=fmt, files=sorted(entries, key=_first), samples=samples,
                        classes=sorted(new_classes), parent=base_version)
    stats = {
        "source": str(src), "files": len(files),
        "cache_hits": sum(map(valid.__contains__, (f[0] for f in files))),
        "read": len(ingested), "stored_objects": sum(1 for g in ingested if g.stored),
        "stored_bytes": sum(g.size for g in ingested if g.stored), "excluded": len(result.excluded),
        "problems": [{"path": p.path, "reason": p.reason} for p in result.problems[:_MAX_REPORTED]],
        "problem_count": len(result.problems), "seconds": round(time.perf_counter() - started, 3),
        "from_scan": from_scan,
    }
    return manifest, stats, None


def _depth(record: DatasetVersionRecord) -> int:
    """How many increments lead from ``record``'s manifest down to a whole one (0: whole)."""
    depth = (record.stats or {}).get("increment_depth", 0)
    return depth if isinstance(depth, int) and not isinstance(depth, bool) and depth > 0 else 0


def _read_unread(files: list[tuple[str, str]], progress: Callable[[int], None]) -> SourceReads:
    """:func:`~mloop.datasets.reading.read_sources`, with a file that can't be read reported by path."""
    from mloop.artifacts.filesystems import translate_errors
    from mloop.datasets.reading import read_sources

    try:
        return read_sources(files, progress=progress)
    except OSError as exc:
        with translate_errors(str(exc.filename or "a source file"), "read"):
            raise exc


def _holds(base: _Base, cache: HashCache, known: dict[str, str], replace: bool,
           classes: Sequence[str] | None) -> bool:
    """Whether ``base`` already holds every file of ``known`` (path -> hash) at the same path with
    the same hash (and, with ``replace``, no other file), and every declared class.

    ``known`` is in path order. When its fingerprint is the one the cache remembers for
    ``base``'s files, ``base`` holds exactly these files, and its manifest is not read.
    """
    if classes is not None and not set(classes) <= set(base.record.classes):
        return False
    fingerprint = files_fingerprint(known.items())
    if cache.files_of(base.record.manifest_hash) == fingerprint:
        return True
    files = base.manifest.files
    hashes = {f.path: f.hash for f in files}
    if replace and len(hashes) != len(known):
        return False
    if not all(hashes.get(rel) == digest for rel, digest in known.items()):
        return False
    if len(hashes) == len(known):  # exactly base's files: remembered for the next check
        cache.remember_files(base.record.manifest_hash, fingerprint)
    return True


def _same_data(base: Manifest, new: Manifest) -> bool:
    """Whether ``new`` holds what ``base`` holds (a release's split aside)."""
    return (base.format == new.format and base.classes == new.classes and base.files == new.files
            and [_unsplit(s) for s in base.samples] == new.samples)


def _unsplit(sample: SampleEntry) -> SampleEntry:
    return sample if sample.split is None else SampleEntry(sample.id, sample.file, sample.labels, sample.annotation,
                                                           sample.files, None)


def _commit(backend: Context, name: str, manifest: Manifest, stats: dict[str, Any], *, description: str = "",
            version: str | None = None, expect_latest: bool = False, create: bool = False,
            dataset_description: str = "", on: DatasetVersionRecord | None = None) -> DatasetVersionRecord:
    """Store the manifest object, then commit the version row (the version becomes visible).
    An increment's counts are those of ``on`` (the version whose manifest it adds to) plus its own."""
    digest, blob = manifest.encode()
    _objects(backend).put_manifest(digest, blob)
    files, samples, size = len(manifest.files), len(manifest.samples), manifest.total_bytes
    if manifest.base is not None:
        assert on is not None and on.manifest_hash == manifest.base
        files, samples, size = on.file_count + files, on.sample_count + samples, on.total_bytes + size
    return _repo(backend).add_version(
        name, manifest_hash=digest, format=manifest.format, parent=manifest.parent,
        file_count=files, sample_count=samples, total_bytes=size,
        classes=manifest.classes, description=description, release=manifest.release, stats=stats,
        version=version, expect_latest=expect_latest, create=create, dataset_description=dataset_description)


# -- versions made from versions ------------------------------------------------------------
def release_version(backend: Context, name: str, version: str | None = None, *, ratio: float | str = 0.8,
                    seed: int = 0, version_name: str | None = None, description: str = "") -> DatasetVersionRecord:
    """A new version with the samples of ``version`` (default: the latest) split into train/eval.

    The split is deterministic (same seed, same split) and stratified by label (each label's
    samples are split in ``ratio``); see :mod:`mloop.datasets.split`. The files are shared with
    the base version, so a release stores one manifest and nothing else.

    Args:
        ratio: the share of each label's samples that goes to ``train``, in (0, 1).
        seed: changes which samples go where.
        version_name: the release's version name; default ``v<next number>``.

    Raises:
        DatasetError: ``ratio`` is not in (0, 1), or ``version_name`` is taken or invalid.
        NotFoundError: no such dataset or version.
    """
    value = check_ratio(ratio)
    base_record = get_version(backend, name, version)
    base = load_manifest(backend, base_record)
    if not base.samples:
        raise DatasetError(f"{name}:{base_record.version} has no samples to split",
                           hint="import data with samples first")
    splits = split_samples(base.samples, value, int(seed))
    samples = [SampleEntry(s.id, s.file, s.labels, s.annotation, s.files, splits[s.id]) for s in base.samples]
    n_train = sum(1 for v in splits.values() if v == TRAIN)
    release = {"ratio": value, "seed": int(seed), "train": n_train, "eval": len(samples) - n_train,
               "of": base_record.version}
    manifest = base.derive(samples=samples, parent=base_record.version, release=release)
    return _commit(backend, name, manifest, {"released_from": base_record.version}, description=description,
                   version=version_name)


def relabel(backend: Context, name: str, base_version: str | None, labels: Mapping[str, Sequence[str]], *,
            description: str = "") -> DatasetVersionRecord:
    """A new version with the files of ``base_version`` and these samples' labels replaced.

    Args:
        labels: ``{sample id: [label, ...]}``; an empty list makes the sample unlabeled.

    Raises:
        DatasetError: a sample id is not in the base version, or ``labels`` is empty.
        NotFoundError: no such dataset or version.
    """
    base_record = get_version(backend, name, base_version)
    base = load_manifest(backend, base_record)
    if not labels:
        raise DatasetError("no labels given", hint="pass {sample id: [labels]} for at least one sample")
    by_id = base.sample_map()
    unknown = sorted(set(labels) - by_id.keys())
    if unknown:
        raise DatasetError(f"{len(unknown)} sample id(s) are not in {name}:{base_record.version}: "
                           f"{', '.join(unknown[:5])}", hint="use the ids of `mloop dataset show` / the manifest")
    new_labels = {sid: tuple(dict.fromkeys(str(x) for x in values)) for sid, values in labels.items()}
    samples = [SampleEntry(s.id, s.file, new_labels.get(s.id, s.labels), s.annotation, s.files, None)
               for s in base.samples]
    classes = sorted(set(base.classes) | {x for v in new_labels.values() for x in v})
    manifest = base.derive(samples=samples, classes=classes, parent=base_record.version, release=None)
    changed = sum(1 for s in base.samples if s.id in new_labels and new_labels[s.id] != s.labels)
    return _commit(backend, name, manifest, {"relabeled": changed, "labels_given": len(new_labels)},
                   description=description)


# -- comparing ------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelChange:
    id: str
    before: tuple[str, ...]
    after: tuple[str, ...]


@dataclass
class DatasetDiff:
    """What changed from version ``a`` to version ``b`` (sample ids, sorted).

    ``changed`` holds samples whose data or annotation changed; ``label_changes`` those whose
    labels changed (a sample can be in both).
    """

    name: str
    a: str
    b: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    label_changes: list[LabelChange] = field(default_factory=list)
    files_added: int = 0
    files_removed: int = 0
    files_changed: int = 0

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.label_changes or self.files_added
                    or self.files_removed or self.files_changed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def diff_versions(backend: Context, name: str, a: str, b: str) -> DatasetDiff:
    """Samples added, removed, changed (data or annotation) and relabeled from ``a`` to ``b``.

    Raises:
        NotFoundError: no such dataset or version.
    """
    ra, rb = get_version(backend, name, a), get_version(backend, name, b)
    ma, mb = load_manifest(backend, ra), load_manifest(backend, rb)
    fa, fb = ma.file_map(), mb.file_map()
    sa, sb = ma.sample_map(), mb.sample_map()
    diff = DatasetDiff(name, ra.version, rb.version)
    diff.added = sorted(sb.keys() - sa.keys())
    diff.removed = sorted(sa.keys() - sb.keys())
    for sid in sorted(sa.keys() & sb.keys()):
        x, y = sa[sid], sb[sid]
        data_x = [(p, fa[p].hash if p in fa else None) for p in x.all_files]
        data_y = [(p, fb[p].hash if p in fb else None) for p in y.all_files]
        if data_x != data_y or (x.annotation or None) != (y.annotation or None):
            diff.changed.append(sid)
        if x.labels != y.labels:
            diff.label_changes.append(LabelChange(sid, x.labels, y.labels))
    diff.files_added = len(fb.keys() - fa.keys())
    diff.files_removed = len(fa.keys() - fb.keys())
    diff.files_changed = sum(1 for p in fa.keys() & fb.keys() if fa[p].hash != fb[p].hash)
    return diff


# -- writing versions out -------------------------------------------------------------------
def _empty_dest(dest: str | os.PathLike[str]) -> Path:
    path = Path(os.fspath(dest)).expanduser()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise DatasetError(f"{path} already exists and is not an empty folder",
                           hint="give a new or empty folder; nothing was written", dest=str(path))
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class DamagedFile:
    """A file of a version whose stored object is not what the version says."""

    path: str  # the file's path in the version
    hash: str  # the sha256 the version records
    problem: str  # what is wrong: missing, wrong size, bytes no longer matching the sha256


@dataclass
class VerifyReport:
    """What :func:`verify_version` found for one version."""

    dataset: str
    version: str
    files: int
    bytes: int
    damaged: list[DamagedFile] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_files(backend: Context, record: DatasetVersionRecord, files: Sequence[FileEntry], *,
                full: bool = False, progress: Progress | None = None) -> list[DamagedFile]:
    """The files of ``record`` whose stored object is damaged (see :meth:`ObjectStore.check`:
    cheap unless ``full``)."""
    total = len(files)
    done = 0

    def on_done(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress("verifying", done, total)

    damaged = _objects(backend).check([(f.hash, f.size) for f in files], full=full, progress=on_done)
    return [DamagedFile(f.path, f.hash, damaged[f.hash]) for f in files if f.hash in damaged]


def ensure_intact(backend: Context, record: DatasetVersionRecord, files: Sequence[FileEntry]) -> None:
    """Refuse to serve ``record`` if an object of ``files`` is damaged (the cheap check).

    Raises:
        DatasetError: naming the damaged files and the version, with the hint to run
            ``mloop dataset verify``; nothing is written.
    """
    damaged = check_files(backend, record, files)
    missing = [d for d in damaged if "missing" in d.problem]
    if missing:  # gone rather than changed: the artifact store's error, as before
        from mloop.errors import ArtifactError

        d = missing[0]
        raise ArtifactError(f"{record.dataset_name}:{record.version}: {d.path}: dataset object {d.hash} is "
                            f"{d.problem}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                            hint="the artifact store was changed outside mloop; restore it from a backup "
                                 f"(`mloop dataset verify {record.dataset_name}` lists every file affected)")
    if damaged:
        raise _damaged_error(record, damaged)


def _damaged_error(record: DatasetVersionRecord, damaged: Sequence[DamagedFile]) -> DatasetError:
    ref = f"{record.dataset_name}:{record.version}"
    shown = "; ".join(f"{d.path} ({d.problem})" for d in damaged[:5])
    more = f" and {len(damaged) - 5} more" if len(damaged) > 5 else ""
    return DatasetError(
        f"{ref}: {len(damaged)} file(s) damaged in the artifact store, not served: {shown}{more}",
        hint=f"run `mloop dataset verify {record.dataset_name}` to list them; restore the artifact store "
             "from a backup, or import the files again", dataset=record.dataset_name, version=record.version,
        files=[d.path for d in damaged])


def verify_version(backend: Context, name: str, version: str | None = None, *,
                   progress: Progress | None = None) -> VerifyReport:
    """Hash every object ``name:version`` references, in full, against its sha256.

    Raises:
        NotFoundError: no such dataset or version.
    """
    record = get_version(backend, name, version)
    manifest = load_manifest(backend, record)
    damaged = check_files(backend, record, manifest.files, full=True, progress=progress)
    return VerifyReport(record.dataset_name, record.version, len(manifest.files),
                        sum(f.size for f in manifest.files), damaged)


def _place(backend: Context, placements: Sequence[tuple[str, str]], dest: Path, *, link: bool,
           progress: Progress | None) -> int:
    """Write object ``digest`` at ``dest/rel`` for each ``(rel, digest)``; how many were reflinked.

    Every file is a file of its own (a reflink or a copy), never the store's inode. Callers
    check the objects first (:func:`ensure_intact`).

    Raises:
        DatasetError: a ``rel`` that would land outside ``dest`` (nothing is written): whatever
            a manifest or a label says, a layout writer never writes outside its folder.
    """
    root_real = os.path.realpath(dest)
    for rel, _ in placements:
        target = os.path.realpath(os.path.join(root_real, rel))
        if os.path.isabs(rel) or not target.startswith(root_real + os.sep):
            raise DatasetError(f"refusing to write {rel!r}: it lands outside {dest}",
                               hint="a file path or label of this version is not a plain name; fix it at the source")
    objects = _objects(backend)
    for folder in sorted({os.path.dirname(rel) for rel, _ in placements}):
        (dest / folder).mkdir(parents=True, exist_ok=True)
    total = len(placements)
    done = 0

    def on_done(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress("exporting", done, total)

    root = os.fspath(dest)
    return objects.copy_out_many([(digest, os.path.join(root, rel)) for rel, digest in placements], link=link,
                                 progress=on_done)


def export_version(backend: Context, name: str, version: str | None, dest: str | os.PathLike[str], *,
                   progress: Progress | None = None) -> Path:
    """Write the files of a version into ``dest``, byte for byte as they went in, at their paths.

    The files are copies (not links into the store), so they may be edited freely. The
    objects are checked first (:func:`ensure_intact`): a damaged one is refused, not exported.

    Raises:
        DatasetError: ``dest`` exists and is not an empty folder, or an object is damaged.
        NotFoundError: no such dataset or version.
    """
    record = get_version(backend, name, version)
    manifest = load_manifest(backend, record)
    ensure_intact(backend, record, manifest.files)
    path = _empty_dest(dest)
    _place(backend, [(f.path, f.hash) for f in manifest.files], path, link=False, progress=progress)
    return path


def materialize(backend: Context, name: str, version: str | None, dest: str | os.PathLike[str], *,
                progress: Progress | None = None) -> Path:
    """Write a version in the job layout (what a job's ``--data_url`` receives).

    Image classification (``ModelArts imageNet 1.0``, ``ModelArts image classification 1.0``)::

        train/<label>/<file>     every sample of the train split (all samples if not released)
        eval/<label>/<file>      the eval split of a release
        unlabeled/<file>         samples without a label
        manifest.json            every sample: id, path in this layout, labels, split

    ``<file>`` is the sample's path in the source with its class folder left out, so
    ``cat/1.png`` becomes ``train/cat/1.png`` (torchvision's ``ImageFolder`` reads
    ``train/`` as is). A sample with several labels is placed under its first label.

    Other formats: every file at its original path, plus ``manifest.json``.

    Files are the job's own (reflinks where the file system has them, copies otherwise): a
    job may write to them without changing the store. Damaged objects are refused first.

    Raises:
        DatasetError: ``dest`` exists and is not an empty folder, a source file is itself
            named ``manifest.json``, or an object is damaged.
        NotFoundError: no such dataset or version.
    """
    import json

    layout = job_layout(backend, name, version)
    ensure_intact(backend, layout.record, [f for _, f in layout.placements])
    path = _empty_dest(dest)
    _place(backend, [(where, f.hash) for where, f in layout.placements], path, link=True, progress=progress)
    doc = layout.manifest_doc
    (path / "manifest.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1))
    return path


@dataclass
class JobLayout:
    """Where each file of a version goes in the job layout (see :func:`materialize`), and the
    ``manifest.json`` that goes with it. The one definition of the layout: materialising here
    and the job runner laying out a staged file list (:func:`mloop.steps.job.dataset_files`)
    both read it."""

    record: DatasetVersionRecord
    placements: list[tuple[str, FileEntry]]  # (path in the layout, the file)
    manifest_doc: dict[str, Any]


def job_layout(backend: Context, name: str, version: str | None) -> JobLayout:
    """The job layout of ``name:version`` (None: the latest version).

    Raises:
        DatasetError: a source file is itself named ``manifest.json``.
        NotFoundError: no such dataset or version.
    """
    import posixpath

    record = get_version(backend, name, version)
    manifest = load_manifest(backend, record)
    files = manifest.file_map()
    placements: list[tuple[str, FileEntry]] = []
    listed: list[dict[str, Any]] = []
    if manifest.format in CLASS_FOLDER_FORMATS:
        for s in manifest.samples:
            if s.labels:
                label = s.labels[0]
                parts = s.file.split("/")
                if manifest.format == "ModelArts imageNet 1.0" and len(parts) > 1 and parts[-2] == label:
                    parts = parts[:-2] + parts[-1:]
                where = posixpath.join(s.split or TRAIN, label, *parts)
            else:
                where = posixpath.join("unlabeled", s.file)
            placements.append((where, files[s.file]))
            listed.append(_sample_json(s, where))
    else:
        if "manifest.json" in files:
            raise DatasetError(f"{name}:{record.version} has its own file named manifest.json, which the job "
                               "layout uses for mloop's manifest", hint="rename that file in the source and import again")
        placements = [(f.path, f) for f in manifest.files]
        listed = [_sample_json(s, s.file) for s in manifest.samples]
    doc = {"dataset": name, "version": record.version, "format": manifest.format, "classes": manifest.classes,
           "release": manifest.release, "splits": [TRAIN, EVAL] if manifest.release else [TRAIN],
           "samples": listed}
    return JobLayout(record, placements, doc)


def _sample_json(sample: SampleEntry, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {"id": sample.id, "path": where, "file": sample.file, "labels": list(sample.labels),
                           "split": sample.split or TRAIN}
    if sample.annotation:
        out["annotation"] = sample.annotation
    if sample.files:
        out["files"] = list(sample.files)
    return out
