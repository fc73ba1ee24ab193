"""A version's manifest: every file (path, size, sha256) and every sample (id, file, labels, ...).

Stored as one content-addressed object, gzip-compressed compact JSON::

    {"schema": 1, "dataset": "digits", "format": "ModelArts imageNet 1.0", "parent": "v1",
     "classes": ["0", "1"], "release": null,
     "files": [["0/a.png", 312, "9f86d0..."], ...],                       # sorted by path
     "samples": [{"id": "0/a.png", "labels": ["0"]},                       # sorted by id
                 {"id": "b.txt#3", "file": "b.txt", "labels": ["pos"], "annotation": {...},
                  "files": ["b.txt"], "split": "train"}]}

A sample's ``file`` is written only when it differs from its id, ``files`` only when the sample
needs more than its data file, ``annotation`` and ``split`` only when set: so the manifest of
70,000 labeled images stays a few hundred kilobytes compressed. The manifest's hash is the
sha256 of its JSON before compression (so it names the content, not the compressor).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from mloop.datasets.formats.base import Sample

__all__ = ["SCHEMA", "FileEntry", "Manifest", "SampleEntry"]

SCHEMA = 1


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
        sid = data["id"]
        return cls(sid, data.get("file", sid), tuple(data.get("labels", ())), data.get("annotation"),
                   tuple(data.get("files", ())), data.get("split"))


class Manifest:
    """Everything a version holds; ``files`` sorted by path, ``samples`` by id.

    Decoded samples are built on first use: checking a folder against a version needs only
    its files.
    """

    def __init__(self, dataset: str, format: str, files: list[FileEntry] | None = None,
                 samples: list[SampleEntry] | None = None, classes: list[str] | None = None,
                 parent: str | None = None, release: dict[str, Any] | None = None, schema: int = SCHEMA,
                 *, raw_samples: list[dict[str, Any]] | None = None) -> None:
        self.dataset = dataset
        self.format = format
        self.files: list[FileEntry] = files if files is not None else []
        self._samples = samples
        self._raw_samples = raw_samples
        self.classes: list[str] = classes if classes is not None else []
        self.parent = parent
        self.release = release
        self.schema = schema

    @property
    def samples(self) -> list[SampleEntry]:
        if self._samples is None:
            self._samples = [SampleEntry.from_json(s) for s in self._raw_samples or ()]
            self._raw_samples = None
        return self._samples

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def file_map(self) -> dict[str, FileEntry]:
        return {f.path: f for f in self.files}

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
        data = {
            "schema": self.schema, "dataset": self.dataset, "format": self.format, "parent": self.parent,
            "classes": self.classes, "release": self.release,
            "files": self.files,  # named tuples are written as arrays
            "samples": [s.to_json() for s in self.samples],
        }
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
        if schema > SCHEMA:
            from mloop.errors import DatasetError

            raise DatasetError(f"this dataset manifest was written by a newer mloop (schema {schema})",
                               hint="upgrade mloop to read it")
        return cls(data["dataset"], data["format"], files=[FileEntry(p, s, h) for p, s, h in data["files"]],
                   classes=list(data.get("classes", [])), parent=data.get("parent"), release=data.get("release"),
                   schema=schema, raw_samples=data["samples"])


def sorted_files(entries: Iterable[FileEntry]) -> list[FileEntry]:
    return sorted(entries, key=lambda f: f.path)


def sorted_samples(entries: Iterable[SampleEntry]) -> list[SampleEntry]:
    return sorted(entries, key=lambda s: s.id)
