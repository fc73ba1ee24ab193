"""Alembic in front of the store: check the schema revision on open, create or upgrade it.

An empty database is brought to the head revision on first open, under a lock so two
processes opening it at once don't both create tables: on PostgreSQL an advisory lock (the
processes may be on different machines), on SQLite a file lock beside the database. A database at an older revision is
refused until someone runs ``mloop db upgrade`` (migrating is a decision to take with a
backup at hand, not a side effect of ``mloop status``); one at a revision this mloop doesn't
know was written by a newer mloop.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from mloop.errors import SchemaVersionError, StoreError
from mloop.store.sql import (
    WRITE_OPTION,
    create_store_engine,
    display_url,
    is_sqlite_file,
    parse_url,
    translate_error,
)

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

#: The revision of the newest migration in ``migrations/versions``. Kept here so opening a
#: store that is up to date (every mloop command) needs no Alembic import; a test checks it
#: against Alembic's own head.
HEAD_REVISION = "d0b2f4a5b010"

#: The Alembic script directory (env.py and versions/) shipped inside the package.
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: How long to wait for another process that is creating or upgrading the same database.
LOCK_TIMEOUT_S = 120.0
_VERSION_TABLE = "alembic_version"
#: The PostgreSQL advisory lock every mloop holds while it creates or upgrades a schema: a
#: fixed 64-bit key, the first 8 bytes of SHA-256("mloop-migrate") as a signed integer.
PG_MIGRATION_LOCK_KEY = int.from_bytes(hashlib.sha256(b"mloop-migrate").digest()[:8], "big", signed=True)


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the packaged migrations; ``env.py`` runs them on ``connection``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def migrations_head() -> str:
    """The head revision as Alembic computes it from the packaged migration files."""
    head = _script().get_current_head()
    if head is None:
        raise StoreError(f"no migrations found in {MIGRATIONS_DIR}; the mloop install is broken",
                         hint="reinstall mloop")
    return head


def head_revision() -> str:
    """The schema revision this mloop expects."""
    return HEAD_REVISION


def ensure_schema(engine: Engine, url: str) -> bool:
    """Create the schema in an empty database; refuse one at another revision.

    Returns:
        True if this call created the schema (of processes opening an empty database at
        once, exactly one does), False if it was already there.

    Raises:
        SchemaVersionError: the database is at an older or unknown revision, or holds tables
            but no revision.
        StoreError: the database can't be reached or migrated.
    """
    head = head_revision()
    if _revision_if_readable(engine) == head:
        return False  # every command on a database that is up to date: one query, no inspection
    # Empty, or not at the head: look again under the lock. Another process may be creating
    # the schema right now, and on SQLite Alembic commits each revision on its own, so an
    # intermediate revision is visible until it finishes.
    with _migration_lock(url, engine):
        current, has_tables = _state(engine, url)
        if current is None and not has_tables:
            _upgrade(engine, url)
            return True
    if current == head:
        return False
    _refuse_unless_upgradable(current, has_tables, head, url)
    raise SchemaVersionError(
        f"the database {display_url(url)} has schema revision {current}; this mloop needs revision {head}",
        hint="back up the database, then run `mloop db upgrade`",
        found=current, expected=head,
    )


def upgrade_database(url: str) -> tuple[str | None, str]:
    """Migrate the database at ``url`` to this mloop's schema (``mloop db upgrade``).

    An empty database gets the whole schema; one already at the head is left alone.

    Args:
        url: a SQLAlchemy database URL.

    Returns:
        The revision found (None for an empty database) and the revision now in place.

    Raises:
        SchemaVersionError: the database is at a revision this mloop doesn't know, or holds
            tables but no revision.
        StoreError: the database can't be reached or migrated.
    """
    head = head_revision()
    prepare_sqlite_folder(url)
    engine = create_store_engine(url)
    try:
        with _migration_lock(url, engine):
            current, has_tables = _state(engine, url)
            if current != head:
                _refuse_unless_upgradable(current, has_tables, head, url)
                _upgrade(engine, url)
            return current, head
    finally:
        engine.dispose()


def prepare_sqlite_folder(url: str) -> None:
    """Create the folder of a SQLite database file if it is missing (SQLite won't), owner-only,
    and the database file owner-only (0600, whatever the umask): it holds the services'
    control tokens. SQLite gives its ``-wal`` and ``-shm`` files the database file's mode."""
    parsed = parse_url(url)
    if is_sqlite_file(parsed) and parsed.database:
        path = Path(parsed.database).expanduser()
        if not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.parent.chmod(0o700)
        if not path.exists():
            import os

            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))  # SQLite fills an empty file
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)


def _revision_if_readable(engine: Engine) -> str | None:
    """The revision in the Alembic version table, or None if it can't be read (no table yet,
    no database): :func:`_state` then looks closer and reports what is wrong."""
    try:
        with engine.connect() as connection:
            revision = connection.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalar()
    except SQLAlchemyError:
        return None
    return None if revision is None else str(revision)


