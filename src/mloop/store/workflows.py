"""Saved run configurations of released workflows: named placeholder values to start a run with.

:class:`WorkflowRepository` (``store.workflows``) keeps them, and removes what belongs to a
workflow: one ended run (its steps, events, metrics and artifacts go with it by the foreign
keys' ``ON DELETE CASCADE``), or a whole workflow (its releases, runs and configurations), each
in one transaction that refuses while a run is still live.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, cast

from pydantic import Field
from sqlalchemy import JSON, CursorResult, String, Text, UniqueConstraint, delete, func, select
from sqlalchemy.orm import Mapped, mapped_column

from mloop.errors import NotFoundError, RunStateError
from mloop.store.base import TERMINAL_RUN, _Record
from mloop.store.models import Base, Release, Run

if TYPE_CHECKING:
    from mloop.store.database import Database

__all__ = ["DeletedWorkflow", "RunConfig", "RunConfigRecord", "WorkflowRepository", "WorkflowRunStats"]


def _now() -> datetime:
    return datetime.now(timezone.utc)


class RunConfigRecord(_Record):
    """A saved run configuration: placeholder values (and optionally steps) to start a run with."""

    id: str
    workflow_name: str
    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    steps: list[str] | None = None
    description: str = ""
    created_at: datetime
    updated_at: datetime


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

    def to_record(self) -> RunConfigRecord:
        return RunConfigRecord.model_validate(self)


@dataclass(frozen=True)
class WorkflowRunStats:
    """How many runs a workflow has, and the status of its newest one."""

    runs: int = 0
    last_status: str | None = None
    last_run_id: str | None = None


@dataclass(frozen=True)
class DeletedWorkflow:
    """What :meth:`WorkflowRepository.delete_workflow` removed."""

    name: str
    releases: int
    configs: int
    run_ids: list[str] = field(default_factory=list)


class WorkflowRepository:
    """Run configurations, and deleting runs and workflows (``store.workflows``).

    Every method is one transaction and returns records, never rows.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- run configurations ---------------------------------------------------------------------
    def save_config(self, workflow_name: str, name: str, params: dict[str, Any], *, steps: list[str] | None = None,
                    description: str = "") -> RunConfigRecord:
        """Add the configuration ``name`` of a workflow, or replace its values (``created_at`` stays)."""
        now = _now()
        with self.db.session(write=True) as session:
            self.db.lock_numbering(session, f"config:{workflow_name}")
            row = session.scalars(select(RunConfig).where(RunConfig.workflow_name == workflow_name,
                                                          RunConfig.name == name)).first()
            if row is None:
                row = RunConfig(id=uuid.uuid4().hex, workflow_name=workflow_name, name=name, created_at=now)
                session.add(row)
            row.params, row.steps, row.description, row.updated_at = dict(params), steps, description, now
            session.flush()
            return row.to_record()

    def find_config(self, workflow_name: str, name: str) -> RunConfigRecord | None:
        with self.db.session(write=False) as session:
            row = session.scalars(select(RunConfig).where(RunConfig.workflow_name == workflow_name,
                                                          RunConfig.name == name)).first()
            return None if row is None else row.to_record()

    def get_config(self, workflow_name: str, name: str) -> RunConfigRecord:
        """Raises NotFoundError (the hint lists the workflow's configurations)."""
        found = self.find_config(workflow_name, name)
        if found is None:
            known = [c.name for c in self.list_configs(workflow_name)]
            raise NotFoundError(f"workflow {workflow_name!r} has no run configuration named {name!r}",
                                hint=f"its configurations: {', '.join(known) or 'none'}", workflow=workflow_name,
                                config=name)
        return found

    def list_configs(self, workflow_name: str) -> list[RunConfigRecord]:
        """A workflow's configurations, by name."""
        with self.db.session(write=False) as session:
            rows = session.scalars(select(RunConfig).where(RunConfig.workflow_name == workflow_name)
                                   .order_by(RunConfig.name))
            return [row.to_record() for row in rows]

    def delete_config(self, workflow_name: str, name: str) -> RunConfigRecord:
        """Remove a configuration; the one removed. Raises NotFoundError."""
        record = self.get_config(workflow_name, name)
        with self.db.session(write=True) as session:
            session.execute(delete(RunConfig).where(RunConfig.id == record.id))
        return record

    # -- runs and workflows ---------------------------------------------------------------------
    def run_stats(self) -> dict[str, WorkflowRunStats]:
        """Per workflow name: how many runs, and its newest run's status."""
        with self.db.session(write=False) as session:
            counts = dict(session.execute(select(Run.workflow_name, func.count()).group_by(Run.workflow_name)).all())
            newest = select(Run.workflow_name, func.max(Run.number).label("n")).group_by(Run.workflow_name).subquery()
            last = session.execute(select(Run.workflow_name, Run.status, Run.id).join(
                newest, (Run.workflow_name == newest.c.workflow_name) & (Run.number == newest.c.n))).all()
        return {name: WorkflowRunStats(counts.get(name, 0), status, run_id) for name, status, run_id in last}

    def delete_run(self, run_id: str) -> None:
        """Remove an ended run with its steps, events, metrics and artifacts.

        Raises:
            NotFoundError: no run has this id.
            RunStateError: the run has not ended (checked in the same transaction).
        """
        with self.db.session(write=True) as session:
            row = session.get(Run, run_id)
            if row is None:
                raise NotFoundError(f"no run with id {run_id!r}", run_id=run_id)
            if row.status not in TERMINAL_RUN:
                raise RunStateError(f"run {run_id} is {row.status}; only an ended run can be deleted",
                                    hint=f"stop it first (`mloop stop {run_id[:12]}`)", run_id=run_id)
            session.execute(delete(Run).where(Run.id == run_id))

    def delete_workflow(self, workflow_name: str) -> DeletedWorkflow:
        """Remove a workflow: its runs (all ended), releases and run configurations, together.

        Raises:
            NotFoundError: nothing of that name was released and it has no configurations.
            RunStateError: one of its runs has not ended (nothing is removed).
        """
        with self.db.session(write=True) as session:
            self.db.lock_numbering(session, workflow_name)
            live = session.execute(select(Run.id, Run.status).where(Run.workflow_name == workflow_name,
                                                                    Run.status.not_in(TERMINAL_RUN))).all()
            if live:
                listed = ", ".join(f"{rid[:12]} ({status})" for rid, status in live[:5])
                raise RunStateError(f"workflow {workflow_name!r} has {len(live)} run(s) not ended: {listed}",
                                    hint="stop them first (`mloop stop RUN`), then delete the workflow",
                                    workflow=workflow_name)
            run_ids = list(session.scalars(select(Run.id).where(Run.workflow_name == workflow_name)))
            session.execute(delete(Run).where(Run.workflow_name == workflow_name))
            releases = cast(CursorResult[Any], session.execute(
                delete(Release).where(Release.workflow_name == workflow_name))).rowcount
            configs = cast(CursorResult[Any], session.execute(
                delete(RunConfig).where(RunConfig.workflow_name == workflow_name))).rowcount
            if not releases and not configs and not run_ids:
                raise NotFoundError(f"no workflow named {workflow_name!r} was released here", workflow=workflow_name)
        return DeletedWorkflow(workflow_name, releases or 0, configs or 0, run_ids)
