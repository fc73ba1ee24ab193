"""Notifications: subscriptions, the durable outbox, and the notifier's cursor over events.

The notifier reads run/step events (``events``, ids in commit order) after its cursor, turns
those a subscription wants into ``notifications`` rows (unique per subscription and event, so
a rescan never queues one twice), and delivers them with retries. Nothing is lost if a process
dies between the event and the send: the event is committed with the transition, the cursor
moves only after the rows are queued, and a queued row stays pending until it is sent.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pydantic import Field
from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from mloop.errors import BadArgumentError, NotFoundError
from mloop.store.base import _Record
from mloop.store.models import Base, Event, Run

if TYPE_CHECKING:
    from mloop.store.database import Database

__all__ = ["NotificationRecord", "Notification", "NotifierCursor", "NotifyEvent", "NotifyRepository", "Subscription",
           "SubscriptionRecord"]

#: The cursor the notifier keeps over ``events``.
DEFAULT_CURSOR = "default"


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


# -- records -----------------------------------------------------------------------------------------

class SubscriptionRecord(_Record):
    """Who wants which events of which workflow (and step), by which channel."""

    id: str
    name: str
    workflow_name: str | None = None
    step_name: str | None = None
    events: list[str] = Field(default_factory=list)
    channel: str
    target: str
    secret: str | None = None
    enabled: bool = True
    created_at: datetime


class NotificationRecord(_Record):
    """One notification in the outbox (and, once sent or given up, in the delivery log)."""

    id: int
    subscription_id: str
    subscription_name: str | None = None
    event_id: int
    event: str
    run_id: str
    step_name: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    status: str  # pending | sent | failed
    attempts: int = 0
    next_attempt_at: datetime
    last_error: str | None = None
    created_at: datetime
    sent_at: datetime | None = None


class NotifyEvent(_Record):
    """An event with what a notification says about its run."""

    id: int
    run_id: str
    step_name: str | None = None
    from_status: str | None = None
    to_status: str
    at: datetime
    message: str | None = None
    workflow_name: str
    number: int
    origin: dict[str, Any] | None = None


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _naive(value: datetime) -> datetime:
    """A time as the store writes it: UTC (naive on SQLite columns, which keep no zone)."""
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


_SUB_FIELDS = frozenset({"workflow_name", "step_name", "events", "channel", "target", "secret", "enabled"})


# -- repository --------------------------------------------------------------------------------------

class NotifyRepository:
    """Subscriptions, the outbox and the notifier's cursor (``store.notify``).

    Every method is one transaction and returns records, never rows.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- subscriptions ------------------------------------------------------------------------
    def has_subscriptions(self) -> bool:
        """Whether any enabled subscription exists (one small query)."""
        with self.db.session(write=False) as session:
            return session.execute(select(Subscription.id).where(Subscription.enabled.is_(True)).limit(1)).first() \
                is not None

    def list_subscriptions(self, *, enabled_only: bool = False) -> list[SubscriptionRecord]:
        query = select(Subscription).order_by(Subscription.name)
        if enabled_only:
            query = query.where(Subscription.enabled.is_(True))
        with self.db.session(write=False) as session:
            return [SubscriptionRecord.model_validate(row) for row in session.scalars(query)]

    def find_subscription(self, name: str) -> SubscriptionRecord | None:
        with self.db.session(write=False) as session:
            row = session.scalars(select(Subscription).where(Subscription.name == name)).first()
            return None if row is None else SubscriptionRecord.model_validate(row)

    def get_subscription(self, name: str) -> SubscriptionRecord:
        """Raises: NotFoundError: no subscription of that name (the hint lists some)."""
        found = self.find_subscription(name)
        if found is None:
            known = [s.name for s in self.list_subscriptions()][:10]
            raise NotFoundError(f"no subscription named {name!r}",
                                hint=f"known subscriptions: {', '.join(known) or 'none'} (mloop notify list)")
        return found

    def add_subscription(self, name: str, *, channel: str, target: str, events: list[str],
                         workflow_name: str | None = None, step_name: str | None = None, secret: str | None = None,
                         enabled: bool = True, replace: bool = False) -> SubscriptionRecord:
        """Add a subscription (or, with ``replace``, update the one of that name).

        The notifier's cursor starts at the newest event if it has none yet, so a first
        subscription is not sent what happened before it.

        Raises:
            BadArgumentError: a subscription of that name exists (and not ``replace``).
        """
        values = dict(workflow_name=workflow_name, step_name=step_name, events=list(events), channel=channel,
                      target=target, secret=secret, enabled=enabled)
        try:
            with self.db.session(write=True) as session:
                self._ensure_cursor(session)
                row = session.scalars(select(Subscription).where(Subscription.name == name)).first()
                if row is not None and not replace:
                    raise BadArgumentError(f"a subscription named {name!r} exists already",
                                           hint=f"`mloop notify remove {name}` first, or choose another name")
                if row is None:
                    row = Subscription(id=uuid.uuid4().hex, name=name, created_at=_now(), **values)
                    session.add(row)
                else:
                    for key, value in values.items():
                        if getattr(row, key) != value:
                            setattr(row, key, value)
                session.flush()
                return SubscriptionRecord.model_validate(row)
        except Exception as exc:
            if isinstance(exc, IntegrityError) or isinstance(exc.__cause__, IntegrityError):
                raise BadArgumentError(f"a subscription named {name!r} exists already") from exc
            raise

    def remove_subscription(self, name: str) -> bool:
        """Remove a subscription and its notifications; False if there was none."""
        with self.db.session(write=True) as session:
            row = session.scalars(select(Subscription).where(Subscription.name == name)).first()
            if row is None:
                return False
            session.execute(delete(Notification).where(Notification.subscription_id == row.id))
            session.delete(row)
            return True

    # -- events and the cursor ----------------------------------------------------------------
    @staticmethod
    def _ensure_cursor(session: Any, name: str = DEFAULT_CURSOR) -> int:
        row = session.get(NotifierCursor, name)
        if row is not None:
            return int(row.event_id)
        newest = session.execute(select(func.max(Event.id))).scalar() or 0
        session.add(NotifierCursor(name=name, event_id=int(newest)))
        session.flush()
        return int(newest)

    def cursor(self, name: str = DEFAULT_CURSOR) -> int:
        """Where the notifier has read ``events`` up to (set to the newest event the first time)."""
        with self.db.session(write=False) as session:
            row = session.get(NotifierCursor, name)
            if row is not None:
                return int(row.event_id)
        with self.db.session(write=True) as session:
            return self._ensure_cursor(session, name)

    def events_after(self, event_id: int, limit: int = 500) -> list[NotifyEvent]:
        """Events after ``event_id`` in commit order, with their run's workflow and number."""
        query = (select(Event.id, Event.run_id, Event.step_name, Event.from_status, Event.to_status, Event.at,
                        Event.message, Run.workflow_name, Run.number, Run.origin)
                 .join(Run, Run.id == Event.run_id).where(Event.id > event_id).order_by(Event.id).limit(limit))
        with self.db.session(write=False) as session:
            return [NotifyEvent.model_validate(dict(row._mapping)) for row in session.execute(query)]

    def enqueue(self, rows: list[dict[str, Any]], *, cursor_to: int, cursor_from: int | None = None,
                name: str = DEFAULT_CURSOR, now: datetime | None = None) -> int:
        """Queue notifications and move the cursor to ``cursor_to``, in one transaction.

        A row already queued (same subscription and event) is skipped, so a rescan queues
        nothing twice. The cursor never moves back; with ``cursor_from`` it moves only if it is
        still there (else another notifier scanned the same events first: nothing is done).
        Returns how many rows were queued, due at ``now`` (default: the current time).
        """
        now = _naive(now) if now is not None else _now()
        queued = 0
        with self.db.session(write=True) as session:
            current = self._ensure_cursor(session, name)
            if cursor_from is not None and current != cursor_from:
                return 0
            for values in rows:
                row = dict(status="pending", attempts=0, next_attempt_at=now, last_error=None, created_at=now,
                           sent_at=None, **values)
                try:
                    with session.begin_nested():
                        session.add(Notification(**row))
                        session.flush()
                    queued += 1
                except IntegrityError:
                    pass  # queued by an earlier scan
            if cursor_to > current:
                session.execute(update(NotifierCursor).where(NotifierCursor.name == name)
                                .values(event_id=cursor_to))
        return queued

    # -- delivery -----------------------------------------------------------------------------
    def claim_due(self, now: datetime, *, limit: int = 20, lease_seconds: float = 120) -> list[NotificationRecord]:
        """Pending notifications due at ``now``, oldest first, each claimed for ``lease_seconds``
        (its next attempt moves past the lease) so that two notifiers don't send it twice."""
        from datetime import timedelta

        lease = _naive(now + timedelta(seconds=lease_seconds))
        claimed = []
        with self.db.session(write=True) as session:
            rows = session.scalars(select(Notification)
                                   .where(Notification.status == "pending",
                                          Notification.next_attempt_at <= _naive(now))
                                   .order_by(Notification.next_attempt_at, Notification.id).limit(limit)).all()
            for row in rows:
                done = session.execute(update(Notification)
                                       .where(Notification.id == row.id, Notification.status == "pending",
                                              Notification.next_attempt_at == row.next_attempt_at)
                                       .values(next_attempt_at=lease).execution_options(synchronize_session=False))
                if getattr(done, "rowcount", 1) == 1:
                    claimed.append(NotificationRecord.model_validate(row))
        return claimed

    def release(self, notification_id: int, at: datetime) -> None:
        """Hand back a claimed notification unsent: due again at ``at``."""
        with self.db.session(write=True) as session:
            session.execute(update(Notification).where(Notification.id == notification_id,
                                                       Notification.status == "pending")
                            .values(next_attempt_at=_naive(at)).execution_options(synchronize_session=False))

    def mark_sent(self, notification_id: int, *, attempts: int, at: datetime) -> None:
        with self.db.session(write=True) as session:
            session.execute(update(Notification).where(Notification.id == notification_id)
                            .values(status="sent", attempts=attempts, sent_at=_naive(at), last_error=None)
                            .execution_options(synchronize_session=False))

    def mark_failed(self, notification_id: int, *, attempts: int, error: str, next_attempt_at: datetime,
                    final: bool) -> None:
        """Record a failed attempt: pending again at ``next_attempt_at``, or ``failed`` when ``final``."""
        with self.db.session(write=True) as session:
            session.execute(update(Notification).where(Notification.id == notification_id)
                            .values(status="failed" if final else "pending", attempts=attempts,
                                    last_error=error[:1000], next_attempt_at=_naive(next_attempt_at))
                            .execution_options(synchronize_session=False))

    def backlog(self) -> int:
        """How many notifications wait to be sent (pending, retries included)."""
        with self.db.session(write=False) as session:
            return int(session.scalar(select(func.count()).select_from(Notification)
                                      .where(Notification.status == "pending")) or 0)

    def list_notifications(self, *, limit: int = 50, status: str | None = None,
                           run_id: str | None = None) -> list[NotificationRecord]:
        """The delivery log, newest first, with each subscription's name."""
        query = (select(Notification, Subscription.name).join(Subscription,
                                                               Subscription.id == Notification.subscription_id)
                 .order_by(Notification.id.desc()).limit(limit))
        if status:
            query = query.where(Notification.status == status)
        if run_id:
            query = query.where(Notification.run_id == run_id)
        with self.db.session(write=False) as session:
            out = []
            for row, sub_name in session.execute(query):
                record = NotificationRecord.model_validate(row)
                record.subscription_name = sub_name
                out.append(record)
            return out
