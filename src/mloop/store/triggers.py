"""Git-push triggers and the deliveries they received.

``trigger_deliveries`` is unique per (trigger, delivery id): a redelivered event is recorded
once and runs nothing the second time.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pydantic import Field
from sqlalchemy import JSON, Boolean, Integer, String, Text, UniqueConstraint, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from mloop.errors import NotFoundError, TriggerError
from mloop.store.base import _Record
from mloop.store.models import Base

if TYPE_CHECKING:
    from mloop.store.database import Database

__all__ = ["DeliveryRecord", "DuplicateDelivery", "GitTrigger", "TriggerDelivery", "TriggerRecord",
           "TriggerRepository"]


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

    def to_record(self) -> DeliveryRecord:
        return DeliveryRecord.model_validate(self)


def _now() -> datetime:
    return datetime.now(timezone.utc)


# -- records -----------------------------------------------------------------------------------------

class TriggerRecord(_Record):
    """One git-push trigger: which repository, which workflow file in it, which pushes count."""

    name: str
    repo_url: str
    workflow_path: str
    branches: list[str] = Field(default_factory=list)
    paths: list[str] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)
    secret: str = Field(repr=False)
    enabled: bool = True
    created_at: datetime

    def public(self) -> dict[str, Any]:
        """The trigger as JSON, without its secret."""
        return self.model_dump(mode="json", exclude={"secret"})


class DeliveryRecord(_Record):
    """One push event received for a trigger, and what came of it."""

    id: int
    trigger_name: str
    delivery_id: str
    provider: str
    ref: str | None = None
    commit: str | None = None
    status: str  # started | ignored | failed | received
    message: str | None = None
    run_id: str | None = None
    received_at: datetime


class DuplicateDelivery(Exception):
    """This (trigger, delivery id) was recorded already: a redelivery."""


#: Columns :meth:`TriggerRepository.finish_delivery` may set.
_DELIVERY_UPDATABLE: frozenset[str] = frozenset({"ref", "commit", "status", "message", "run_id"})


# -- repository --------------------------------------------------------------------------------------

class TriggerRepository:
    """Git-push triggers and their deliveries in the metadata store (``store.triggers``).

    Every method is one transaction and returns records, never rows.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, name: str, *, repo_url: str, workflow_path: str, secret: str,
               branches: list[str] | None = None, paths: list[str] | None = None,
               params: dict[str, Any] | None = None, enabled: bool = True) -> TriggerRecord:
        """Add a trigger (the caller checks the values).

        Raises:
            TriggerError: a trigger of that name exists already.
        """
        row = GitTrigger(name=name, repo_url=repo_url, workflow_path=workflow_path, branches=list(branches or []),
                         paths=list(paths or []), params=dict(params or {}), secret=secret, enabled=enabled,
                         created_at=_now())
        try:
            with self.db.session(write=True) as session:
                session.add(row)
                session.flush()
                return TriggerRecord.model_validate(row)
        except Exception as exc:
            if isinstance(exc, IntegrityError) or isinstance(exc.__cause__, IntegrityError):
                raise TriggerError(f"a trigger named {name!r} exists already", trigger=name,
                                   hint="delete it first (mloop trigger delete NAME) or choose another name") from exc
            raise

    def find(self, name: str) -> TriggerRecord | None:
        """A trigger by name, or None."""
        with self.db.session(write=False) as session:
            row = session.get(GitTrigger, name)
            return None if row is None else TriggerRecord.model_validate(row)

    def get(self, name: str) -> TriggerRecord:
        """A trigger by name.

        Raises:
            NotFoundError: no such trigger.
        """
        found = self.find(name)
        if found is None:
            raise NotFoundError(f"no trigger named {name!r}", trigger=name,
                                hint="mloop trigger list shows the triggers")
        return found

    def list_all(self) -> list[TriggerRecord]:
        """Every trigger, by name."""
        with self.db.session(write=False) as session:
            return [TriggerRecord.model_validate(row)
                    for row in session.scalars(select(GitTrigger).order_by(GitTrigger.name))]

    def delete(self, name: str) -> bool:
        """Remove a trigger and its deliveries; False when there was none."""
        with self.db.session(write=True) as session:
            row = session.get(GitTrigger, name)
            if row is None:
                return False
            session.delete(row)
            for delivery in session.scalars(select(TriggerDelivery).where(TriggerDelivery.trigger_name == name)):
                session.delete(delivery)
            return True

    # -- deliveries ---------------------------------------------------------------------------
    def add_delivery(self, trigger_name: str, delivery_id: str, *, provider: str, ref: str | None = None,
                     commit: str | None = None, status: str = "received",
                     message: str | None = None) -> DeliveryRecord:
        """Record a delivery before acting on it.

        Raises:
            DuplicateDelivery: this delivery id was recorded for this trigger already.
        """
        row = TriggerDelivery(trigger_name=trigger_name, delivery_id=delivery_id, provider=provider, ref=ref,
                              commit=commit, status=status, message=message, run_id=None, received_at=_now())
        try:
            with self.db.session(write=True) as session:
                session.add(row)
                session.flush()
                return row.to_record()
        except Exception as exc:
            if isinstance(exc, IntegrityError) or isinstance(exc.__cause__, IntegrityError):
                raise DuplicateDelivery(f"{trigger_name}/{delivery_id}") from exc
            raise

    def finish_delivery(self, delivery_pk: int, **fields: Any) -> DeliveryRecord:
        """Set what came of a delivery (status, message, run id, ref, commit).

        Raises:
            ValueError: a column that cannot be set.
            NotFoundError: no such delivery.
        """
        bad = sorted(set(fields) - _DELIVERY_UPDATABLE)
        if bad:
            raise ValueError(f"TriggerRepository.finish_delivery: cannot set {', '.join(bad)}")
        with self.db.session(write=True) as session:
            session.execute(update(TriggerDelivery).where(TriggerDelivery.id == delivery_pk).values(**fields)
                            .execution_options(synchronize_session=False))
            row = session.get(TriggerDelivery, delivery_pk)
            if row is None:
                raise NotFoundError(f"no delivery with id {delivery_pk!r}")
            session.refresh(row)
            return row.to_record()

    def list_deliveries(self, trigger_name: str, limit: int = 50) -> list[DeliveryRecord]:
        """A trigger's latest deliveries, newest first."""
        with self.db.session(write=False) as session:
            rows = session.scalars(select(TriggerDelivery).where(TriggerDelivery.trigger_name == trigger_name)
                                   .order_by(TriggerDelivery.id.desc()).limit(limit))
            return [row.to_record() for row in rows]
