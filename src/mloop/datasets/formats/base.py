"""What every import format produces: samples over the files of a source folder."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Sample:
    """One thing a model learns from.

    Attributes:
        id: unique within a version. For a sample that is a whole file, its data file's path;
            for a sample inside a file (a line of a text-classification file), ``"<file>#<n>"``.
        file: POSIX path, relative to the source folder, of the file holding the sample's data.
        labels: class names; empty for an unlabeled sample.
        annotation: format-specific detail. Detection: ``{"objects": [{"label": str,
            "bbox": [xmin, ymin, xmax, ymax]}], "width": int, "height": int}``; text
            classification: ``{"text": str}``.
        files: every source file the sample needs (its data file first, then annotation files).
    """

    id: str
    file: str
    labels: tuple[str, ...] = ()
    annotation: Mapping[str, Any] | None = None
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScanProblem:
    """A file that can't be used, and why (``path`` relative to the source folder)."""

    path: str
    reason: str


@dataclass
class ScanResult:
    """What a format found in a source folder.

    Attributes:
        format: the format's canonical name (an ``AnnotationFormatEnum`` value, or ``"manifest"``).
        samples: in a stable order (sorted by id).
        classes: every label used or declared, sorted.
        problems: files left out (with ``clean=True``); without it, problems raise instead.
        excluded: source files that must not be versioned (the corrupt files left out).
    """

    format: str
    samples: list[Sample] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    problems: list[ScanProblem] = field(default_factory=list)
    excluded: set[str] = field(default_factory=set)
