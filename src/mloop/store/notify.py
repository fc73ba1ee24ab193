"""Notifications: subscriptions, the durable outbox, and the notifier's cursor over events.

The notifier reads run/step events (``events``, ids in commit order) after its cursor, turns
those a subscription wants into ``notifications`` rows (unique per subscription and event, so
a rescan never queues one twice), and delivers them with retries. Nothing is lost if a process
dies between the event and the send: the event is committed with the transition, the cursor
moves only after the rows are queued, and a queued row stays pending until it is sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mloop.store.models import Base

__all__ = ["Notification", "NotifierCursor", "Subscription"]


class Subscription(Base):
    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(String, unique=True)
    workflow_name: Mapped[str | None] = mapped_column(String)  # None: every workflow
    step_name: Mapped[str | None] = mapped_column(String)  # None: run events
    events: Mapped[list[str]] = mapped_column(JSON)
    channel: Mapped[str] = mapped_column(String)  # webhook | slack | email
    target: Mapped[str] = mapped_column(Text)  # URL, or comma-separated addresses
    secret: Mapped[str | None] = mapped_column(String)  # HMAC key of a webhook
    enabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("subscription_id", "event_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(String)
    run_id: Mapped[str] = mapped_column(String, index=True)
    step_name: Mapped[str | None] = mapped_column(String)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String, index=True)  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class NotifierCursor(Base):
    __tablename__ = "notifier_cursor"

    name: Mapped[str] = mapped_column(String, primary_key=True)
    event_id: Mapped[int] = mapped_column(Integer)
