"""Saved run configurations of released workflows: named placeholder values to start a run with."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mloop.store.models import Base

__all__ = ["RunConfig"]


class RunConfig(Base):
    __tablename__ = "run_configs"
    __table_args__ = (UniqueConstraint("workflow_name", "name"),)

    id: Mapped[str] = mapped_column(String, primary_key=True)
    workflow_name: Mapped[str] = mapped_column(String)
    name: Mapped[str] = mapped_column(String)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    steps: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    description: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
