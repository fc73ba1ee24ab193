"""The re-read cache: (path, size, mtime_ns, inode) -> sha256, one SQLite file per machine.

As DVC's state database does, this lets a re-version of a folder skip every file whose size,
modification time and inode are what they were when it was last hashed: the cost of a new
version is then the folder walk plus the files that changed. The cache describes *this
machine's* files, so it lives under the mloop home (``<home>/cache/dataset-hashes.sqlite``),
not in the shared metadata store.

Racy files: a file modified within the same clock tick as it was hashed could keep its mtime
while its bytes change. A hash is therefore only remembered when the file's mtime is at least
:data:`RACY_NS` older than the moment reading began; younger files are re-read next time.

The cache is an optimisation: if its file can't be opened or written, mloop warns and hashes
everything.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

__all__ = ["RACY_NS", "CachedStat", "HashCache"]

log = logging.getLogger(__name__)

#: Files modified less than this long before hashing started are not cached (see above).
RACY_NS = 1_000_000_000


class CachedStat(NamedTuple):
    size: int
    mtime_ns: int
    inode: int
    hash: str


class HashCache:
    """A per-machine map from a file's absolute path and stat to its sha256.

    Args:
        path: the SQLite file (created with its folder); None for a cache that remembers nothing.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(path), timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS hashes (path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
                       "mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, hash TEXT NOT NULL) WITHOUT ROWID")
            self._db = db
        except (OSError, sqlite3.Error) as exc:
            log.warning("the dataset hash cache %s can't be used (%s); every file will be read", path, exc)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> HashCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def under(self, folder: str) -> dict[str, CachedStat]:
        """Everything cached for files below the absolute path ``folder``, in one query."""
        if self._db is None:
            return {}
        prefix = folder.rstrip(os.sep) + os.sep
        # Every path with this prefix sorts in [prefix, prefix with its last char bumped).
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        try:
            rows = self._db.execute("SELECT path, size, mtime_ns, inode, hash FROM hashes "
                                    "WHERE path >= ? AND path < ?", (prefix, upper)).fetchall()
        except sqlite3.Error as exc:
            log.warning("the dataset hash cache %s can't be read (%s)", self.path, exc)
            return {}
        return {p: CachedStat(s, m, i, h) for p, s, m, i, h in rows}

    def remember(self, entries: Iterable[tuple[str, CachedStat]], *, started_ns: int) -> int:
        """Record hashes (absolute path, stat when read), skipping racy files; how many were kept."""
        if self._db is None:
            return 0
        limit = started_ns - RACY_NS
        rows = [(p, c.size, c.mtime_ns, c.inode, c.hash) for p, c in entries if c.mtime_ns < limit]
        if not rows:
            return 0
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR REPLACE INTO hashes (path, size, mtime_ns, inode, hash) "
                                 "VALUES (?, ?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            log.warning("the dataset hash cache %s can't be written (%s)", self.path, exc)
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            return 0
        return len(rows)