def _state(engine: Engine, url: str) -> tuple[str | None, bool]:
    """The database's Alembic revision and whether it has any other tables."""
    try:
        with engine.connect() as connection:
            names = set(inspect(connection).get_table_names())
            revision = None
            if _VERSION_TABLE in names:
                revision = connection.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalar()
            tables = names - {_VERSION_TABLE}
    except SQLAlchemyError as exc:
        raise translate_error(exc, display_url(url)) from exc
    return revision, bool(tables)


def _refuse_unless_upgradable(current: str | None, has_tables: bool, head: str, url: str) -> None:
    """Raise unless ``current`` is a revision the packaged migrations can upgrade from."""
    if current is None:
        if has_tables:
            raise SchemaVersionError(
                f"the database {display_url(url)} has tables but no mloop schema revision",
                hint="point mloop at an empty database or at one mloop created",
                found=None, expected=head,
            )
        return
    if current not in {script.revision for script in _script().walk_revisions()}:
        raise SchemaVersionError(
            f"the database {display_url(url)} has schema revision {current}, which this mloop does "
            f"not know (it needs {head}); a newer mloop has upgraded it",
            hint="upgrade mloop (pip install -U mloop)",
            found=current, expected=head,
        )


def _upgrade(engine: Engine, url: str) -> None:
    from alembic import command
    from alembic.util import CommandError

    try:
        with engine.execution_options(**{WRITE_OPTION: True}).connect() as connection:
            with _sqlite_foreign_keys_off(connection):
                command.upgrade(alembic_config(connection), "head")
    except SQLAlchemyError as exc:
        raise translate_error(exc, display_url(url)) from exc
    except CommandError as exc:
        raise StoreError(f"could not migrate the database {display_url(url)}: {exc}") from exc


@contextmanager
def _sqlite_foreign_keys_off(connection: Connection) -> Iterator[None]:
    """Turn SQLite's foreign keys off while migrating.

    Batch mode rebuilds a table by copying it and dropping the old one; with foreign keys on,
    that DROP deletes the rows of every ON DELETE CASCADE child. The pragma is a no-op inside
    a transaction, so it goes straight to the driver before Alembic begins one.
    """
    if connection.dialect.name != "sqlite":
        yield
        return
    driver = connection.connection.driver_connection
    assert driver is not None  # an open connection always has one
    driver.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        driver.execute("PRAGMA foreign_keys = ON")


@contextmanager
def _migration_lock(url: str, engine: Engine) -> Iterator[None]:
    """Hold the lock that every process migrating the same database shares.

    PostgreSQL: the advisory lock :data:`PG_MIGRATION_LOCK_KEY`, on a connection of its own
    held until the migration is over (servers and workers on several machines open one
    database). SQLite: ``<db file>.lock`` beside the database. Otherwise a file in the system
    temp folder named by a hash of the URL, which serialises processes on this machine.
    """
    if engine.dialect.name == "postgresql":
        with _pg_advisory_lock(engine, url):
            yield
        return
    parsed = parse_url(url)
    if is_sqlite_file(parsed) and parsed.database:
        database = Path(parsed.database).expanduser()
        path = database.with_name(database.name + ".lock")
    else:
        key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / f"mloop-migrate-{key}.lock"
    from filelock import FileLock, Timeout  # here: only creating or upgrading a schema takes the lock

    lock = FileLock(path, timeout=LOCK_TIMEOUT_S)
    try:
        lock.acquire()
    except Timeout as exc:
        raise StoreError(
            f"waited {LOCK_TIMEOUT_S:.0f} s for another process to finish migrating {display_url(url)}",
            hint=f"find the process holding {path} and let it finish",
        ) from exc
    try:
        yield
    finally:
        lock.release()


@contextmanager
def _pg_advisory_lock(engine: Engine, url: str) -> Iterator[None]:
    """Hold PostgreSQL's session-level advisory lock for migrating, on a dedicated connection.

    ``pg_try_advisory_lock`` in a loop rather than ``pg_advisory_lock``: a wait that would never
    end becomes a StoreError after :data:`LOCK_TIMEOUT_S` that says who to look for. The lock
    belongs to the connection's session, so a process that dies while holding it frees it.
    """
    try:
        connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    except SQLAlchemyError as exc:
        raise translate_error(exc, display_url(url)) from exc
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while not connection.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                     {"key": PG_MIGRATION_LOCK_KEY}).scalar():
            if time.monotonic() > deadline:
                raise StoreError(
                    f"waited {LOCK_TIMEOUT_S:.0f} s for another process to finish migrating {display_url(url)}",
                    hint=f"find the session holding advisory lock {PG_MIGRATION_LOCK_KEY} (pg_locks) and let it "
                         "finish",
                )
            time.sleep(0.05)
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": PG_MIGRATION_LOCK_KEY})
    except SQLAlchemyError as exc:
        raise translate_error(exc, display_url(url)) from exc
    finally:
        connection.close()
