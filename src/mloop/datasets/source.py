"""The files of a source folder with their stat, the walking rules the import formats use.

Hidden files and folders (``.git``, ``.dvc``, ``.DS_Store``) are not data and are skipped, and
symlinks are not followed (a link out of the folder must not pull files in), as in
:func:`mloop.datasets.formats._common.walk`; so every sample a format finds is among these files.
"""

from __future__ import annotations

import os
from typing import NamedTuple

__all__ = ["SourceFile", "walk_stats"]


class SourceFile(NamedTuple):
    rel: str  # POSIX path relative to the source folder
    path: str  # absolute path
    size: int
    mtime_ns: int
    inode: int


def walk_stats(root: str) -> list[SourceFile]:
    """Every regular, non-hidden file under ``root``, sorted by relative path."""
    out: list[SourceFile] = []
    stack = [("", root)]
    while stack:
        prefix, folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                rel = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    stack.append((rel + "/", entry.path))
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    out.append(SourceFile(rel, entry.path, st.st_size, st.st_mtime_ns, st.st_ino))
    out.sort()
    return out
