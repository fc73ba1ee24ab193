"""Schedules: a workflow started on a cron expression in a time zone.

``schedule_fires`` holds one row per (schedule, fire time) that was acted on; its unique
constraint is what makes a double fire impossible, even with two servers on one database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mloop.store.models import Base

__all__ = ["Schedule", "ScheduleFire"]


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
