"""Image classification: one folder per class ("imageNet 1.0"), or an image plus a same-name .txt."""

from __future__ import annotations

import bisect
import posixpath
from pathlib import Path
from typing import Any

from mloop.datasets.formats._common import Collector, is_image, read_text
from mloop.datasets.formats.base import Sample, ScanResult



def scan_folder(c: Collector, classes: list[str] | None, params: dict[str, Any]) -> ScanResult:
    """One sub-folder per class; an image's label is the name of the folder holding it.

    As in ModelArts, with several levels of folders the last one names the class, so
    ``train/cat/1.png`` and ``val/cat/7.png`` are both "cat" (seed 003's layout works as is).
    Images directly in the source folder have no class folder: they are unlabeled samples.
    """
    files = c.walk()
    wanted = c.samples_for
    # README, labels.csv ...: files, not samples. In an increment only the new files make
    # samples (and only they can be unverified images); the base's were checked when it was made.
    images = [rel for rel in (files if wanted is None else sorted(wanted)) if is_image(rel)]
    bad = c.verify(images)
    folders: set[str] = set()
    for rel in images:
        label = rel[:rel.rfind("/")].rpartition("/")[2] if "/" in rel else ""
        if label:
            folders.add(label)
        if rel in bad:
            c.bad_file(rel, bad[rel], exclude=[rel])
            continue
        c.samples.append(Sample(id=rel, file=rel, labels=(label,) if label else (), files=(rel,)))
    for rel in c.leaf_dirs_without_files():
        c.bad_source(rel + "/", "empty folder: a class folder needs at least one image")
    if wanted is None:
        leaves = _leaf_dirs_without_images(files)
    else:  # only a folder that got a new file can have become a leaf without images
        leaves = _leaf_dirs_without_images_among(files, {rel[:rel.rfind("/")] for rel in wanted if "/" in rel})
    for rel in leaves:
        c.bad_source(rel + "/", "class folder without any image (only other files)")
    if classes is not None and wanted is not None:  # every class folder, old files' too
        folders = {rel[:rel.rfind("/")].rpartition("/")[2] for rel in files if "/" in rel and is_image(rel)}
    c.check_classes(classes, folders=folders)
    return c.finish("one sub-folder per class holding its images (cat/1.jpg, dog/2.png ...)")


def _leaf_dirs_without_images_among(files: list[str], folders: set[str]) -> list[str]:
    """:func:`_leaf_dirs_without_images`, for ``folders`` only: each one holding files but no
    image, and no folder below it that holds files. ``files`` sorted: a folder's files are one
    range of it, looked at until an image or a deeper file settles it."""
    out: list[str] = []
    for folder in sorted(folders):
        prefix = folder + "/"
        i = bisect.bisect_left(files, prefix)
        holds = settled = False
        while i < len(files) and files[i].startswith(prefix):
            rest = files[i][len(prefix):]
            if "/" in rest or is_image(rest):  # a deeper folder with files, or an image
                settled = True
                break
            holds = True
            i += 1
        if holds and not settled:
            out.append(folder)
    return out


def _leaf_dirs_without_images(files: list[str]) -> list[str]:
    """Folders with files but no sub-folder and no image (a grouping folder like train/ is fine)."""
    holding: set[str] = set()
    with_images: set[str] = set()
    for rel in files:
        cut = rel.rfind("/")
        if cut > 0:
            d = rel[:cut]
            holding.add(d)
            if d not in with_images and is_image(rel):
                with_images.add(d)
    parents: set[str] = set()
    for d in holding:
        up = posixpath.dirname(d)
        while up and up not in parents:
            parents.add(up)
            up = posixpath.dirname(up)
    return sorted(holding - with_images - parents)


def scan_image_txt(c: Collector, classes: list[str] | None, params: dict[str, Any]) -> ScanResult:
    """Each image with a same-name ``.txt`` next to it holding its label(s), one per line.

    An image without a .txt is an unlabeled sample; a .txt without an image is a problem.
    """
    files = c.walk()
    present = set(files)
    images_by_stem = {posixpath.splitext(r)[0]: r for r in files if is_image(r)}
    for rel in files:
        stem, ext = posixpath.splitext(rel)
        if ext.lower() == ".txt" and stem not in images_by_stem:
            c.bad_file(rel, "label file without an image of the same name", exclude=[rel])
    bad = c.verify(sorted(images_by_stem.values()))
    for stem, rel in sorted(images_by_stem.items()):
        txt = stem + ".txt"
        has_txt = txt in present
        if rel in bad:
            c.bad_file(rel, bad[rel], exclude=[rel, txt] if has_txt else [rel])
            continue
        labels: tuple[str, ...] = ()
        if has_txt:
            try:
                text = read_text(Path(c.source, txt))
            except (OSError, UnicodeDecodeError) as exc:
                c.bad_file(txt, f"unreadable label file: {exc}", exclude=[rel, txt])
                continue
            labels = tuple(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))
            if not labels:
                c.bad_file(txt, "label file is empty (delete it to import the image unlabeled)",
                           exclude=[rel, txt])
                continue
        c.samples.append(Sample(id=rel, file=rel, labels=labels, files=(rel, txt) if has_txt else (rel,)))
    c.check_classes(classes)
    return c.finish("images, each with a same-name .txt holding its label(s)")
