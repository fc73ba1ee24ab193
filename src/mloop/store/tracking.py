"""MLflow-compatible tracking: runs as MLflow clients see them, with params, tags and metric points.

A tracking run made by a job inside mloop is tied to its step (``run_id``, ``step_name``); one
made by a script outside mloop that points its MLflow client at the server has neither.
Metric points are append-only rows (key, value, step, timestamp), the shape ``log_metric`` and
``log_batch`` send, read back in order for charts that move while a job trains.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Double, ForeignKey, Index, Integer, String, Text, delete, insert, select, update
from sqlalchemy.orm import Mapped, mapped_column

from mloop.errors import NotFoundError
from mloop.store.base import _Record
from mloop.store.models import Base

if TYPE_CHECKING:
    from mloop.store.database import Database

__all__ = ["TrackingMetric", "TrackingPoint", "TrackingRepository", "TrackingRun", "TrackingRunRecord",
           "TrackingValue", "TRACKING_STATUSES"]

TRACKING_STATUSES: frozenset[str] = frozenset({"RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"})


class TrackingRun(Base):
    __tablename__ = "tracking_runs"
    __table_args__ = (Index(None, "run_id", "step_name"), Index(None, "experiment"))

    id: Mapped[str] = mapped_column(String, primary_key=True)
    experiment: Mapped[str] = mapped_column(String)
    name: Mapped[str] = mapped_column(String)
    status: Mapped[str] = mapped_column(String)  # RUNNING | FINISHED | FAILED | KILLED
    start_time: Mapped[int] = mapped_column(BigInteger)  # ms since the epoch, as MLflow sends it
    end_time: Mapped[int | None] = mapped_column(BigInteger)
    run_id: Mapped[str | None] = mapped_column(String)  # the mloop run, for a job inside mloop
    step_name: Mapped[str | None] = mapped_column(String)
    artifact_uri: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class TrackingValue(Base):
    __tablename__ = "tracking_values"

    tracking_run_id: Mapped[str] = mapped_column(ForeignKey("tracking_runs.id", ondelete="CASCADE"),
                                                 primary_key=True)
    kind: Mapped[str] = mapped_column(String, primary_key=True)  # param | tag
    key: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class TrackingMetric(Base):
    __tablename__ = "tracking_metrics"
    __table_args__ = (Index(None, "tracking_run_id", "key", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tracking_run_id: Mapped[str] = mapped_column(ForeignKey("tracking_runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String)
    value: Mapped[float] = mapped_column(Double)
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp: Mapped[int] = mapped_column(BigInteger)


# -- records -----------------------------------------------------------------------------------------

class TrackingRunRecord(_Record):
    """One tracking run (an MLflow run) without its values."""

    id: str
    experiment: str
    name: str
    status: str
    start_time: int
    end_time: int | None = None
    run_id: str | None = None
    step_name: str | None = None
    artifact_uri: str | None = None
    created_at: datetime


class TrackingPoint(_Record):
    """One metric point; ``id`` grows with every point stored (a cursor for readers)."""

    id: int
    tracking_run_id: str
    key: str
    value: float
    step: int
    timestamp: int


def _now_ms() -> int:
    return int(datetime.now(timezone.utc).timestamp() * 1000)


# -- repository --------------------------------------------------------------------------------------

class TrackingRepository:
    """Tracking runs, their params and tags, and metric points (``store.tracking``).

    Every method is one transaction and returns records, never rows. Points go in with one
    Core ``INSERT`` executed for many rows in one transaction (the hot path).
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._insert_points = insert(TrackingMetric)

    # ----- runs
    def create_run(self, experiment: str, name: str = "", *, start_time: int | None = None,
                   run_id: str | None = None, step_name: str | None = None, tags: dict[str, str] | None = None,
                   artifact_uri: str | None = None, tracking_run_id: str | None = None) -> TrackingRunRecord:
        """A new tracking run, ``RUNNING``; ``artifact_uri`` may name ``{id}`` (filled in here)."""
        rid = tracking_run_id or uuid.uuid4().hex
        row = TrackingRun(id=rid, experiment=experiment, name=name or rid[:8], status="RUNNING",
                          start_time=_now_ms() if start_time is None else int(start_time), end_time=None,
                          run_id=run_id, step_name=step_name,
                          artifact_uri=artifact_uri.replace("{id}", rid) if artifact_uri else None,
                          created_at=datetime.now(timezone.utc))
        with self.db.session(write=True) as session:
            session.add(row)
            session.flush()
            for key, value in (tags or {}).items():
                session.add(TrackingValue(tracking_run_id=rid, kind="tag", key=key, value=value))
            return TrackingRunRecord.model_validate(row)

    def find_run(self, tracking_run_id: str) -> TrackingRunRecord | None:
        with self.db.session(write=False) as session:
            row = session.get(TrackingRun, tracking_run_id)
            return None if row is None else TrackingRunRecord.model_validate(row)

    def get_run(self, tracking_run_id: str) -> TrackingRunRecord:
        """Raises NotFoundError."""
        found = self.find_run(tracking_run_id)
        if found is None:
            raise NotFoundError(f"no tracking run {tracking_run_id!r}", tracking_run=tracking_run_id)
        return found

    def runs_of_step(self, run_id: str, step_name: str | None = None) -> list[TrackingRunRecord]:
        """The tracking runs of an mloop run (of one of its steps), oldest first."""
        query = select(TrackingRun).where(TrackingRun.run_id == run_id)
        if step_name is not None:
            query = query.where(TrackingRun.step_name == step_name)
        with self.db.session(write=False) as session:
            return [TrackingRunRecord.model_validate(r)
                    for r in session.scalars(query.order_by(TrackingRun.created_at, TrackingRun.id))]

    def search_runs(self, experiments: Sequence[str] | None = None, *, limit: int = 1000,
                    offset: int = 0) -> list[TrackingRunRecord]:
        """Tracking runs of these experiments (all when None), newest first."""
        query = select(TrackingRun)
        if experiments is not None:
            query = query.where(TrackingRun.experiment.in_(list(experiments)))
        query = query.order_by(TrackingRun.start_time.desc(), TrackingRun.id).offset(offset).limit(limit)
        with self.db.session(write=False) as session:
            return [TrackingRunRecord.model_validate(r) for r in session.scalars(query)]

    def update_run(self, tracking_run_id: str, *, status: str | None = None, end_time: int | None = None,
                   name: str | None = None, only_if_running: bool = False) -> TrackingRunRecord:
        """Set the status, end time or name of a run.

        Raises:
            ValueError: an unknown status.
            NotFoundError: no such run.
        """
        fields: dict[str, Any] = {}
        if status is not None:
            if status not in TRACKING_STATUSES:
                raise ValueError(f"unknown run status {status!r}")
            fields["status"] = status
        if end_time is not None:
            fields["end_time"] = int(end_time)
        if name:
            fields["name"] = name
        with self.db.session(write=True) as session:
            if fields:
                query = update(TrackingRun).where(TrackingRun.id == tracking_run_id)
                if only_if_running:
                    query = query.where(TrackingRun.status == "RUNNING")
                session.execute(query.values(**fields))
            row = session.get(TrackingRun, tracking_run_id)
            if row is None:
                raise NotFoundError(f"no tracking run {tracking_run_id!r}", tracking_run=tracking_run_id)
            return TrackingRunRecord.model_validate(row)

    # ----- params and tags
    def values(self, tracking_run_id: str) -> dict[str, dict[str, str]]:
        """``{"param": {...}, "tag": {...}}`` of a run."""
        out: dict[str, dict[str, str]] = {"param": {}, "tag": {}}
        with self.db.session(write=False) as session:
            for kind, key, value in session.execute(
                    select(TrackingValue.kind, TrackingValue.key, TrackingValue.value)
                    .where(TrackingValue.tracking_run_id == tracking_run_id).order_by(TrackingValue.key)):
                out.setdefault(kind, {})[key] = value
        return out

    def set_values(self, tracking_run_id: str, kind: str, items: dict[str, str]) -> dict[str, tuple[str, str]]:
        """Record params (``kind="param"``: written once, an equal value again is fine) or tags
        (``"tag"``: a later value replaces an earlier one). Returns the params that were already
        set to another value, ``{key: (old, new)}``; nothing is written then."""
        if not items:
            return {}
        with self.db.session(write=True) as session:
            existing: dict[str, str] = {key: value for key, value in session.execute(
                select(TrackingValue.key, TrackingValue.value).where(
                    TrackingValue.tracking_run_id == tracking_run_id, TrackingValue.kind == kind,
                    TrackingValue.key.in_(list(items))))}
            if kind == "param":
                clashes = {k: (existing[k], v) for k, v in items.items() if k in existing and existing[k] != v}
                if clashes:
                    return clashes
            for key, value in items.items():
                if key not in existing:
                    session.add(TrackingValue(tracking_run_id=tracking_run_id, kind=kind, key=key, value=value))
                elif existing[key] != value:
                    session.execute(update(TrackingValue).where(
                        TrackingValue.tracking_run_id == tracking_run_id, TrackingValue.kind == kind,
                        TrackingValue.key == key).values(value=value))
        return {}

    def delete_tag(self, tracking_run_id: str, key: str) -> None:
        with self.db.session(write=True) as session:
            session.execute(delete(TrackingValue).where(
                TrackingValue.tracking_run_id == tracking_run_id, TrackingValue.kind == "tag",
                TrackingValue.key == key))

    # ----- metric points
    def log_points(self, tracking_run_id: str, points: Iterable[tuple[str, float, int, int]]) -> int:
        """Append ``(key, value, step, timestamp)`` points in one transaction; how many."""
        rows = [{"tracking_run_id": tracking_run_id, "key": k, "value": v, "step": s, "timestamp": t}
                for k, v, s, t in points]
        if rows:
            with self.db.write_connection() as conn:
                conn.execute(self._insert_points, rows)
        return len(rows)

    def points(self, tracking_run_ids: Sequence[str], *, key: str | None = None, after: int = 0,
               limit: int = 10000) -> list[TrackingPoint]:
        """Points of these runs with an id above ``after``, in the order they were stored."""
        if not tracking_run_ids:
            return []
        query = select(TrackingMetric).where(TrackingMetric.tracking_run_id.in_(list(tracking_run_ids)),
                                             TrackingMetric.id > after)
        if key is not None:
            query = query.where(TrackingMetric.key == key)
        with self.db.session(write=False) as session:
            return [TrackingPoint.model_validate(r)
                    for r in session.scalars(query.order_by(TrackingMetric.id).limit(limit))]

    def latest_metrics(self, tracking_run_id: str) -> dict[str, TrackingPoint]:
        """Each key's latest point, as MLflow picks it: the highest step, then the latest
        timestamp, then the last stored."""
        query = (select(TrackingMetric.id, TrackingMetric.key, TrackingMetric.value, TrackingMetric.step,
                        TrackingMetric.timestamp)
                 .where(TrackingMetric.tracking_run_id == tracking_run_id).order_by(TrackingMetric.id))
        best: dict[str, tuple[int, int, int, float]] = {}
        with self.db.session(write=False) as session:
            for pid, key, value, step, stamp in session.execute(query):
                old = best.get(key)
                if old is None or (step, stamp, pid) >= old[:3]:
                    best[key] = (step, stamp, pid, value)
        return {key: TrackingPoint(id=pid, tracking_run_id=tracking_run_id, key=key, value=value, step=step,
                                   timestamp=stamp)
                for key, (step, stamp, pid, value) in best.items()}
