"""SQLAlchemy models of the metadata store.

The tables mirror the pydantic records of :mod:`mloop.store.base`; each model's
``to_record()`` is the only way a row leaves the store. The Alembic migrations in
``migrations/versions`` must create exactly this schema (a test compares them).

Timestamps are stored as ``DateTime(timezone=True)``. PostgreSQL keeps the zone; SQLite keeps
a naive text value, so the store writes UTC only and ``to_record()`` marks values read back
as UTC.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from mloop.store.base import (
    AlgorithmRecord,
    ArtifactRecord,
    EventRecord,
    MetricRecord,
    ReleaseRecord,
    RunRecord,
    StepRecord,
)

#: Every constraint and index gets a predictable name, so later migrations (and SQLite's
#: batch mode, which recreates tables) can refer to them on both dialects.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of the store's tables, with named constraints."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: DateTime(timezone=True)}


def as_utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime; naive values are taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


class Release(Base):
    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("workflow_name", "version"),)

    id: Mapped[str] = mapped_column(String, primary_key=True)
    workflow_name: Mapped[str] = mapped_column(String)
    version: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    spec_hash: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime]
    extend: Mapped[dict[str, Any]] = mapped_column(JSON)

    def to_record(self) -> ReleaseRecord:
        """This row as a :class:`~mloop.store.base.ReleaseRecord`."""
        return ReleaseRecord.model_validate(self)


class Run(Base):
    __tablename__ = "runs"
    # The unique pair also serves "runs of this workflow" lookups and counting; the two indexes
    # serve the newest-first pages of all runs and of one workflow in some status (the server's
    # run list: without them every page sorts every run).
    __table_args__ = (UniqueConstraint("workflow_name", "number"), Index(None, "created_at", "number"),
                      Index(None, "workflow_name", "status", "created_at", "number"))

    id: Mapped[str] = mapped_column(String, primary_key=True)
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id"), index=True)
    workflow_name: Mapped[str] = mapped_column(String)
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String, index=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    storages: Mapped[dict[str, str]] = mapped_column(JSON)
    selected_steps: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    engine_pid: Mapped[int | None] = mapped_column(Integer)
    engine_host: Mapped[str | None] = mapped_column(String)
    engine_started_at: Mapped[float | None] = mapped_column(Double)
    # The server or worker engine that claimed it (mloop.store.engines); null from a terminal.
    engine_id: Mapped[str | None] = mapped_column(String, index=True)
    stop_requested: Mapped[bool] = mapped_column(Boolean)
    message: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer)
    # What started it: None from a terminal; {"kind": "schedule" | "git" | "api", ...} otherwise.
    origin: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))

    def to_record(self) -> RunRecord:
        """This row as a :class:`~mloop.store.base.RunRecord`."""
        return RunRecord.model_validate(self)


class Step(Base):
    __tablename__ = "steps"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String, primary_key=True)
    # Steps of one run share a creation time; the position keeps their declared order.
    position: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String)
    status: Mapped[str] = mapped_column(String)
    attempt: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    pid: Mapped[int | None] = mapped_column(Integer)
    # The executor's opaque reference to the job (``local:<pid>:<start time>``, ...): what
    # stop and reconcile hand back to the executor. ``pid`` stays for display.
    executor_ref: Mapped[str | None] = mapped_column(String)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str | None] = mapped_column(Text)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    outputs_skipped: Mapped[bool] = mapped_column(Boolean)
    workdir: Mapped[str | None] = mapped_column(String)
    log_path: Mapped[str | None] = mapped_column(String)
    code_hash: Mapped[str | None] = mapped_column(String)
    # Step caching: the key of what decides the result, its parts, and where a hit came from.
    cache_key: Mapped[str | None] = mapped_column(String, index=True)
    cache_facts: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    cached_from: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    # The job's environment (interpreter, requirements digest, where it lives).
    environment: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))

    def to_record(self) -> StepRecord:
        """This row as a :class:`~mloop.store.base.StepRecord`."""
        return StepRecord.model_validate(self)


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    step_name: Mapped[str | None] = mapped_column(String)
    from_status: Mapped[str | None] = mapped_column(String)
    to_status: Mapped[str] = mapped_column(String)
    at: Mapped[datetime]
    message: Mapped[str | None] = mapped_column(Text)

    def to_record(self) -> EventRecord:
        """This row as a :class:`~mloop.store.base.EventRecord`."""
        return EventRecord.model_validate(self)


class Metric(Base):
    __tablename__ = "metrics"
    __table_args__ = (
        ForeignKeyConstraint(["run_id", "step_name"], ["steps.run_id", "steps.name"], ondelete="CASCADE"),
        Index(None, "run_id", "step_name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String)
    step_name: Mapped[str] = mapped_column(String)
    key: Mapped[str] = mapped_column(String)
    title: Mapped[str] = mapped_column(String)
    type: Mapped[str] = mapped_column(String)
    value: Mapped[float | None] = mapped_column(Double)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String)

    def to_record(self) -> MetricRecord:
        """This row as a :class:`~mloop.store.base.MetricRecord`."""
        return MetricRecord.model_validate(self)


class Artifact(Base):
    __tablename__ = "artifacts"
    __table_args__ = (
        ForeignKeyConstraint(["run_id", "step_name"], ["steps.run_id", "steps.name"], ondelete="CASCADE"),
        Index(None, "run_id", "step_name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String)
    step_name: Mapped[str] = mapped_column(String)
    name: Mapped[str] = mapped_column(String)
    kind: Mapped[str] = mapped_column(String)
    uri: Mapped[str] = mapped_column(Text)
    digest: Mapped[str | None] = mapped_column(String)
    # A 32-bit INTEGER would cap artifacts at 2 GiB on PostgreSQL.
    size: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime]

    def to_record(self) -> ArtifactRecord:
        """This row as a :class:`~mloop.store.base.ArtifactRecord`."""
        return ArtifactRecord.model_validate(self)


class Algorithm(Base):
    __tablename__ = "algorithms"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(String)
    version: Mapped[str] = mapped_column(String)
    subscription_id: Mapped[str | None] = mapped_column(String, index=True)
    code_dir: Mapped[str] = mapped_column(String)
    boot_file: Mapped[str | None] = mapped_column(String)
    command: Mapped[str | None] = mapped_column(Text)
    engine: Mapped[dict[str, Any]] = mapped_column(JSON)
    parameters: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    inputs: Mapped[list[str]] = mapped_column(JSON)
    outputs: Mapped[list[str]] = mapped_column(JSON)
    environments: Mapped[dict[str, str]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]

    def to_record(self) -> AlgorithmRecord:
        """This row as a :class:`~mloop.store.base.AlgorithmRecord`."""
        return AlgorithmRecord.model_validate(self)


# The other areas' tables share this Base; importing them here puts them in Base.metadata,
# which the migrations are compared against.
from mloop.store import datasets as _datasets  # noqa: E402,F401
from mloop.store import labels as _labels  # noqa: E402,F401
from mloop.store import registry as _registry  # noqa: E402,F401
from mloop.store import services as _services  # noqa: E402,F401
