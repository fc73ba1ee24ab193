"""MLflow-compatible tracking: runs as MLflow clients see them, with params, tags and metric points.

A tracking run made by a job inside mloop is tied to its step (``run_id``, ``step_name``); one
made by a script outside mloop that points its MLflow client at the server has neither.
Metric points are append-only rows (key, value, step, timestamp), the shape ``log_metric`` and
``log_batch`` send, read back in order for charts that move while a job trains.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Double, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mloop.store.models import Base

__all__ = ["TrackingMetric", "TrackingRun", "TrackingValue"]


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
