"""A version's manifest: every file (path, size, sha256) and every sample (id, file, labels, ...).

Stored as one content-addressed object, gzip-compressed compact JSON (schema 2)::

    {"schema": 2, "dataset": "digits", "format": "ModelArts imageNet 1.0", "parent": "v1",
     "classes": ["0", "1"], "release": null,
     "files": [["0/a.png", 312, "9f86d0..."], ...],                       # sorted by path
     "samples": [["0/a.png", null, ["0"], null, [], null],                 # sorted by id
                 ["b.txt#3", "b.txt", ["pos"], {...}, ["b.txt"], "train"]]}

A sample is an array ``[id, file, labels, annotation, files, split]``: ``file`` is null when it
equals the id, ``files`` is empty when the sample needs only its data file, ``annotation`` and
``split`` are null when unset. Arrays rather than objects because the encoder writes them
without a Python call per sample: a manifest of 70,000 images encodes in tens of
milliseconds instead of hundreds. Schema 1 wrote each sample as an object
(``{"id": ..., "file": ..., "labels": [...], "annotation": ..., "files": [...], "split": ...}``,
keys left out when unset); such manifests are still read (their hash is of the bytes they
were written with, so it never changes). The manifest's hash is the sha256 of its JSON before
compression (so it names the content, not the compressor).

Schema 3 is an *increment*: the files and samples a version adds to another version's manifest,
named by that manifest's hash (as a git commit names its parent tree)::

    {"schema": 3, "dataset": "digits", "format": "...", "parent": "v2", "classes": [...all...],
     "release": null, "base": "<sha256 of the base manifest>", "depth": 1,
     "files": [...added, sorted...], "samples": [...added, sorted...]}

Adding 700 images to a version of 70,000 then writes and later reads 700 entries, not 70,700
(see :func:`mloop.services.datasets.import_data`); ``depth`` counts the increments down to a
whole manifest, and is kept at most :data:`MAX_DEPTH` so that reading a version stays a handful
of objects. An increment's hash covers its base's hash, so it names the whole content too.
:meth:`Manifest.decode` returns an increment as it is stored (``base`` set); reading a version
(:func:`mloop.services.datasets.load_manifest`) applies it to its base (:meth:`Manifest.applied_to`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from mloop.datasets.formats.base import Sample

__all__ = ["INCREMENT_SCHEMA", "MAX_DEPTH", "SCHEMA", "FileEntry", "Manifest", "SampleEntry"]

#: The schema of a whole manifest; 1 and 2 are read.
SCHEMA = 2
#: The schema of an increment on another manifest (see the module's docstring).
INCREMENT_SCHEMA = 3
#: The most increments between a version and a whole manifest: the next version is written whole.
MAX_DEPTH = 8


class FileEntry(NamedTuple):
    """A stored file: where it goes (POSIX path relative to the dataset root), size, sha256."""

    path: str
    size: int
    hash: str


#: The longest label mloop takes (a label becomes a folder name in the job layout).
LABEL_MAX = 128


def label_problem(label: Any) -> str | None:
    """What is wrong with a label, or None. Labels are data that become folder names in the job
    and export layouts (``train/<label>/<file>``), so a label is never a path: no separator,
    no ``.`` or ``..``, no control character, at most :data:`LABEL_MAX` characters."""
    import unicodedata

    if not isinstance(label, str) or not label.strip():
        return "a label must be a non-empty string"
    if len(label) > LABEL_MAX:
        return f"label {label[:40]!r}... is {len(label)} characters long; at most {LABEL_MAX} are allowed"
    if "/" in label or "\\" in label or label in (".", ".."):
        return f"label {label!r} is a path, not a name (no '/', '\\', '.' or '..')"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in label):
        return f"label {label!r} contains a control character"
    return None


class SampleEntry(NamedTuple):
    """A sample of a version (see :class:`~mloop.datasets.formats.base.Sample`), plus its split.

    A named tuple rather than a dataclass: manifests hold tens of thousands of these, and
    tuples are built and compared in C.
    """

    id: str
    file: str
    labels: tuple[str, ...] = ()
    annotation: Mapping[str, Any] | None = None
    files: tuple[str, ...] = ()
    split: str | None = None

    @classmethod
    def from_sample(cls, sample: Sample) -> SampleEntry:
        """Raises DatasetError for a label that is not a name (see :func:`label_problem`)."""
        for label in sample.labels:
            problem = label_problem(label)
            if problem:
                from mloop.errors import DatasetError

                raise DatasetError(f"sample {sample.id!r} ({sample.file}): {problem}",
                                   hint="fix the label in the source's annotations, then import again")
        files = tuple(sample.files) if sample.files and tuple(sample.files) != (sample.file,) else ()
        annotation = dict(sample.annotation) if sample.annotation else None
        return cls(sample.id, sample.file, tuple(sample.labels), annotation, files, None)

    @classmethod
    def from_samples(cls, samples: Iterable[Sample]) -> list[SampleEntry]:
        """:meth:`from_sample` of each sample, in order; each distinct label is checked once
        (a folder of 70,000 images has a handful of labels)."""
        checked: set[str] = set()
        out: list[SampleEntry] = []
        append = out.append
        for sample in samples:
            labels = sample.labels
            for label in labels:
                if label not in checked:
                    if label_problem(label):
                        cls.from_sample(sample)  # raises, with the sample in the message
                    checked.add(label)
            files = sample.files
            if files and (len(files) != 1 or files[0] != sample.file):
                files = tuple(files)
            else:
                files = ()
            annotation = dict(sample.annotation) if sample.annotation else None
            append(cls(sample.id, sample.file, tuple(labels), annotation, files, None))
        return out

    @property
    def all_files(self) -> tuple[str, ...]:
        """Every file the sample needs, its data file first."""
        return self.files or (self.file,)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        if self.file != self.id:
            out["file"] = self.file
        out["labels"] = list(self.labels)
        if self.annotation:
            out["annotation"] = self.annotation
        if self.files:
            out["files"] = list(self.files)
        if self.split:
            out["split"] = self.split
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SampleEntry:
        """A sample as schema 1 wrote it (an object)."""
        sid = data["id"]
        return cls(sid, data.get("file", sid), tuple(data.get("labels", ())), data.get("annotation"),
                   tuple(data.get("files", ())), data.get("split"))

    def to_row(self) -> tuple[Any, ...]:
        """The sample as schema 2 writes it: ``[id, file or None, labels, annotation, files, split]``."""
        return (self.id, None if self.file == self.id else self.file, self.labels, self.annotation or None,
                self.files, self.split or None)

    @classmethod
    def from_row(cls, row: list[Any]) -> SampleEntry:
        """A sample as schema 2 wrote it (see :meth:`to_row`)."""
        sid, file, labels, annotation, files, split = row
        return cls(sid, sid if file is None else file, tuple(labels), annotation, tuple(files), split)


class Manifest:
    """Everything a version holds; ``files`` sorted by path, ``samples`` by id.

    Decoded samples are built on first use: checking a folder against a version needs only
    its files.
    """

    def __init__(self, dataset: str, format: str, files: list[FileEntry] | None = None,
                 samples: list[SampleEntry] | None = None, classes: list[str] | None = None,
                 parent: str | None = None, release: dict[str, Any] | None = None, schema: int = SCHEMA,
                 *, raw_samples: list[dict[str, Any]] | None = None, base: str | None = None,
                 depth: int = 0) -> None:
        self.dataset = dataset
        self.format = format
        self.files: list[FileEntry] = files if files is not None else []
        self._samples = samples
        self._raw_samples = raw_samples
        self.classes: list[str] = classes if classes is not None else []
        self.parent = parent
        self.release = release
        self.schema = schema
        #: For an increment (schema 3): the hash of the manifest it adds to, and how many
        #: increments lead down to a whole manifest (this one included). None and 0 when whole.
        self.base = base
        self.depth = depth
        self._file_map: dict[str, FileEntry] | None = None

    @property
    def samples(self) -> list[SampleEntry]:
        if self._samples is None:
            raw = self._raw_samples or ()
            if self.schema >= 2:
                from_row = SampleEntry.from_row
                self._samples = [from_row(s) for s in raw]  # type: ignore[arg-type]
            else:
                self._samples = [SampleEntry.from_json(s) for s in raw]
            self._raw_samples = None
        return self._samples

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def file_map(self) -> dict[str, FileEntry]:
        """path -> entry, built once per manifest (its files are not changed in place)."""
        if self._file_map is None:
            self._file_map = {f.path: f for f in self.files}
        return self._file_map

    def sample_map(self) -> dict[str, SampleEntry]:
        return {s.id: s for s in self.samples}

    def derive(self, **changes: Any) -> Manifest:
        """A copy with ``changes`` applied (lists are shared: don't mutate them in place)."""
        fields: dict[str, Any] = {
            "dataset": self.dataset, "format": self.format, "files": self.files, "samples": self.samples,
            "classes": self.classes, "parent": self.parent, "release": self.release, "schema": self.schema,
        }
        fields.update(changes)
        return Manifest(**fields)

    # -- (de)serialisation ------------------------------------------------------------------
    def to_json_bytes(self) -> bytes:
        """The manifest's JSON in the current schema (:data:`SCHEMA`, or :data:`INCREMENT_SCHEMA`
        for an increment), whatever schema it was read in."""
        data: dict[str, Any] = {
            "schema": SCHEMA if self.base is None else INCREMENT_SCHEMA, "dataset": self.dataset,
            "format": self.format, "parent": self.parent, "classes": self.classes, "release": self.release,
            "files": self.files,  # named tuples are written as arrays, by the encoder alone
            # SampleEntry.to_row, inlined: one call less per sample.
            "samples": [(s[0], None if s[1] == s[0] else s[1], s[2], s[3] or None, s[4], s[5] or None)
                        for s in self.samples],
        }
        if self.base is not None:
            data["base"], data["depth"] = self.base, self.depth
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def encode(self) -> tuple[str, bytes]:
        """``(hash, stored bytes)``: sha256 of the JSON, and the JSON gzip-compressed."""
        raw = self.to_json_bytes()
        # mtime=0 keeps the compressed bytes a function of the content alone.
        return hashlib.sha256(raw).hexdigest(), gzip.compress(raw, compresslevel=1, mtime=0)

    @classmethod
    def decode(cls, blob: bytes) -> Manifest:
        raw = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob
        data = json.loads(raw)
        schema = int(data.get("schema", 1))
        if schema > INCREMENT_SCHEMA:
            from mloop.errors import DatasetError

            raise DatasetError(f"this dataset manifest was written by a newer mloop (schema {schema})",
                               hint="upgrade mloop to read it")
        base: str | None = None
        depth = 0
        if schema == INCREMENT_SCHEMA:
            base, depth = data.get("base"), data.get("depth")
            if (not isinstance(base, str) or len(base) != 64 or not isinstance(depth, int)
                    or isinstance(depth, bool) or not 1 <= depth <= MAX_DEPTH):
                from mloop.errors import DatasetError

                raise DatasetError("this dataset manifest is an increment without a valid base and depth",
                                   hint="the artifact store was changed outside mloop; restore it from a backup")
        return cls(data["dataset"], data["format"], files=[FileEntry(p, s, h) for p, s, h in data["files"]],
                   classes=list(data.get("classes", [])), parent=data.get("parent"), release=data.get("release"),
                   schema=schema, raw_samples=data["samples"], base=base, depth=depth)

    def applied_to(self, base: Manifest) -> Manifest:
        """This increment's files and samples added to ``base`` (the manifest named by
        :attr:`base`, itself already whole): the whole manifest of this version.

        An entry of the increment at a path (or sample id) ``base`` has too replaces it.
        """
        if self.base is None:
            return self
        files = _merged(base.files, self.files)
        samples = _merged(base.samples, self.samples)
        return Manifest(self.dataset, self.format, files=files, samples=samples, classes=list(self.classes),
                        parent=self.parent, release=self.release, schema=SCHEMA)


def _merged(base: list[Any], added: list[Any]) -> list[Any]:
    """``base`` and ``added`` (each sorted by their first field, which is unique in each) as one
    sorted list, an entry of ``added`` replacing the one of ``base`` with the same key."""
    if not added:
        return list(base)
    keys = {entry[0] for entry in added}
    kept = [entry for entry in base if entry[0] not in keys]
    # Two sorted runs: timsort merges them in one linear pass.
    return sorted([*kept, *added], key=_key)


def _key(entry: Any) -> Any:
    return entry[0]


def sorted_files(entries: Iterable[FileEntry]) -> list[FileEntry]:
    return sorted(entries, key=lambda f: f.path)


def sorted_samples(entries: Iterable[SampleEntry]) -> list[SampleEntry]:
    return sorted(entries, key=lambda s: s.id)
