"""The home and the database are owner-only whatever the umask (issue 9, item 3): the database
holds the services' control tokens, the home the artifacts and run files."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from mloop.config import Settings
from mloop.context import open_context


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)  # what most shells give: group and others may read
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("loose_umask")
def test_a_new_home_and_its_database_are_owner_only(tmp_path: Path) -> None:
    home = tmp_path / ".mloop"
    with open_context(Settings(home=home)) as ctx:
        release = ctx.store.create_release("w", {"name": "w", "steps": []})  # writes: -wal appears
        assert release.version == 1
        assert _mode(home) == 0o700
        assert _mode(home / "mloop.db") == 0o600
        for extra in home.glob("mloop.db-*"):  # SQLite's -wal and -shm take the file's mode
            assert _mode(extra) & 0o077 == 0, extra


@pytest.mark.usefixtures("loose_umask")
def test_an_existing_readable_home_and_database_are_tightened(tmp_path: Path) -> None:
    home = tmp_path / ".mloop"
    with open_context(Settings(home=home)):
        pass
    home.chmod(0o755)
    (home / "mloop.db").chmod(0o644)
    with open_context(Settings(home=home)):
        pass
    assert _mode(home) == 0o700 and _mode(home / "mloop.db") == 0o600
