"""Managed inference services and their deployments.

Tables live here (on the store's shared ``Base``) next to the repository that reads and
writes them; :class:`~mloop.store.base.Store` declares the repository as ``store.services``, and it
reaches the database only through the :class:`~mloop.store.database.Database` the store hands it.

A ``services`` row is the state of one managed service: what it should serve (``desired_*``,
written by the deployer), what it serves (``model_*``, ``worker_pid``, ``status``, written by
its supervisor process), and how to reach it (``port``/``url`` for clients, ``control_port``
plus ``token`` for the deployer, ``supervisor_pid`` plus ``supervisor_started_at`` to tell a
live supervisor from a dead one whose pid was reused). Both writers update only their own
columns, one statement each, so neither overwrites the other.

``service_deployments`` keeps the history: one row per deploy (which version, who asked, how
it ended).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field
from sqlalchemy import JSON, Double, ForeignKey, Integer, String, Text, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from mloop.errors import NotFoundError, ManagedServiceError
from mloop.store.base import _Record
from mloop.store.models import Base

if TYPE_CHECKING:
    from mloop.store.database import Database

__all__ = ["DeploymentRecord", "Service", "ServiceDeployment", "ServiceRecord", "ServiceRepository",
           "check_service_name", "SERVICE_STATUSES"]

ServiceStatus = Literal["deploying", "running", "failed", "stopped"]
SERVICE_STATUSES: frozenset[str] = frozenset({"deploying", "running", "failed", "stopped"})

#: 1-64 letters (any script, Chinese included), digits, ``-`` or ``_`` (reference 6.5).
_NAME_RE = re.compile(r"^[\w\-]{1,64}$")


def check_service_name(name: str) -> str:
    """Return ``name`` if it is a valid service name.

    Raises:
        ManagedServiceError: it is not.
    """
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ManagedServiceError(f"invalid service name {name!r}",
                           hint="1-64 letters (Chinese included), digits, '-' or '_', e.g. mnist or service-1",
                           service=str(name))
    return name


def _now() -> datetime:
    return datetime.now(timezone.utc)


# -- records -----------------------------------------------------------------------------------------

class ServiceRecord(_Record):
    """One managed service: where it listens, what it serves, who supervises it."""

    id: str
    name: str
    status: str  # deploying | running | failed | stopped
    message: str | None = None
    host: str
    port: int | None = None
    url: str | None = None
    control_port: int | None = None
    token: str | None = None
    supervisor_pid: int | None = None
    supervisor_started_at: float | None = None
    supervisor_host: str | None = None  # the machine it runs on: pids mean nothing elsewhere
    worker_pid: int | None = None
    model_name: str | None = None  # what is being served now
    model_version: str | None = None
    model_id: str | None = None
    desired_model_name: str | None = None  # what the last deploy asked for
    desired_model_version: str | None = None
    follows: str | None = None  # an alias of the model (``production``) the service moves with
    config: dict[str, Any] = Field(default_factory=dict)  # model_dir, batching options, envs
    restarts: int = 0
    log_path: str
    stop_at: datetime | None = None  # ServiceConfig.schedule: the supervisor stops itself then
    run_id: str | None = None  # the run (and step) that deployed it last
    step_name: str | None = None
    created_at: datetime
    updated_at: datetime

    @property
    def model_ref(self) -> str | None:
        """``NAME:VERSION`` of the version being served, if any."""
        return f"{self.model_name}:{self.model_version}" if self.model_name else None


class DeploymentRecord(_Record):
    """One deploy of a model version to a service."""

    id: str
    service_id: str
    model_name: str
    model_version: str
    model_id: str | None = None
    status: str  # deploying | succeeded | failed
    message: str | None = None
    run_id: str | None = None
    step_name: str | None = None
    created_at: datetime
    finished_at: datetime | None = None


# -- tables ------------------------------------------------------------------------------------------

class Service(Base):
    __tablename__ = "services"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(String, unique=True)
    status: Mapped[str] = mapped_column(String)
    message: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str] = mapped_column(String)
    port: Mapped[int | None] = mapped_column(Integer)
    url: Mapped[str | None] = mapped_column(String)
    control_port: Mapped[int | None] = mapped_column(Integer)
    token: Mapped[str | None] = mapped_column(String)
    supervisor_pid: Mapped[int | None] = mapped_column(Integer)
    supervisor_started_at: Mapped[float | None] = mapped_column(Double)
    supervisor_host: Mapped[str | None] = mapped_column(String)
    worker_pid: Mapped[int | None] = mapped_column(Integer)
    model_name: Mapped[str | None] = mapped_column(String)
    model_version: Mapped[str | None] = mapped_column(String)
    model_id: Mapped[str | None] = mapped_column(String)
    desired_model_name: Mapped[str | None] = mapped_column(String)
    desired_model_version: Mapped[str | None] = mapped_column(String)
    follows: Mapped[str | None] = mapped_column(String)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    restarts: Mapped[int] = mapped_column(Integer)
    log_path: Mapped[str] = mapped_column(Text)
    stop_at: Mapped[datetime | None]
    run_id: Mapped[str | None] = mapped_column(String)
    step_name: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    def to_record(self) -> ServiceRecord:
        return ServiceRecord.model_validate(self)


class ServiceDeployment(Base):
    __tablename__ = "service_deployments"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), index=True)
    model_name: Mapped[str] = mapped_column(String)
    model_version: Mapped[str] = mapped_column(String)
    model_id: Mapped[str | None] = mapped_column(String)
    status: Mapped[str] = mapped_column(String)
    message: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(String)
    step_name: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]

    def to_record(self) -> DeploymentRecord:
        return DeploymentRecord.model_validate(self)


#: Columns :meth:`ServiceRepository.update` may set.
_UPDATABLE: frozenset[str] = frozenset({
    "status", "message", "host", "port", "url", "control_port", "token", "supervisor_pid", "supervisor_started_at",
    "supervisor_host", "worker_pid", "model_name", "model_version", "model_id", "desired_model_name",
    "desired_model_version", "follows", "config", "restarts", "log_path", "stop_at", "run_id", "step_name",
})


# -- repository --------------------------------------------------------------------------------------

class ServiceRepository:
    """Services and their deployments in the metadata store (``store.services``).

    Every method is one transaction and returns records, never rows.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, name: str, *, host: str, log_path: str, config: dict[str, Any] | None = None,
               port: int | None = None) -> ServiceRecord:
        """Add a service (status ``deploying``, nothing served yet).

        Raises:
            ManagedServiceError: an invalid name, or a service of that name exists already.
        """
        check_service_name(name)
        now = _now()
        row = Service(id=uuid.uuid4().hex, name=name, status="deploying", message=None, host=host, port=port,
                      url=None, control_port=None, token=None, supervisor_pid=None, supervisor_started_at=None,
                      supervisor_host=None, worker_pid=None, model_name=None, model_version=None, model_id=None,
                      desired_model_name=None, desired_model_version=None, config=dict(config or {}), restarts=0,
                      log_path=log_path, stop_at=None, run_id=None, step_name=None, created_at=now, updated_at=now)
        try:
            with self.db.session(write=True) as session:
                session.add(row)
                session.flush()
                return row.to_record()
        except Exception as exc:
            if isinstance(exc.__cause__, IntegrityError) or isinstance(exc, IntegrityError):
                raise ManagedServiceError(f"a service named {name!r} exists already", service=name,
                                   hint="deploy to it to switch its version, or choose another name") from exc
            raise

    def get(self, name_or_id: str) -> ServiceRecord:
        """A service by name (or by id).

        Raises:
            NotFoundError: no such service (the hint lists the known ones).
        """
        found = self.find(name_or_id)
        if found is None:
            known = [s.name for s in self.list_all()][:10]
            raise NotFoundError(f"no service named {name_or_id!r}", service=name_or_id,
                                hint=f"known services: {', '.join(known) or 'none'} (mloop service list)")
        return found

    def find(self, name_or_id: str) -> ServiceRecord | None:
        """A service by name (or by id), or None."""
        with self.db.session(write=False) as session:
            row = session.scalars(select(Service).where(Service.name == name_or_id)).first()
            if row is None:
                row = session.get(Service, name_or_id)
            return None if row is None else row.to_record()

    def list_all(self, status: list[str] | None = None) -> list[ServiceRecord]:
        """Every service, by name (optionally only those in ``status``)."""
        query = select(Service).order_by(Service.name)
        if status:
            query = query.where(Service.status.in_(status))
        with self.db.session(write=False) as session:
            return [row.to_record() for row in session.scalars(query)]

    def update(self, service_id: str, **fields: Any) -> ServiceRecord:
        """Set some columns of a service (one UPDATE; ``updated_at`` moves).

        Raises:
            ValueError: a column that cannot be set.
            NotFoundError: no service has this id.
        """
        bad = sorted(set(fields) - _UPDATABLE)
        if bad:
            raise ValueError(f"ServiceRepository.update: cannot set {', '.join(bad)}")
        if "status" in fields and fields["status"] not in SERVICE_STATUSES:
            raise ValueError(f"unknown service status {fields['status']!r}")
        with self.db.session(write=True) as session:
            session.execute(update(Service).where(Service.id == service_id)
                            .values(**fields, updated_at=_now()).execution_options(synchronize_session=False))
            row = session.get(Service, service_id)
            if row is None:
                raise NotFoundError(f"no service with id {service_id!r}", service=service_id)
            session.refresh(row)
            return row.to_record()

    def delete(self, service_id: str) -> None:
        """Remove a service and its deployment history."""
        with self.db.session(write=True) as session:
            row = session.get(Service, service_id)
            if row is not None:
                session.delete(row)

    # -- deployments --------------------------------------------------------------------------
    def add_deployment(self, service_id: str, *, model_name: str, model_version: str, model_id: str | None = None,
                       run_id: str | None = None, step_name: str | None = None) -> DeploymentRecord:
        """Record that a deploy of ``model_name:model_version`` started."""
        row = ServiceDeployment(id=uuid.uuid4().hex, service_id=service_id, model_name=model_name,
                                model_version=model_version, model_id=model_id, status="deploying", message=None,
                                run_id=run_id, step_name=step_name, created_at=_now(), finished_at=None)
        with self.db.session(write=True) as session:
            session.add(row)
            session.flush()
            return row.to_record()

    def finish_deployment(self, deployment_id: str, status: str, message: str | None = None) -> DeploymentRecord:
        """Mark a deploy ``succeeded`` or ``failed``.

        Raises:
            NotFoundError: no such deployment.
        """
        with self.db.session(write=True) as session:
            row = session.get(ServiceDeployment, deployment_id)
            if row is None:
                raise NotFoundError(f"no deployment with id {deployment_id!r}")
            row.status, row.message, row.finished_at = status, message, _now()
            session.flush()
            return row.to_record()

    def list_deployments(self, service_id: str, limit: int = 20) -> list[DeploymentRecord]:
        """A service's latest deployments, newest first."""
        with self.db.session(write=False) as session:
            rows = session.scalars(select(ServiceDeployment).where(ServiceDeployment.service_id == service_id)
                                   .order_by(ServiceDeployment.created_at.desc()).limit(limit))
            return [row.to_record() for row in rows]

    def latest_deployments(self, limit: int = 20) -> dict[str, list[DeploymentRecord]]:
        """Every service's latest ``limit`` deployments, newest first, by service id, in one
        query (a window over each service's deployments), however many services there are."""
        newest = func.row_number().over(partition_by=ServiceDeployment.service_id,
                                        order_by=(ServiceDeployment.created_at.desc(), ServiceDeployment.id.desc()))
        ranked = select(ServiceDeployment.id.label("id"), newest.label("n")).subquery()
        query = (select(ServiceDeployment).join(ranked, ranked.c.id == ServiceDeployment.id)
                 .where(ranked.c.n <= limit)
                 .order_by(ServiceDeployment.service_id, ServiceDeployment.created_at.desc(),
                           ServiceDeployment.id.desc()))
        out: dict[str, list[DeploymentRecord]] = {}
        with self.db.session(write=False) as session:
            for row in session.scalars(query):
                out.setdefault(row.service_id, []).append(row.to_record())
        return out
