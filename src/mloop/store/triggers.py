"""Git-push triggers and the deliveries they received.

``trigger_deliveries`` is unique per (trigger, delivery id): a redelivered event is recorded
once and runs nothing the second time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mloop.store.models import Base

__all__ = ["GitTrigger", "TriggerDelivery"]


class GitTrigger(Base):
    __tablename__ = "git_triggers"

    name: Mapped[str] = mapped_column(String, primary_key=True)
    repo_url: Mapped[str] = mapped_column(Text)
    workflow_path: Mapped[str] = mapped_column(String)
    branches: Mapped[list[str]] = mapped_column(JSON)  # fnmatch patterns; empty: any
    paths: Mapped[list[str]] = mapped_column(JSON)  # fnmatch patterns on changed files; empty: any
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String)
    enabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]


class TriggerDelivery(Base):
    __tablename__ = "trigger_deliveries"
    __table_args__ = (UniqueConstraint("trigger_name", "delivery_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trigger_name: Mapped[str] = mapped_column(String, index=True)
    delivery_id: Mapped[str] = mapped_column(String)
    provider: Mapped[str] = mapped_column(String)  # github | gitea | gitlab
    ref: Mapped[str | None] = mapped_column(String)
    commit: Mapped[str | None] = mapped_column(String)
    status: Mapped[str] = mapped_column(String)  # started | ignored | failed
    message: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(String)
    received_at: Mapped[datetime]
