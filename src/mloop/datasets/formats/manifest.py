"""The ModelArts manifest format (``import_type`` MANIFEST).

A manifest is UTF-8 JSON lines, one sample per line::

    {"source": "s3://bucket/data/cat/1.jpg", "usage": "TRAIN",
     "annotation": [{"type": "modelarts/image_classification", "name": "cat"}]}
    {"source": "content://I love machine learning",
     "annotation": [{"type": "modelarts/text_classification", "name": "positive"}]}
    {"source": "s3://bucket/data/2.jpg",
     "annotation": [{"type": "modelarts/object_detection", "annotation-loc": "s3://bucket/data/2.xml",
                     "annotation-format": "PASCAL VOC"}]}

Only ``source`` is required; without ``annotation`` the sample is unlabeled. A source URI
(``s3://``, ``obs://``, an absolute path, or a path relative to the manifest) is resolved to a
file inside the source folder: the manifest of a dataset exported from ModelArts and downloaded
with its files works unchanged, as long as the files keep their paths below some common folder.
"""

from __future__ import annotations

import json
import math
import os
import posixpath
from pathlib import Path
from typing import Any

from mloop.datasets.formats._common import Collector, is_image, read_text
from mloop.datasets.formats.base import Sample, ScanResult
from mloop.datasets.formats.detection import parse_voc_xml

MANIFEST_SUFFIXES = (".manifest", ".jsonl")
CONTENT = "content://"


def _resolve(uri: str, manifest_rel: str, source: Path, present: set[str]) -> str | None:
    """The source-relative path of the file a manifest line points at, if it is in the folder."""
    path = uri
    for scheme in ("s3://", "obs://", "file://"):
        if path.startswith(scheme):
            path = path[len(scheme):]
            if scheme != "file://":
                path = path.partition("/")[2]  # drop the bucket
            break
    if os.path.isabs(path):
        try:
            rel = Path(path).resolve().relative_to(source.resolve()).as_posix()
            return rel if rel in present else None
        except ValueError:
            pass  # outside the folder: try its trailing parts below
    else:
        rel = posixpath.normpath(posixpath.join(posixpath.dirname(manifest_rel), path))
        if rel in present:
            return rel
    parts = [p for p in path.split("/") if p]
    # The longest trailing part of the URI that names a file here: s3://b/x/data/cat/1.jpg finds
    # data/cat/1.jpg, or cat/1.jpg when only that was downloaded.
    for i in range(len(parts)):
        candidate = "/".join(parts[i:])
        if candidate in present:
            return candidate
    return None


def _manifests(c: Collector, files: list[str], params: dict[str, Any]) -> list[str]:
    single = params.get("_file")
    if single:
        return [single]
    found = [f for f in files if f.lower().endswith(MANIFEST_SUFFIXES)]
    if not found:
        c.bad_source(".", "no manifest file (*.manifest or *.jsonl) in the source folder")
    return found


def scan_manifest(c: Collector, classes: list[str] | None, params: dict[str, Any]) -> ScanResult:
    """Every line of every manifest (``*.manifest``, ``*.jsonl``) in the source, or of the one
    manifest file given as the source."""
    files = c.walk()
    present = set(files)
    pending: list[tuple[str, str, tuple[str, ...], dict[str, Any], list[str]]] = []
    for manifest_rel in _manifests(c, files, params):
        try:
            lines = read_text(c.source / manifest_rel).splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            c.bad_source(manifest_rel, f"unreadable manifest: {exc}")
            continue
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{manifest_rel}#{n}"
            entry = _read_line(c, where, line)
            if entry is None:
                continue
            source_uri = entry["source"]
            annotation: dict[str, Any] = {}
            if entry.get("usage"):
                annotation["usage"] = str(entry["usage"]).upper()
            if source_uri.startswith(CONTENT):
                annotation["text"] = source_uri[len(CONTENT):]
                labels = _labels(c, where, entry, annotation, manifest_rel, present)
                annotation.pop("_annotation_file", None)
                if labels is not None:
                    c.samples.append(Sample(id=where, file=manifest_rel, labels=labels,
                                            annotation=annotation, files=(manifest_rel,)))
                continue
            rel = _resolve(source_uri, manifest_rel, c.source, present)
            if rel is None:
                c.bad_file(where, f"source {source_uri!r} is not in the source folder (missing file)")
                continue
            labels = _labels(c, where, entry, annotation, manifest_rel, present)
            if labels is not None:
                extra = [annotation.pop("_annotation_file")] if "_annotation_file" in annotation else []
                pending.append((rel, where, labels, annotation, extra))
    bad = c.verify(sorted({rel for rel, *_ in pending if is_image(rel)}))
    for rel, where, labels, annotation, extra in pending:
        if rel in bad:
            c.bad_file(rel, bad[rel], exclude=[rel])
            continue
        c.samples.append(Sample(id=rel, file=rel, labels=labels, annotation=annotation or None,
                                files=(rel, *extra)))
    c.check_classes(classes)
    return c.finish("a manifest file of JSON lines, each with a 'source' and an optional 'annotation'")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return value


def _read_line(c: Collector, where: str, line: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(line, parse_constant=_no_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        c.bad_file(where, f"not a JSON object: {exc.msg} (column {exc.colno})")
        return None
    except ValueError as exc:  # NaN, Infinity, 1e999
        c.bad_file(where, f"not a JSON object: {exc}")
        return None
    except RecursionError:
        c.bad_file(where, "not a JSON object: nested too deeply to read")
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("source"), str) or not entry["source"]:
        c.bad_file(where, "a manifest line needs a \"source\" string")
        return None
    if "annotation" in entry and not isinstance(entry["annotation"], (list, type(None))):
        c.bad_file(where, "\"annotation\" must be a list of objects")
        return None
    return entry


def _labels(c: Collector, where: str, entry: dict[str, Any], annotation: dict[str, Any],
            manifest_rel: str, present: set[str]) -> tuple[str, ...] | None:
    """The labels of one line (filling ``annotation``); None after reporting a problem."""
    labels: list[str] = []
    for i, item in enumerate(entry.get("annotation") or [], 1):
        if not isinstance(item, dict):
            c.bad_file(where, f"annotation {i} is not an object")
            return None
        kind = str(item.get("type", ""))
        if kind == "modelarts/object_detection" or "annotation-loc" in item:
            loc = item.get("annotation-loc")
            xml_rel = _resolve(str(loc), manifest_rel, c.source, present) if loc else None
            if xml_rel is None:
                c.bad_file(where, f"annotation {i}: annotation-loc {loc!r} is not in the source folder")
                return None
            parsed = parse_voc_xml((c.source / xml_rel).read_bytes())
            if isinstance(parsed, str):
                c.bad_file(xml_rel, parsed)
                return None
            annotation.update(objects=parsed["objects"], width=parsed["width"], height=parsed["height"])
            annotation["_annotation_file"] = xml_rel
            labels.extend(o["label"] for o in parsed["objects"])
            continue
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            c.bad_file(where, f"annotation {i} ({kind or 'no type'}) has no \"name\" (the label)")
            return None
        labels.append(name.strip())
    return tuple(dict.fromkeys(labels))
