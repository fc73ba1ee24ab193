"""The files of a source folder with their stat, the walking rules the import formats use.

Hidden files and folders (``.git``, ``.dvc``, ``.DS_Store``) are not data and are skipped, and
symlinks are not followed (a link out of the folder must not pull files in), as in
:func:`mloop.datasets.formats._common.walk`; so every sample a format finds is among these files.
"""

from __future__ import annotations

import os

__all__ = ["SourceFile", "walk_stats"]

#: ``(relative POSIX path, absolute path, size, mtime_ns, inode)``: a plain tuple, since a
#: folder may hold hundreds of thousands of files and this is built for each of them.
SourceFile = tuple[str, str, int, int, int]


def walk_stats(root: str, empty_dirs: list[str] | None = None) -> list[SourceFile]:
    """Every regular, non-hidden file under ``root``, sorted by relative path.

    Args:
        root: the folder to walk.
        empty_dirs: when given, the relative POSIX paths of the folders below ``root`` that hold
            nothing but hidden entries are appended to it, sorted (what
            :func:`mloop.datasets.formats._common.leaf_dirs_without_files` finds, without a
            second walk of the folder).
    """
    out: list[SourceFile] = []
    empty: list[str] = []
    stack = [("", root)]
    while stack:
        prefix, folder = stack.pop()
        seen = False
        with os.scandir(folder) as entries:
            for entry in entries:
                name = entry.name
                if name[0] == ".":
                    continue
                seen = True
                if entry.is_dir(follow_symlinks=False):
                    stack.append((prefix + name + "/", entry.path))
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    out.append((prefix + name, entry.path, st.st_size, st.st_mtime_ns, st.st_ino))
        if not seen and prefix:
            empty.append(prefix[:-1])
    out.sort()
    if empty_dirs is not None:
        empty_dirs.extend(sorted(empty))
    return out
