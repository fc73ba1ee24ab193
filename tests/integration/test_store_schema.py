"""The migrations create exactly the models' schema, and the store guards the schema revision."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from mloop.errors import SchemaVersionError, StoreError
from mloop.store import open_store, schema, upgrade_database
from mloop.store.models import Base
from mloop.store.schema import head_revision


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty database that does not exist yet (SQLite: not even its folder)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'home' / 'mloop.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


def execute(url: str, statement: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(statement))
    engine.dispose()


def revision_of(url: str) -> str | None:
    engine = create_engine(url)
    with engine.connect() as connection:
        revision = MigrationContext.configure(connection).get_current_revision()
    engine.dispose()
    return revision


def test_migrations_create_exactly_the_models(database_url: str) -> None:
    assert upgrade_database(database_url) == (None, head_revision())

    engine = create_engine(database_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == []


def test_open_creates_the_schema_in_an_empty_database(database_url: str) -> None:
    with open_store(database_url) as store:
        store.create_release("wf", {})
    assert revision_of(database_url) == head_revision()
    # Opening again finds the head revision and changes nothing.
    with open_store(database_url) as store:
        assert [r.version for r in store.list_releases()] == [1]
    assert upgrade_database(database_url) == (head_revision(), head_revision())


_NEXT_REVISION = '''
import sqlalchemy as sa
from alembic import op

revision = "0123456789ab"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("probe", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade() -> None:
    op.drop_table("probe")
'''


def test_older_revision_is_refused_until_upgraded(database_url: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    old_head = head_revision()
    open_store(database_url).close()
    # A newer mloop: the same migrations plus one revision on top.
    newer = tmp_path / "newer-migrations"
    shutil.copytree(schema.MIGRATIONS_DIR, newer, ignore=shutil.ignore_patterns("__pycache__"))
    (newer / "versions" / "0123456789ab_probe.py").write_text(_NEXT_REVISION.format(down=old_head))
    monkeypatch.setattr(schema, "MIGRATIONS_DIR", newer)
    monkeypatch.setattr(schema, "HEAD_REVISION", schema.migrations_head())

    with pytest.raises(SchemaVersionError) as info:
        open_store(database_url)
    assert f"has schema revision {old_head}; this mloop needs revision 0123456789ab" in str(info.value)
    assert info.value.hint == "back up the database, then run `mloop db upgrade`"
    assert info.value.fields == {"found": old_head, "expected": "0123456789ab"}

    assert upgrade_database(database_url) == (old_head, "0123456789ab")
    open_store(database_url).close()
    engine = create_engine(database_url)
    assert "probe" in inspect(engine).get_table_names()
    engine.dispose()


def test_unknown_newer_revision_is_refused(database_url: str) -> None:
    open_store(database_url).close()
    execute(database_url, "UPDATE alembic_version SET version_num = 'fedcba987654'")

    with pytest.raises(SchemaVersionError, match="revision fedcba987654, which this mloop does not know") as info:
        open_store(database_url)
    assert info.value.hint == "upgrade mloop (pip install -U mloop)"
    with pytest.raises(SchemaVersionError, match="does not know"):
        upgrade_database(database_url)
    assert revision_of(database_url) == "fedcba987654"


def test_tables_without_a_revision_are_refused(database_url: str) -> None:
    open_store(database_url).close()
    execute(database_url, "DELETE FROM alembic_version")

    with pytest.raises(SchemaVersionError, match="has tables but no mloop schema revision"):
        open_store(database_url)
    with pytest.raises(SchemaVersionError, match="has tables but no mloop schema revision"):
        upgrade_database(database_url)


_OPENER = textwrap.dedent("""
    import pathlib, sys, time
    from mloop.store import open_store
    url, go = sys.argv[1:3]
    while not pathlib.Path(go).exists():
        time.sleep(0.005)
    with open_store(url) as store:
        store.create_release("wf", {})
""")


def test_two_processes_opening_an_empty_database_both_succeed(database_url: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    openers = [subprocess.Popen([sys.executable, "-c", _OPENER, database_url, str(go)],
                                env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    go.touch()
    errors = [opener.communicate(timeout=120)[1] for opener in openers]

    assert [opener.returncode for opener in openers] == [0, 0], errors
    with open_store(database_url) as store:
        assert sorted(r.version for r in store.list_releases("wf")) == [1, 2]


def test_unreachable_or_malformed_database_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot use the database postgresql://nobody@127.0.0.1:1/x: .*refused"):
        open_store("postgresql://nobody@127.0.0.1:1/x")
    with pytest.raises(StoreError, match="not a database URL: 'not a url'"):
        open_store("not a url")
    with pytest.raises(StoreError, match=r"not a usable database URL: postgres://me:\*\*\*@host/db"):
        open_store("postgres://me:secret@host/db")


def test_the_head_revision_constant_matches_the_migration_files() -> None:
    from mloop.store.schema import HEAD_REVISION, migrations_head

    assert HEAD_REVISION == migrations_head(), (
        "HOW TO FIX: a migration was added; set HEAD_REVISION in src/mloop/store/schema.py to its revision")
