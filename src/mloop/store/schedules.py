"""Schedules: a workflow started on a cron expression in a time zone.

``schedule_fires`` holds one row per (schedule, fire time) that was acted on; its unique
constraint is what makes a double fire impossible, even with two servers on one database.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pydantic import Field
from sqlalchemy import (
    JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint, delete, func, or_, select, update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from mloop.errors import NotFoundError, ScheduleExistsError
from mloop.store.base import _Record
from mloop.store.models import Base

if TYPE_CHECKING:
    from mloop.store.database import Database

__all__ = ["FIRE_STATUSES", "Schedule", "ScheduleFire", "ScheduleFireRecord", "ScheduleRecord", "ScheduleRepository"]

#: What became of a fire time: a run was queued, it was passed over (catch-up), queueing failed.
FIRE_STATUSES: frozenset[str] = frozenset({"started", "skipped", "failed"})


def _utc(value: datetime) -> datetime:
    """Aware UTC, whole seconds: the one form fire times are written in (SQLite compares text)."""
    value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    return value.replace(microsecond=0)


# -- records -----------------------------------------------------------------------------------------

class ScheduleRecord(_Record):
    """A workflow started on a cron expression, evaluated in ``timezone``; times are UTC."""

    id: str
    name: str
    workflow_name: str
    cron: str
    timezone: str
    params: dict[str, Any] = Field(default_factory=dict)
    catchup: str  # skip | one | all
    paused: bool = False
    created_at: datetime
    last_fire_at: datetime | None = None
    next_fire_at: datetime | None = None


class ScheduleFireRecord(_Record):
    """One fire time acted on: the run it queued (``started``), or why none was (``skipped``/``failed``)."""

    id: int
    schedule_id: str
    fire_time: datetime
    created_at: datetime
    run_id: str | None = None
    status: str
    message: str | None = None


class Schedule(Base):
    __tablename__ = "schedules"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(String, unique=True)
    workflow_name: Mapped[str] = mapped_column(String, index=True)
    cron: Mapped[str] = mapped_column(String)
    timezone: Mapped[str] = mapped_column(String)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    catchup: Mapped[str] = mapped_column(String)  # skip | one | all
    paused: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    # The last fire time acted on (UTC); the next due time is computed from it.
    last_fire_at: Mapped[datetime | None]
    next_fire_at: Mapped[datetime | None]

    def to_record(self) -> ScheduleRecord:
        return ScheduleRecord.model_validate(self)


class ScheduleFire(Base):
    __tablename__ = "schedule_fires"
    __table_args__ = (UniqueConstraint("schedule_id", "fire_time"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule_id: Mapped[str] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"))
    fire_time: Mapped[datetime]
    created_at: Mapped[datetime]
    run_id: Mapped[str | None] = mapped_column(String)
    status: Mapped[str] = mapped_column(String)  # started | skipped | failed
    message: Mapped[str | None] = mapped_column(Text)

    def to_record(self) -> ScheduleFireRecord:
        return ScheduleFireRecord.model_validate(self)


def _is_integrity_error(exc: BaseException) -> bool:
    return isinstance(exc, IntegrityError) or isinstance(exc.__cause__, IntegrityError)


# -- repository --------------------------------------------------------------------------------------

class ScheduleRepository:
    """Schedules and their fires in the metadata store (``store.schedules``).

    Every method is one transaction and returns records, never rows. Names are checked by
    :mod:`mloop.services.schedules`; this layer only keeps them unique.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, name: str, *, workflow_name: str, cron: str, timezone_name: str, params: dict[str, Any],
               catchup: str, next_fire_at: datetime | None, paused: bool = False,
               created_at: datetime | None = None) -> ScheduleRecord:
        """Add a schedule.

        Raises:
            ScheduleExistsError: a schedule of that name exists already.
        """
        row = Schedule(id=uuid.uuid4().hex, name=name, workflow_name=workflow_name, cron=cron,
                       timezone=timezone_name, params=dict(params), catchup=catchup, paused=paused,
                       created_at=_utc(created_at or datetime.now(timezone.utc)), last_fire_at=None,
                       next_fire_at=None if next_fire_at is None else _utc(next_fire_at))
        try:
            with self.db.session(write=True) as session:
                session.add(row)
                session.flush()
                return row.to_record()
        except Exception as exc:
            if _is_integrity_error(exc):
                raise ScheduleExistsError(f"a schedule named {name!r} exists already", schedule=name,
                                    hint="choose another --name, or `mloop schedule delete` the old one") from exc
            raise

    def find(self, name_or_id: str) -> ScheduleRecord | None:
        """A schedule by name (or by id), or None."""
        with self.db.session(write=False) as session:
            row = session.scalars(select(Schedule).where(Schedule.name == name_or_id)).first()
            if row is None:
                row = session.get(Schedule, name_or_id)
            return None if row is None else row.to_record()

    def get(self, name_or_id: str) -> ScheduleRecord:
        """A schedule by name (or by id).

        Raises:
            NotFoundError: no such schedule (the hint lists some known ones).
        """
        found = self.find(name_or_id)
        if found is None:
            known = [s.name for s in self.list_all()][:10]
            raise NotFoundError(f"no schedule named {name_or_id!r}", schedule=name_or_id,
                                hint=f"known schedules: {', '.join(known) or 'none'} (mloop schedule list)")
        return found

    def list_all(self, workflow_name: str | None = None) -> list[ScheduleRecord]:
        """Every schedule, by name (optionally of one workflow)."""
        query = select(Schedule).order_by(Schedule.name)
        if workflow_name:
            query = query.where(Schedule.workflow_name == workflow_name)
        with self.db.session(write=False) as session:
            return [row.to_record() for row in session.scalars(query)]

    def due(self, now: datetime) -> list[ScheduleRecord]:
        """Unpaused schedules whose next fire time is at or before ``now``, soonest first."""
        query = (select(Schedule).where(Schedule.paused.is_(False), Schedule.next_fire_at.is_not(None),
                                        Schedule.next_fire_at <= _utc(now))
                 .order_by(Schedule.next_fire_at, Schedule.name))
        with self.db.session(write=False) as session:
            return [row.to_record() for row in session.scalars(query)]

    def next_due(self) -> datetime | None:
        """The earliest next fire time of the unpaused schedules, or None."""
        query = select(func.min(Schedule.next_fire_at)).where(Schedule.paused.is_(False))
        with self.db.session(write=False) as session:
            value = session.scalar(query)
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)

    def set_paused(self, schedule_id: str, paused: bool, next_fire_at: datetime | None) -> ScheduleRecord:
        """Pause or resume a schedule; ``next_fire_at`` is where it takes up again.

        Raises:
            NotFoundError: no schedule has this id.
        """
        values: dict[str, Any] = {"paused": paused}
        if not paused:
            values["next_fire_at"] = None if next_fire_at is None else _utc(next_fire_at)
        with self.db.session(write=True) as session:
            session.execute(update(Schedule).where(Schedule.id == schedule_id).values(**values)
                            .execution_options(synchronize_session=False))
            row = session.get(Schedule, schedule_id)
            if row is None:
                raise NotFoundError(f"no schedule with id {schedule_id!r}", schedule=schedule_id)
            session.refresh(row)
            return row.to_record()

    def advance(self, schedule_id: str, last_fire_at: datetime, next_fire_at: datetime | None) -> bool:
        """Move a schedule past ``last_fire_at``; never backwards (two schedulers may both try).

        Returns:
            Whether the row moved.
        """
        last = _utc(last_fire_at)
        with self.db.session(write=True) as session:
            result = session.execute(
                update(Schedule)
                .where(Schedule.id == schedule_id,
                       or_(Schedule.last_fire_at.is_(None), Schedule.last_fire_at < last))
                .values(last_fire_at=last, next_fire_at=None if next_fire_at is None else _utc(next_fire_at))
                .execution_options(synchronize_session=False))
            return bool(getattr(result, "rowcount", 0))

    def reschedule(self, schedule_id: str, expected: datetime | None, next_fire_at: datetime | None) -> bool:
        """Set the next fire time if it is still ``expected`` (compare-and-set); whether it was."""
        condition = Schedule.next_fire_at.is_(None) if expected is None else Schedule.next_fire_at == _utc(expected)
        with self.db.session(write=True) as session:
            result = session.execute(
                update(Schedule).where(Schedule.id == schedule_id, condition)
                .values(next_fire_at=None if next_fire_at is None else _utc(next_fire_at))
                .execution_options(synchronize_session=False))
            return bool(getattr(result, "rowcount", 0))

    def delete(self, schedule_id: str) -> None:
        """Remove a schedule and its fire history (runs it started stay)."""
        with self.db.session(write=True) as session:
            session.execute(delete(ScheduleFire).where(ScheduleFire.schedule_id == schedule_id))
            session.execute(delete(Schedule).where(Schedule.id == schedule_id))

    # -- fires --------------------------------------------------------------------------------
    def claim_fire(self, schedule_id: str, fire_time: datetime, *, status: str = "started",
                   message: str | None = None) -> ScheduleFireRecord | None:
        """Claim one fire time by inserting its row; None when another scheduler claimed it first.

        The unique (schedule_id, fire_time) constraint decides: only the inserter acts on it.
        """
        if status not in FIRE_STATUSES:
            raise ValueError(f"unknown fire status {status!r}")
        row = ScheduleFire(schedule_id=schedule_id, fire_time=_utc(fire_time),
                           created_at=_utc(datetime.now(timezone.utc)), run_id=None, status=status, message=message)
        try:
            with self.db.session(write=True) as session:
                session.add(row)
                session.flush()
                return row.to_record()
        except Exception as exc:
            if _is_integrity_error(exc):
                return None
            raise

    def finish_fire(self, fire_id: int, *, status: str, run_id: str | None = None,
                    message: str | None = None) -> ScheduleFireRecord:
        """Record what became of a claimed fire: the run it queued, or why it failed.

        Raises:
            NotFoundError: no such fire.
        """
        if status not in FIRE_STATUSES:
            raise ValueError(f"unknown fire status {status!r}")
        with self.db.session(write=True) as session:
            row = session.get(ScheduleFire, fire_id)
            if row is None:
                raise NotFoundError(f"no schedule fire with id {fire_id!r}")
            row.status, row.run_id, row.message = status, run_id, message
            session.flush()
            return row.to_record()

    def list_fires(self, schedule_id: str, limit: int = 20) -> list[ScheduleFireRecord]:
        """A schedule's latest fires, newest fire time first."""
        with self.db.session(write=False) as session:
            rows = session.scalars(select(ScheduleFire).where(ScheduleFire.schedule_id == schedule_id)
                                   .order_by(ScheduleFire.fire_time.desc(), ScheduleFire.id.desc()).limit(limit))
            return [row.to_record() for row in rows]
