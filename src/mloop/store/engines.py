"""Engines that share one database: who is alive (heartbeats), and which runs lost their engine.

Every server or worker engine process registers a row and beats: it rewrites ``heartbeat_at``
every ``heartbeat_seconds``. An engine is dead when its last beat is older than
:data:`MISSED_BEATS` of its own periods, on whichever host it ran; a run claimed by a dead
engine (``runs.engine_id``) is taken over by a live one with a compare-and-set on that column,
so two survivors never both take it.

Ages are measured on the database's clock where it has one (PostgreSQL), so engines on hosts
whose clocks disagree still judge each other right; SQLite is one machine, and its clock is
this process's.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, Double, Integer, String, delete, exists, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from mloop.store.base import RunRecord, _Record
from mloop.store.models import Base, Run, as_utc

if TYPE_CHECKING:
    from mloop.store.database import Database

__all__ = ["ENGINE_KINDS", "MISSED_BEATS", "EngineRecord", "EngineRepository", "EngineRow"]

#: What runs an engine: the team server's queue, a queue-draining worker, a terminal's run.
ENGINE_KINDS = ("server", "worker", "cli")
#: Beats an engine may miss before it counts as dead.
MISSED_BEATS = 3


class EngineRow(Base):
    __tablename__ = "engines"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    kind: Mapped[str] = mapped_column(String)
    host: Mapped[str] = mapped_column(String)
    pid: Mapped[int] = mapped_column(Integer)
    process_started_at: Mapped[float | None] = mapped_column(Double)  # guards against pid reuse
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
    heartbeat_seconds: Mapped[float] = mapped_column(Double)
    version: Mapped[str | None] = mapped_column(String)


class EngineRecord(_Record):
    """A registered engine, with how long ago it last beat (on the database's clock)."""

    id: str
    kind: str
    host: str
    pid: int
    process_started_at: float | None = None
    started_at: datetime
    heartbeat_at: datetime
    heartbeat_seconds: float
    version: str | None = None
    age_seconds: float = 0.0

    @property
    def stale(self) -> bool:
        """Whether it missed :data:`MISSED_BEATS` beats (dead, whichever host it is on)."""
        return self.age_seconds > MISSED_BEATS * self.heartbeat_seconds


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class EngineRepository:
    """The ``engines`` table and the takeover claim on ``runs.engine_id``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    def _clock(session: Session) -> datetime:
        """Now, on the database's clock (PostgreSQL) or this process's (SQLite: one machine)."""
        if session.get_bind().dialect.name == "postgresql":
            return as_utc(cast(datetime, session.scalar(select(func.clock_timestamp()))))
        return _utcnow()

    def register(self, engine_id: str, *, kind: str, host: str, pid: int, process_started_at: float | None,
                 heartbeat_seconds: float, version: str | None = None) -> EngineRecord:
        """Record a live engine (or record it again: a row pruned while it stalled comes back).

        Raises:
            ValueError: an unknown ``kind``.
        """
        if kind not in ENGINE_KINDS:
            raise ValueError(f"unknown engine kind {kind!r}; expected one of {', '.join(ENGINE_KINDS)}")
        with self._db.session(write=True) as session:
            now = self._clock(session)
            row = session.get(EngineRow, engine_id)
            if row is None:
                row = EngineRow(id=engine_id, kind=kind, host=host, pid=pid, process_started_at=process_started_at,
                                started_at=now, heartbeat_at=now, heartbeat_seconds=heartbeat_seconds,
                                version=version)
                session.add(row)
            else:
                row.heartbeat_at, row.heartbeat_seconds = now, heartbeat_seconds
            session.flush()
            return EngineRecord.model_validate({**_fields(row), "age_seconds": 0.0})

    def beat(self, engine_id: str) -> bool:
        """Record that ``engine_id`` is alive now; False if its row is gone (pruned as dead)."""
        with self._db.session(write=True) as session:
            result = session.execute(update(EngineRow).where(EngineRow.id == engine_id)
                                     .values(heartbeat_at=self._clock(session))
                                     .execution_options(synchronize_session=False))
            return cast(CursorResult[Any], result).rowcount == 1

    def remove(self, engine_id: str) -> None:
        """Forget an engine that stopped cleanly."""
        with self._db.session(write=True) as session:
            session.execute(delete(EngineRow).where(EngineRow.id == engine_id))

    def registered(self) -> list[EngineRecord]:
        """Every registered engine, oldest first, each with the age of its last beat."""
        with self._db.session(write=False) as session:
            now = self._clock(session)
            rows = session.scalars(select(EngineRow).order_by(EngineRow.started_at))
            return [EngineRecord.model_validate({**_fields(row), "age_seconds": max(
                0.0, (now - as_utc(row.heartbeat_at)).total_seconds())}) for row in rows]

    def get(self, engine_id: str) -> EngineRecord | None:
        """One registered engine with the age of its last beat; None if it is not registered."""
        with self._db.session(write=False) as session:
            now = self._clock(session)
            row = session.get(EngineRow, engine_id)
            if row is None:
                return None
            return EngineRecord.model_validate({**_fields(row), "age_seconds": max(
                0.0, (now - as_utc(row.heartbeat_at)).total_seconds())})

    def orphaned_runs(self, live: Collection[str], limit: int = 100) -> list[RunRecord]:
        """Running runs claimed by an engine not in ``live`` (dead, or no longer registered),
        oldest first."""
        query = (select(Run).where(Run.status == "running", Run.engine_id.is_not(None),
                                   Run.engine_id.not_in(list(live)))
                 .order_by(Run.created_at).limit(limit))
        with self._db.session(write=False) as session:
            return [row.to_record() for row in session.scalars(query)]

    def take_over_run(self, run_id: str, from_engine: str, **owner: Any) -> bool:
        """Claim a running run from the dead engine ``from_engine``: a compare-and-set on
        ``runs.engine_id``, so of two engines taking it over only one wins. ``owner`` are the
        new engine's fields (``engine_id``, ``engine_pid``, ``engine_host``,
        ``engine_started_at``). Whether this call won."""
        allowed = {"engine_id", "engine_pid", "engine_host", "engine_started_at"}
        if set(owner) - allowed or "engine_id" not in owner:
            raise TypeError(f"take_over_run() sets exactly {', '.join(sorted(allowed))}")
        with self._db.session(write=True) as session:
            result = session.execute(update(Run).where(Run.id == run_id, Run.status == "running",
                                                       Run.engine_id == from_engine)
                                     .values(**owner).execution_options(synchronize_session=False))
            return cast(CursorResult[Any], result).rowcount == 1

    def prune(self, engine_ids: Collection[str]) -> int:
        """Forget dead engines that no running run names any more; how many were removed."""
        if not engine_ids:
            return 0
        with self._db.session(write=True) as session:
            owns = exists().where(Run.engine_id == EngineRow.id, Run.status == "running")
            result = session.execute(delete(EngineRow).where(EngineRow.id.in_(list(engine_ids)), ~owns)
                                     .execution_options(synchronize_session=False))
            return int(cast(CursorResult[Any], result).rowcount or 0)


def _fields(row: EngineRow) -> dict[str, Any]:
    return {column: getattr(row, column) for column in EngineRow.__table__.columns.keys()}
