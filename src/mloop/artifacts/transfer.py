"""Folder copies between the local disk and any fsspec filesystem (job staging in and out).

fsspec's own ``put``/``get`` decide from trailing slashes and from whether the target
exists whether ``src`` lands *in* or *as* the target; here the rule is fixed: the
*contents* of the source folder land in the target folder, every time. Each file goes
through :mod:`mloop.artifacts.atomic`, so an interrupted copy never leaves a partial file
under its final name.

Paths here are already stripped of their protocol; errors are translated by the caller.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from fsspec.callbacks import Callback
from fsspec.spec import AbstractFileSystem

from mloop.artifacts.atomic import WriteStrategy, download_file, upload_file
from mloop.artifacts.urls import local_path
from mloop.errors import ArtifactError

__all__ = ["LocalTree", "get_dir", "list_urls", "local_folder", "put_dir", "walk_local"]

log = logging.getLogger(__name__)


@dataclass
class LocalTree:
    """What :func:`walk_local` found: relative posix paths of folders and files."""

    dirs: list[str]
    files: list[tuple[str, str]]  # (relative posix path, absolute path)


def walk_local(root: str) -> LocalTree:
    """List a local folder, following symlinks but never around a cycle.

    A symlinked folder that points at one of its own ancestors is not entered, and a
    link that points at nothing is skipped with a warning.
    """
    tree = LocalTree(dirs=[], files=[])
    seen = {os.path.realpath(root)}  # every folder entered once, so links between folders can't loop
    for current, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(current)
        keep = []
        for name in sorted(dirnames):
            target = os.path.realpath(os.path.join(current, name))
            if real == target or real.startswith(target + os.sep) or target in seen:
                log.warning("not following %s: it links to a folder already copied",
                            os.path.join(current, name))
                continue
            seen.add(target)
            keep.append(name)
        dirnames[:] = keep
        rel_dir = os.path.relpath(current, root)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        if prefix:
            tree.dirs.append(prefix.rstrip("/"))
        for name in sorted(filenames):
            full = os.path.join(current, name)
            if not os.path.exists(full):
                log.warning("skipping %s: the symlink points to nothing", full)
                continue
            tree.files.append((prefix + name, full))
    return tree


def put_dir(fs: AbstractFileSystem, local_dir: str, dest: str, *, callback: Callback,
            strategy: WriteStrategy, make_dirs: bool) -> None:
    """Copy the contents of ``local_dir`` into ``dest`` on ``fs``.

    Args:
        fs: the target filesystem.
        local_dir: an absolute local folder.
        dest: the target folder's path on ``fs``.
        callback: ``set_size(number of files)``, one ``relative_update`` per file, and
            each file's byte progress through ``callback.branched(src, dst)``.
        strategy: how each file is written atomically.
        make_dirs: create folders (including empty ones); false for object stores.
    """
    tree = walk_local(local_dir)
    base = dest.rstrip("/")
    sep = os.sep if strategy == "replace" else "/"
    if make_dirs:
        fs.makedirs(base, exist_ok=True)
        for rel in tree.dirs:
            fs.makedirs(base + "/" + rel, exist_ok=True)
    callback.set_size(len(tree.files))
    for rel, full in tree.files:
        target = base + sep + rel.replace("/", sep)
        with callback.branched(full, target) as child:
            upload_file(fs, full, target, child, strategy)
        callback.relative_update(1)


def get_dir(fs: AbstractFileSystem, source: str, local_dir: str, *, callback: Callback) -> None:
    """Copy the contents of the folder ``source`` on ``fs`` into the local ``local_dir``.

    Args:
        fs: the source filesystem.
        source: the folder's path on ``fs`` (it must exist and be a folder).
        local_dir: an absolute local folder, created if needed.
        callback: as for :func:`put_dir`.

    Raises:
        ArtifactError: a remote name would land outside ``local_dir`` (``..`` in a key).
    """
    base = source.rstrip("/")
    found = fs.find(base, withdirs=True, detail=True)
    dirs: list[tuple[str, str]] = []
    files: list[tuple[str, str]] = []
    for name, info in sorted(found.items()):
        stripped = name.rstrip("/")
        if not stripped.startswith(base + "/"):
            continue  # the folder itself
        rel = stripped[len(base) + 1:]
        (dirs if info.get("type") == "directory" else files).append((rel, name))
    os.makedirs(local_dir, exist_ok=True)
    root = os.path.realpath(local_dir)
    for rel, _ in dirs:
        os.makedirs(_inside(root, rel), exist_ok=True)
    callback.set_size(len(files))
    for rel, name in files:
        target = _inside(root, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with callback.branched(name, target) as child:
            download_file(fs, name, target, child)
        callback.relative_update(1)


def _inside(root: str, rel: str) -> str:
    target = os.path.normpath(os.path.join(root, *rel.split("/")))
    if target != root and not target.startswith(root + os.sep):
        raise ArtifactError(f"refusing to write {rel}: it would land outside {root}",
                            hint="rename the remote object; keys must not contain '..'")
    return target


def list_urls(fs: AbstractFileSystem, path: str, url: str, *, recursive: bool) -> list[str]:
    """Children of ``path`` (files at any depth if ``recursive``) as URLs in ``url``'s form.

    Folders get a trailing ``/``; a file lists as itself.
    """
    if recursive:
        entries = [(name, "file") for name in fs.find(path, detail=False)]
    else:
        entries = [(info["name"], info["type"]) for info in fs.ls(path, detail=True)]
    base = path.rstrip("/")
    out = []
    for name, kind in entries:
        rel = name.rstrip("/")[len(base):].lstrip("/") if name.startswith(base) else name
        child = url.rstrip("/") + "/" + rel if rel else url
        out.append(child + "/" if kind == "directory" and rel else child)
    return sorted(out)


def local_folder(path_or_url: str, *, must_exist: bool = True) -> str:
    """The absolute local path of a folder given as a path or ``file://`` URL.

    Raises:
        ArtifactError: it is remote, or (with ``must_exist``) not an existing folder.
    """
    path = local_path(path_or_url)
    if path is None:
        raise ArtifactError(f"{path_or_url} is not a local folder",
                            hint="put_dir/get_dir copy between a local folder and a store URL")
    path = os.path.abspath(os.path.expanduser(path))
    if must_exist and not os.path.isdir(path):
        raise ArtifactError(f"{path_or_url} is not a folder", hint="check the path", url=path_or_url)
    return path
