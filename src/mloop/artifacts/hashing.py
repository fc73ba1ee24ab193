"""Content hashes of files and folders (the code hash recorded with every job).

A folder's digest is the sha256 of its *manifest*: the JSON array, compact and ASCII,
of ``[relative posix path, size, sha256 of the file]`` for every file, sorted by path::

    [["src/train.py",1234,"9f86d0..."],["train.sh",88,"e3b0c4..."]]

So the digest depends only on names and bytes: not on mtimes, modes, the order files
were created in, or the platform's path separator. Empty folders do not count. Anyone
can recompute it from the manifest, and :mod:`mloop.artifacts.snapshot` produces the
same digest while copying, without reading the files twice.

Walking rules (shared with snapshots): names matching an ``ignore`` pattern (fnmatch on
the single name, e.g. ``__pycache__``, ``*.pyc``) are skipped with everything below
them; a symlink is followed only when it points to a *file inside* the folder (its
content counts as a file at the link's path); links to folders, to anything outside
the folder, or to nothing are skipped with a warning; sockets and FIFOs are skipped.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from mloop.artifacts.filesystems import translate_errors
from mloop.errors import ArtifactError

__all__ = ["DEFAULT_IGNORE", "HASH_CHUNK", "ManifestEntry", "Tree", "dir_manifest", "hash_dir",
           "hash_file", "manifest_digest", "walk_tree"]

log = logging.getLogger(__name__)

#: Skipped by default: caches and metadata that change without the code changing.
DEFAULT_IGNORE: tuple[str, ...] = ("__pycache__", "*.pyc", ".git", ".mloop")
#: Files are read in chunks of this many bytes.
HASH_CHUNK = 1 << 20


class ManifestEntry(NamedTuple):
    """One file in a folder manifest."""

    path: str  # relative, ``/``-separated
    size: int
    sha256: str


@dataclass
class Tree:
    """What :func:`walk_tree` found; ``files`` and ``dirs`` hold (relative posix, absolute) pairs."""

    root: str
    dirs: list[tuple[str, str]] = field(default_factory=list)
    files: list[tuple[str, str]] = field(default_factory=list)


@functools.lru_cache(maxsize=32)
def _matcher(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    if not patterns:
        return lambda name: False
    regex = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))
    return lambda name: regex.match(name) is not None


def walk_tree(root: str | os.PathLike[str], ignore: Iterable[str] = DEFAULT_IGNORE) -> Tree:
    """List the folders and files under ``root`` by the walking rules in the module docstring.

    Raises:
        ArtifactError: ``root`` is not a folder.
    """
    real_root = os.path.realpath(root)
    if not os.path.isdir(real_root):
        raise ArtifactError(f"{os.fspath(root)} is not a folder", hint="check the path", url=os.fspath(root))
    tree = Tree(root=real_root)
    with translate_errors(os.fspath(root), "read the folder"):
        _scan(tree, real_root, "", _matcher(tuple(ignore)))
    tree.files.sort()
    return tree


def _scan(tree: Tree, folder: str, prefix: str, ignored: Callable[[str], bool]) -> None:
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        if ignored(entry.name):
            continue
        rel = prefix + entry.name
        if entry.is_symlink():
            target = os.path.realpath(entry.path)
            if target.startswith(tree.root + os.sep) and os.path.isfile(target):
                tree.files.append((rel, entry.path))
            else:
                log.warning("skipping symlink %s -> %s: only links to files inside %s are followed",
                            entry.path, target, tree.root)
        elif entry.is_dir(follow_symlinks=False):
            tree.dirs.append((rel, entry.path))
            _scan(tree, entry.path, rel + "/", ignored)
        elif entry.is_file(follow_symlinks=False):
            tree.files.append((rel, entry.path))


def _hash_path(path: str) -> tuple[int, str]:
    with open(path, "rb", buffering=0) as src:
        if os.fstat(src.fileno()).st_size <= HASH_CHUNK:
            # Small files (nearly all code) in one read: no 1 MiB buffer to allocate.
            data = src.readall()
            return len(data), hashlib.sha256(data).hexdigest()
        digest = hashlib.sha256()
        size = 0
        buffer = bytearray(HASH_CHUNK)
        view = memoryview(buffer)
        while n := src.readinto(buffer):
            digest.update(view[:n])
            size += n
        return size, digest.hexdigest()


def hash_file(path: str | os.PathLike[str]) -> str:
    """The sha256 hex digest of a file's bytes, read in 1 MiB chunks.

    Raises:
        ArtifactError: the file cannot be read.
    """
    with translate_errors(os.fspath(path), "hash"):
        return _hash_path(os.fspath(path))[1]


def dir_manifest(path: str | os.PathLike[str], ignore: Iterable[str] = DEFAULT_IGNORE) -> list[ManifestEntry]:
    """The manifest of a folder: one :class:`ManifestEntry` per file, sorted by path.

    Raises:
        ArtifactError: ``path`` is not a folder or a file cannot be read.
    """
    tree = walk_tree(path, ignore)
    entries = []
    for rel, full in tree.files:
        with translate_errors(full, "hash"):
            size, sha = _hash_path(full)
        entries.append(ManifestEntry(rel, size, sha))
    return entries


def manifest_digest(entries: Iterable[ManifestEntry]) -> str:
    """The sha256 hex digest of a manifest (entries are sorted by path first)."""
    rows = sorted((e.path, e.size, e.sha256) for e in entries)
    payload = json.dumps([list(row) for row in rows], separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(payload.encode("ascii")).hexdigest()


def hash_dir(path: str | os.PathLike[str], ignore: Iterable[str] = DEFAULT_IGNORE) -> str:
    """The digest of a folder's content (see the module docstring for what counts).

    Args:
        path: the folder.
        ignore: fnmatch patterns for names to skip; :data:`DEFAULT_IGNORE` by default,
            ``()`` to skip nothing.

    Returns:
        A sha256 hex digest, stable across runs and machines.

    Raises:
        ArtifactError: ``path`` is not a folder or a file cannot be read.
    """
    return manifest_digest(dir_manifest(path, ignore))
