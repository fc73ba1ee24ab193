"""Import formats: read a source folder into samples (files, labels, annotations).

Each format has a canonical name equal to its ``wf.steps.AnnotationFormatEnum`` value (the
manifest format, an ``ImportTypeEnum`` rather than an annotation format, is ``"manifest"``),
plus short aliases for the CLI::

    >>> from mloop.datasets.formats import scan
    >>> result = scan(Path("digits"), "folder", classes=["0", "1"], clean=True)
    >>> result.samples[0].labels
    ('0',)

A scan reads annotations and verifies images (Pillow); what it can't use is either reported in
one :class:`~mloop.errors.DatasetFormatError` or, with ``clean=True``, left out and listed in
``ScanResult.problems``/``excluded``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mloop.datasets.formats._common import Collector, Progress, verify_image, verify_image_bytes
from mloop.datasets.formats.base import Sample, ScanProblem, ScanResult
from mloop.errors import DatasetFormatError

__all__ = [
    "FORMAT_ALIASES",
    "SUPPORTED_FORMATS",
    "Sample",
    "ScanProblem",
    "ScanResult",
    "canonical_format",
    "scan",
    "verify_image",
    "verify_image_bytes",
]

IMAGENET = "ModelArts imageNet 1.0"
IMAGE_TXT = "ModelArts image classification 1.0"
PASCAL_VOC = "ModelArts PASCAL VOC 1.0"
YOLO = "YOLO"
TEXT_COMBINE = "ModelArts text classfication combine 1.0"  # sic: ModelArts' own spelling
MANIFEST = "manifest"

#: canonical name -> what it reads (shown by ``mloop dataset formats`` and in errors).
SUPPORTED_FORMATS: dict[str, str] = {
    IMAGENET: "image classification, one sub-folder per class (cat/1.jpg, dog/2.png)",
    IMAGE_TXT: "image classification, each image with a same-name .txt holding its label(s)",
    MANIFEST: "ModelArts manifest: JSON lines with 'source' and an 'annotation' list",
    YOLO: "object detection, images + same-name .txt 'class cx cy w h' + classes.txt/obj.names",
    PASCAL_VOC: "object detection, images + Pascal VOC .xml (next to them or in Annotations/)",
    TEXT_COMBINE: "text classification, 'text<TAB>label' per line in .txt/.csv files",
}

#: short names accepted wherever a format is named (case-insensitive).
FORMAT_ALIASES: dict[str, str] = {
    "folder": IMAGENET,
    "imagenet": IMAGENET,
    "image-folder": IMAGENET,
    "image-txt": IMAGE_TXT,
    "image-classification": IMAGE_TXT,
    "manifest": MANIFEST,
    "yolo": YOLO,
    "voc": PASCAL_VOC,
    "pascal-voc": PASCAL_VOC,
    "text": TEXT_COMBINE,
    "text-combine": TEXT_COMBINE,
}

# AnnotationFormatEnum member names, so "MA_IMAGENET_V1" works as well as its value.
_MEMBER_NAMES: dict[str, str] = {
    "ma_imagenet_v1": IMAGENET,
    "ma_image_classification_v1": IMAGE_TXT,
    "ma_pascal_voc_v1": PASCAL_VOC,
    "yolo": YOLO,
    "ma_text_classification_combine_v1": TEXT_COMBINE,
}


def canonical_format(name: str) -> str:
    """The canonical name of a format given by canonical name, alias or enum member name.

    Raises:
        DatasetFormatError: the format is not supported; the message lists those that are.
    """
    key = str(getattr(name, "value", name)).strip()
    for canonical in SUPPORTED_FORMATS:
        if key.lower() == canonical.lower():
            return canonical
    found = FORMAT_ALIASES.get(key.lower()) or _MEMBER_NAMES.get(key.lower())
    if found is not None:
        return found
    listing = "; ".join(f"{c!r} ({', '.join(a for a, t in FORMAT_ALIASES.items() if t == c)})"
                        for c in SUPPORTED_FORMATS)
    raise DatasetFormatError(
        f"unsupported dataset format {key!r}; supported formats (aliases in brackets): {listing}",
        hint="name one of the supported formats, e.g. --format folder", format=key,
    )


def _scanner(fmt: str) -> Callable[[Collector, list[str] | None, dict[str, Any]], ScanResult]:
    from mloop.datasets.formats import classification

    if fmt == IMAGENET:
        return classification.scan_folder
    if fmt == IMAGE_TXT:
        return classification.scan_image_txt
    if fmt in (YOLO, PASCAL_VOC):
        from mloop.datasets.formats import detection

        return detection.scan_yolo if fmt == YOLO else detection.scan_voc
    if fmt == MANIFEST:
        from mloop.datasets.formats import manifest

        return manifest.scan_manifest
    from mloop.datasets.formats import text

    return text.scan_text_combine


def scan(source: Path, format: str, *, classes: list[str] | None = None, clean: bool = False,
         only: set[str] | None = None, params: Mapping[str, Any] | None = None,
         progress: Progress | None = None, files: list[str] | None = None,
         verified: Mapping[str, str | None] | None = None, empty_dirs: list[str] | None = None,
         samples_for: set[str] | None = None) -> ScanResult:
    """Read ``source`` in ``format`` into samples, verifying images on the way.

    Args:
        source: the folder to import (for ``manifest`` and text classification, a single file
            is accepted too; its folder is then the source and paths are relative to it).
        format: a canonical name (an ``AnnotationFormatEnum`` value, or ``"manifest"``), an alias
            (``folder``, ``imagenet``, ``image-txt``, ``manifest``, ``yolo``, ``voc``, ``text``)
            or an ``AnnotationFormatEnum`` member.
        classes: the declared classes; labels outside them are refused, and in the folder format
            each declared class needs its folder.
        clean: leave corrupt images and bad annotations out (listed in ``problems``, their files
            in ``excluded``) instead of failing.
        only: verify only the images at these relative paths (the caller knows the others are
            unchanged since they were verified); None verifies every image. Annotations are
            always read.
        params: format parameters as ``AnnotationFormatParameters`` spells them: for text
            classification ``sample_label_separator`` (between text and labels, default TAB, or
            ``,`` in a .csv) and ``label_separator`` (between labels, default ``,``).
        progress: called with the number of files just checked, for a progress bar.
        files: every file of the source folder (sorted relative POSIX paths, hidden files and
            folders left out, as :func:`~mloop.datasets.formats._common.walk` lists them) when
            the caller walked it already; None walks it.
        verified: images the caller already verified: relative path -> why it is not usable
            (as :func:`verify_image` says), or None when it is. They are not read again.
        empty_dirs: with ``files``, the folders holding nothing but hidden entries (as
            :func:`~mloop.datasets.source.walk_stats` finds them); None looks for them.
        samples_for: in the folder format, build samples only for these files (an increment on
            a version that holds the others); the whole source is still checked. Other formats
            ignore it (their samples can depend on other files).

    Returns:
        The samples sorted by id, the classes, and what was left out.

    Raises:
        DatasetFormatError: the format is not supported, or the source doesn't fit it (every
            problem listed: the first 20 in the message, all in ``.problems``).
    """
    fmt = canonical_format(format)
    source = Path(source)
    single_file: str | None = None
    if source.is_file() and fmt in (MANIFEST, TEXT_COMBINE):
        single_file, source = source.name, source.parent
    elif not source.is_dir():
        what = "does not exist" if not source.exists() else "is not a folder"
        raise DatasetFormatError(f"dataset source {source} {what}", format=fmt, source=str(source),
                                 hint="give the folder that holds the data", problems=[])
    opts: dict[str, Any] = dict(params or {})
    if single_file is not None:
        opts["_file"] = single_file
    collector = Collector(source, fmt, clean=clean, only=only, progress=progress, files=files, verified=verified,
                          empty_dirs=empty_dirs if files is not None else None,
                          samples_for=samples_for if fmt == IMAGENET else None)
    return _scanner(fmt)(collector, list(classes) if classes is not None else None, opts)
