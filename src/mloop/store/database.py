"""The one door to the store's database: what :class:`~mloop.store.sql.SQLStore` hands each area
repository (``store.datasets``, ``store.labels``, ``store.registry``, ``store.services``).

A repository asks :class:`Database` for a transaction (:meth:`Database.session`), for the
numbering lock inside one (:meth:`Database.lock_numbering`), and for the words to name the
database in messages (:attr:`Database.display_url`, :meth:`Database.translate`). It never reaches
into the store itself, so the store's internals can change without touching the repositories.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from mloop.errors import StoreError

__all__ = ["Database"]


class Database:
    """Transactions on the store's database, shared by the store and its repositories.

    Args:
        engine: the engine for reads.
        write_engine: the engine for write transactions (on SQLite it begins ``IMMEDIATE``).
        display_url: the database's URL with the password masked, for messages.
        translate_error: turns a SQLAlchemy error into the StoreError to raise (given the
            display URL).
    """

    def __init__(self, engine: Engine, write_engine: Engine, display_url: str,
                 translate_error: Callable[[SQLAlchemyError, str], StoreError]) -> None:
        self.display_url = display_url
        self._translate_error = translate_error
        self._write_engine = write_engine
        # Rows become records inside their transaction; no ORM object leaves a session.
        self._reads = sessionmaker(engine)
        self._writes = sessionmaker(write_engine)

    @contextmanager
    def session(self, *, write: bool) -> Iterator[Session]:
        """One ORM transaction: committed on success, rolled back on any error.

        Raises:
            StoreError: a database error (already translated).
        """
        maker = self._writes if write else self._reads
        try:
            with maker.begin() as session:
                yield session
        except SQLAlchemyError as exc:
            raise self.translate(exc) from exc

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """One Core write transaction, for hot paths that run prebuilt statements.

        Raises:
            StoreError: a database error (already translated).
        """
        try:
            with self._write_engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise self.translate(exc) from exc

    def translate(self, exc: SQLAlchemyError) -> StoreError:
        """The StoreError that says what went wrong on this database and what to do."""
        return self._translate_error(exc, self.display_url)

    @staticmethod
    def lock_numbering(session: Session, key: str) -> None:
        """Serialise numbering under ``key`` (a workflow's run numbers, a model's versions, ...)
        until the transaction ends.

        On SQLite the IMMEDIATE write transaction already holds the database's write lock. On
        PostgreSQL, two transactions could otherwise read the same max and collide on the
        unique constraint, so they queue on an advisory lock named after ``key``.
        """
        if session.get_bind().dialect.name == "postgresql":
            session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"mloop:{key}"))))
