"""Object detection: YOLO (.txt of normalised boxes) and Pascal VOC (.xml)."""

from __future__ import annotations

import math
import posixpath
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from mloop.datasets.formats._common import Collector, image_size, is_image, read_text
from mloop.datasets.formats.base import Sample, ScanResult

# Where YOLO tools look for the class names, in order.
YOLO_CLASS_FILES = ("classes.txt", "obj.names", "classes.names")


def _labels(objects: list[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(sorted({str(o["label"]) for o in objects}))


# -- YOLO -----------------------------------------------------------------------------------

def _yolo_label_file(rel: str, present: set[str]) -> str | None:
    """The .txt of an image: next to it (darknet), or under labels/ for images/ (ultralytics)."""
    stem = posixpath.splitext(rel)[0]
    if stem + ".txt" in present:
        return stem + ".txt"
    parts = stem.split("/")
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            candidate = "/".join(parts[:i] + ["labels"] + parts[i + 1:]) + ".txt"
            if candidate in present:
                return candidate
    return None


def _yolo_classes(c: Collector, files: list[str], declared: list[str] | None) -> tuple[list[str] | None, str | None]:
    """The class names by index, and the file they came from."""
    top = [f for f in files if "/" not in f]
    found = [f for f in YOLO_CLASS_FILES if f in top] or sorted(f for f in top if f.endswith(".names"))
    if not found:
        if declared is None:
            c.bad_source(".", "no class names: put them in classes.txt or obj.names (one per line, "
                         "in index order), or declare the classes")
        return declared, None
    name_file = found[0]
    names = [line.strip() for line in read_text(Path(c.source, name_file)).splitlines() if line.strip()]
    if not names:
        c.bad_source(name_file, "the classes file is empty")
    if declared is not None and names != list(declared):
        c.bad_source(name_file, f"lists classes {names}, but the declared classes are {list(declared)}")
    return names, name_file


def _parse_yolo(text: str, names: list[str], size: tuple[int, int]) -> list[dict[str, Any]] | str:
    width, height = size
    objects: list[dict[str, Any]] = []
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            return f"line {n}: expected 'class cx cy w h', got {line.strip()!r}"
        try:
            index = int(fields[0])
            cx, cy, w, h = (float(v) for v in fields[1:])
        except ValueError:
            return f"line {n}: expected an integer class and four numbers, got {line.strip()!r}"
        if not 0 <= index < len(names):
            return (f"line {n}: class index {index} is out of range "
                    f"(there are {len(names)} classes: 0 to {len(names) - 1})")
        if not all(0.0 <= v <= 1.0 for v in (cx, cy, w, h)) or w == 0 or h == 0:
            return f"line {n}: box values must be normalised to (0, 1], got {line.strip()!r}"
        box = [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height]
        objects.append({"label": names[index], "bbox": [round(max(0.0, v), 3) for v in box]})
    return objects


def scan_yolo(c: Collector, classes: list[str] | None, params: dict[str, Any]) -> ScanResult:
    """Images with same-name .txt files of ``class cx cy w h`` lines (normalised to the image)
    and a classes file (``classes.txt``, ``obj.names``) naming class 0, 1, ... in order.

    An image without a .txt is an unlabeled sample; an empty .txt is an image with no object.
    """
    files = c.walk()
    present = set(files)
    names, names_file = _yolo_classes(c, files, classes)
    images = [f for f in files if is_image(f)]
    bad = c.verify(images)
    used_txt: set[str] = set()
    for rel in images:
        txt = _yolo_label_file(rel, present)
        if txt is not None:
            used_txt.add(txt)
        own = [rel, txt] if txt else [rel]
        if rel in bad:
            c.bad_file(rel, bad[rel], exclude=own)
            continue
        if txt is None:
            c.samples.append(Sample(id=rel, file=rel, files=(rel,)))
            continue
        size = image_size(c.source / rel)
        if size is None:
            c.bad_file(rel, "corrupt image: its header can't be read", exclude=own)
            continue
        parsed = _parse_yolo(read_text(c.source / txt), names or [], size)
        if isinstance(parsed, str):
            c.bad_file(txt, parsed, exclude=own)
            continue
        annotation = {"objects": parsed, "width": size[0], "height": size[1]}
        c.samples.append(Sample(id=rel, file=rel, labels=_labels(parsed), annotation=annotation,
                                files=(rel, txt)))
    for f in files:
        if f.endswith(".txt") and f not in used_txt and f != names_file and "/" in f:
            c.bad_file(f, "label file without an image of the same name", exclude=[f])
    if names is not None:
        c.declared = list(names)
    return c.finish("images with same-name .txt box files and a classes.txt")


# -- Pascal VOC -----------------------------------------------------------------------------

def parse_voc_xml(data: bytes) -> dict[str, Any] | str:
    """A VOC annotation as ``{"filename", "width", "height", "objects"}``, or why it can't be read.

    The standard-library parser is used with the dangerous parts refused up front: a document
    type declaration is what entity-expansion ("billion laughs") and external-entity attacks
    need, and VOC files never have one.
    """
    head = data[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in data.lower():
        return "XML with a DOCTYPE or entity declarations is refused (unsafe, and never needed by VOC)"
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        return f"malformed XML: {exc}"
    if root.tag != "annotation":
        return f"not a Pascal VOC file: the root element is <{root.tag}>, not <annotation>"

    def number(node: ET.Element | None, tag: str) -> float | None:
        text = node.findtext(tag) if node is not None else None
        try:
            return float(text) if text is not None and text.strip() else None
        except ValueError:
            return None

    size = root.find("size")
    width, height = number(size, "width"), number(size, "height")
    for tag, value in (("width", width), ("height", height)):
        if value is not None and not math.isfinite(value):
            return f"<size><{tag}> is {value!r}, not a finite number"
    objects: list[dict[str, Any]] = []
    for i, obj in enumerate(root.findall("object"), 1):
        name = (obj.findtext("name") or "").strip()
        if not name:
            return f"object {i} has no <name>"
        box = obj.find("bndbox")
        coords = [number(box, t) for t in ("xmin", "ymin", "xmax", "ymax")]
        if box is None or any(v is None for v in coords):
            return f"object {i} ({name!r}) has no complete <bndbox> (xmin, ymin, xmax, ymax)"
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), coords):
            if value is not None and not math.isfinite(value):
                return f"object {i} ({name!r}): <bndbox><{tag}> is {value!r}, not a finite number"
        xmin, ymin, xmax, ymax = (float(v) for v in coords if v is not None)
        if xmin >= xmax or ymin >= ymax:
            return f"object {i} ({name!r}): empty box {[xmin, ymin, xmax, ymax]} (min must be < max)"
        if width and height and (xmin < 0 or ymin < 0 or xmax > width or ymax > height):
            return (f"object {i} ({name!r}): box {[xmin, ymin, xmax, ymax]} lies outside the "
                    f"{width:g}x{height:g} image")
        entry: dict[str, Any] = {"label": name, "bbox": [xmin, ymin, xmax, ymax]}
        if (obj.findtext("difficult") or "0").strip() == "1":
            entry["difficult"] = True
        objects.append(entry)
    return {"filename": (root.findtext("filename") or "").strip(), "width": int(width or 0),
            "height": int(height or 0), "objects": objects}


def _voc_image(xml_rel: str, filename: str, images: set[str], by_stem: dict[str, str]) -> str | None:
    """The image an annotation describes: the same name next to it (ModelArts), else in a
    sibling ``JPEGImages/`` (the VOC devkit layout), then its ``<filename>`` in those places."""
    folder = posixpath.dirname(xml_rel)
    stem = posixpath.splitext(posixpath.basename(xml_rel))[0]
    bases = [folder]
    if posixpath.basename(folder) == "Annotations":
        bases.append(posixpath.join(posixpath.dirname(folder), "JPEGImages"))
    bases += ["JPEGImages", ""]
    for base in dict.fromkeys(bases):
        found = by_stem.get(posixpath.join(base, stem) if base else stem)
        if found is not None:
            return found
        if filename:
            candidate = posixpath.normpath(posixpath.join(base, filename)) if base else filename
            if candidate in images:
                return candidate
    return None


def scan_voc(c: Collector, classes: list[str] | None, params: dict[str, Any]) -> ScanResult:
    """Images with Pascal VOC .xml annotations: same name in the same folder (ModelArts), or
    the devkit layout (``Annotations/x.xml`` describing ``JPEGImages/x.jpg``).

    An image no annotation describes is an unlabeled sample.
    """
    files = c.walk()
    images = {f for f in files if is_image(f)}
    by_stem: dict[str, str] = {}
    for rel in sorted(images):
        by_stem.setdefault(posixpath.splitext(rel)[0], rel)
    bad = c.verify(sorted(images))
    annotated: dict[str, tuple[str, dict[str, Any] | str]] = {}
    for xml_rel in (f for f in files if f.lower().endswith(".xml")):
        try:
            parsed = parse_voc_xml((c.source / xml_rel).read_bytes())
        except OSError as exc:
            parsed = f"unreadable file: {exc}"
        filename = parsed.get("filename", "") if isinstance(parsed, dict) else ""
        image = _voc_image(xml_rel, filename, images, by_stem)
        if image is None:
            shown = f" ({filename!r})" if filename else ""
            c.bad_file(xml_rel, f"annotation of a missing image{shown}", exclude=[xml_rel])
            continue
        if image in annotated:
            c.bad_source(image, f"described by two annotations: {annotated[image][0]} and {xml_rel}")
            continue
        annotated[image] = (xml_rel, parsed)
    for rel in sorted(images):
        found = annotated.get(rel)
        own = [rel, found[0]] if found else [rel]
        if rel in bad:
            c.bad_file(rel, bad[rel], exclude=own)
            continue
        if found is None:
            c.samples.append(Sample(id=rel, file=rel, files=(rel,)))
            continue
        xml_rel, parsed = found
        if isinstance(parsed, str):
            c.bad_file(xml_rel, parsed, exclude=own)
            continue
        annotation = {"objects": parsed["objects"], "width": parsed["width"], "height": parsed["height"]}
        c.samples.append(Sample(id=rel, file=rel, labels=_labels(parsed["objects"]),
                                annotation=annotation, files=(rel, xml_rel)))
    c.check_classes(classes)
    return c.finish("images with Pascal VOC .xml annotations (same name, or Annotations/ + JPEGImages/)")
