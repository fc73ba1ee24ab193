"""The re-read cache's rows: a save that only adds entries writes the small additions row, and
anything else (a remembered file changed or gone, additions past a tenth) rewrites the main
row and drops the additions. Real SQLite files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mloop.datasets.cache import _ADDITIONS_MIN, RACY_NS, Entry, HashCache

NOW = 2_000_000_000 * 10**9  # "started" time for saves; entries below are far older (not racy)


def entries(n: int, start: int = 0, tag: str = "h") -> dict[str, Entry]:
    return {f"d/{i:06d}.png": (100 + i, 1_000 + i, 10_000 + i, f"{tag}{i:063d}") for i in range(start, start + n)}


def rows(path: Path, root: str) -> tuple[bytes | None, bytes | None]:
    with sqlite3.connect(path) as db:
        main = db.execute("SELECT entries FROM folders WHERE root = ?", (root,)).fetchone()
        added = db.execute("SELECT entries FROM folder_additions WHERE root = ?", (root,)).fetchone()
    return (main[0] if main else None), (added[0] if added else None)


def test_only_additions_leave_the_main_row_as_it_was(tmp_path: Path) -> None:
    path, base = tmp_path / "c.sqlite", entries(20_000)
    with HashCache(path) as cache:
        cache.load("/src")
        assert cache.save("/src", {}, base, started_ns=NOW) == 20_000
    main_before, added = rows(path, "/src")
    assert added is None
    for round_ in range(3):  # three imports, each adding 100 files
        with HashCache(path) as cache:
            loaded = cache.load("/src")
            new = entries(100, 20_000 + 100 * round_)
            assert cache.save("/src", loaded, new, started_ns=NOW) == 100
    main_after, added = rows(path, "/src")
    assert main_after == main_before and added is not None
    with HashCache(path) as cache:
        assert cache.load("/src") == {**base, **entries(300, 20_000)}


def test_a_changed_or_vanished_file_rewrites_the_main_row(tmp_path: Path) -> None:
    path, base = tmp_path / "c.sqlite", entries(5_000)
    with HashCache(path) as cache:
        cache.load("/src")
        cache.save("/src", {}, base, started_ns=NOW)
    with HashCache(path) as cache:
        cache.save("/src", cache.load("/src"), entries(10, 5_000), started_ns=NOW)
    assert rows(path, "/src")[1] is not None
    with HashCache(path) as cache:
        loaded = cache.load("/src")
        del loaded["d/000003.png"]  # gone from the folder
        changed = {"d/000004.png": (1, 2, 3, "x" * 64)}  # read again: new bytes
        del loaded["d/000004.png"]
        cache.save("/src", loaded, changed, started_ns=NOW)
    main, added = rows(path, "/src")
    assert added is None
    with HashCache(path) as cache:
        got = cache.load("/src")
    assert "d/000003.png" not in got and got["d/000004.png"] == (1, 2, 3, "x" * 64) and len(got) == 5_009


def test_additions_past_a_tenth_are_folded_into_the_main_row(tmp_path: Path) -> None:
    path, base = tmp_path / "c.sqlite", entries(20_000)
    with HashCache(path) as cache:
        cache.load("/src")
        cache.save("/src", {}, base, started_ns=NOW)
    step = max(_ADDITIONS_MIN, 2_000) // 2 + 1
    for k in range(2):  # the second save passes the limit
        with HashCache(path) as cache:
            cache.save("/src", cache.load("/src"), entries(step, 20_000 + k * step), started_ns=NOW)
    assert rows(path, "/src")[1] is None
    with HashCache(path) as cache:
        assert len(cache.load("/src")) == 20_000 + 2 * step


def test_racy_files_are_not_remembered_either_way(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with HashCache(path) as cache:
        cache.load("/src")
        cache.save("/src", {}, entries(10), started_ns=NOW)
    young = {"d/new.png": (5, NOW - RACY_NS // 2, 7, "y" * 64)}
    with HashCache(path) as cache:
        assert cache.save("/src", cache.load("/src"), young, started_ns=NOW) == 0
    with HashCache(path) as cache:
        assert "d/new.png" not in cache.load("/src")


def test_two_imports_adding_at_once_lose_at_most_a_cache_hit(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with HashCache(path) as cache:
        cache.load("/src")
        cache.save("/src", {}, entries(3_000), started_ns=NOW)
    a, b = HashCache(path), HashCache(path)
    la, lb = a.load("/src"), b.load("/src")
    a.save("/src", la, entries(5, 3_000, "a"), started_ns=NOW)
    b.save("/src", lb, entries(5, 4_000, "b"), started_ns=NOW)
    a.close()
    b.close()
    with HashCache(path) as cache:
        got = cache.load("/src")
    # Every entry remembered is one that was saved for that path (never a mix-up).
    saved = {**entries(3_000), **entries(5, 3_000, "a"), **entries(5, 4_000, "b")}
    assert all(saved[k] == v for k, v in got.items()) and set(entries(3_000)) <= set(got)
