"""Labeling tasks and the labels they receive.

Tables live here (on the store's shared ``Base``) next to the repository that reads and
writes them; :class:`~mloop.store.base.Store` declares the repository as ``store.labels``, and it
reaches the database only through the :class:`~mloop.store.database.Database` the store hands it.

A task labels one dataset version (its *base*). Its name is unique within its dataset. Labels
arrive per sample (latest wins, with who gave them and when) while the task is
``in_progress``; completing it records the labeled dataset version made from them, after which
the task takes no more labels. The manifest of the base version (in the artifact store) is what
sample ids are checked against; that is :mod:`mloop.services.labels`' business, not the store's.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field
from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from mloop.errors import LabelingError, LabelTaskCompletedError, NotFoundError
from mloop.store.base import _Record
from mloop.store import datasets as _datasets  # the module: it may still be loading (models.py imports both)
from mloop.store.models import Base

if TYPE_CHECKING:
    from mloop.store.database import Database

__all__ = ["LabelRepository", "LabelTaskRecord", "ReceivedLabel", "TaskStatus"]

TaskStatus = Literal["in_progress", "completed"]

#: Rows per statement when many samples are labeled at once (well under both dialects'
#: bound-parameter limits).
_CHUNK = 500


class LabelTaskRecord(_Record):
    """A labeling task over one dataset version.

    Attributes:
        name: unique within ``dataset_name``.
        base_version: the version whose samples are labeled.
        task_type: a ``LabelTaskTypeEnum`` member name (``IMAGE_CLASSIFICATION``, ...).
        labels: the label set, as ``wf.steps.Label`` writes it: ``{"name", "property"?, "type"?}``.
        sample_count: samples in the base version.
        prelabeled_count: samples that already had labels in the base version.
        labeled_count: samples with a label: already labeled in the base, or labeled in the task.
        output_version: the labeled version made when the task was completed.
        run_id, step_name: the run and LabelingStep that created it (None from the CLI or API).
    """

    id: str
    name: str
    dataset_name: str
    base_version: str
    task_type: str
    labels: list[dict[str, Any]] = Field(default_factory=list)
    status: TaskStatus
    sample_count: int
    prelabeled_count: int = 0
    labeled_count: int = 0
    output_version: str | None = None
    run_id: str | None = None
    step_name: str | None = None
    description: str = ""
    properties: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    completed_at: datetime | None = None

    @property
    def label_names(self) -> list[str]:
        return [str(label["name"]) for label in self.labels if label.get("name") is not None]

    @property
    def remaining(self) -> int:
        return max(self.sample_count - self.labeled_count, 0)


class ReceivedLabel(_Record):
    """The labels a task received for one sample (the latest submission wins)."""

    sample_id: str
    labels: list[str]
    prelabeled: bool = False  # the sample already had labels in the base version
    annotator: str | None = None
    labeled_at: datetime


class LabelTask(Base):
    __tablename__ = "label_tasks"
    __table_args__ = (UniqueConstraint("dataset_id", "name"),)

    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(String)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    base_version: Mapped[str] = mapped_column(String)
    task_type: Mapped[str] = mapped_column(String)
    labels: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String)
    sample_count: Mapped[int] = mapped_column(Integer)
    prelabeled_count: Mapped[int] = mapped_column(Integer)
    output_version: Mapped[str | None] = mapped_column(String)
    run_id: Mapped[str | None] = mapped_column(String)
    step_name: Mapped[str | None] = mapped_column(String)
    description: Mapped[str] = mapped_column(Text)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]


class LabelTaskLabel(Base):
    __tablename__ = "label_task_labels"

    task_id: Mapped[str] = mapped_column(ForeignKey("label_tasks.id", ondelete="CASCADE"), primary_key=True)
    sample_id: Mapped[str] = mapped_column(String, primary_key=True)
    labels: Mapped[list[str]] = mapped_column(JSON)
    prelabeled: Mapped[bool] = mapped_column(Boolean)
    annotator: Mapped[str | None] = mapped_column(String)
    labeled_at: Mapped[datetime]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


class LabelRepository:
    """Label tasks and received labels on the store's database (SQLite or PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- tasks ------------------------------------------------------------------------------
    def get_or_create(self, dataset_name: str, name: str, *, base_version: str, task_type: str,
                      labels: Sequence[dict[str, Any]], sample_count: int, prelabeled_count: int,
                      run_id: str | None = None, step_name: str | None = None, description: str = "",
                      properties: dict[str, Any] | None = None) -> tuple[LabelTaskRecord, bool]:
        """The task ``name`` of ``dataset_name``, created with these facts if it doesn't exist.

        Two processes asking for the same new name at once get the same task (the name is
        locked until commit).

        Returns:
            ``(task, created)``.

        Raises:
            NotFoundError: no such dataset.
        """
        ds = _datasets.Dataset
        with self.db.session(write=True) as session:
            self.db.lock_numbering(session, f"label_task:{dataset_name}:{name}")
            dataset = session.scalar(select(ds).where(ds.name == dataset_name))
            if dataset is None:
                raise NotFoundError(f"no dataset named {dataset_name!r}", dataset=dataset_name,
                                    hint="mloop dataset list shows the datasets")
            row = session.scalar(select(LabelTask).where(LabelTask.dataset_id == dataset.id, LabelTask.name == name))
            if row is not None:
                return self._record(session, row, dataset_name), False
            row = LabelTask(id=uuid.uuid4().hex, name=name, dataset_id=dataset.id, base_version=base_version,
                            task_type=task_type, labels=[dict(x) for x in labels], status="in_progress",
                            sample_count=sample_count, prelabeled_count=prelabeled_count, output_version=None,
                            run_id=run_id, step_name=step_name, description=description,
                            properties=dict(properties or {}), created_at=_now(), completed_at=None)
            session.add(row)
            session.flush()
            return self._record(session, row, dataset_name), True

    def get(self, name: str, dataset: str | None = None) -> LabelTaskRecord:
        """A task by name (and dataset, needed when two datasets have tasks of that name).

        Raises:
            NotFoundError: no such task.
            LabelingError: several datasets have a task of that name and ``dataset`` is None.
        """
        ds = _datasets.Dataset
        with self.db.session(write=False) as session:
            query = select(LabelTask, ds.name).join(ds, ds.id == LabelTask.dataset_id).where(
                LabelTask.name == name)
            if dataset is not None:
                query = query.where(ds.name == dataset)
            rows = session.execute(query.order_by(ds.name)).all()
            if not rows:
                where = f" in dataset {dataset!r}" if dataset else ""
                raise NotFoundError(f"no labeling task named {name!r}{where}", task=name,
                                    hint="mloop label list shows the tasks; mloop label create makes one")
            if len(rows) > 1:
                names = ", ".join(d for _, d in rows)
                raise LabelingError(f"several datasets have a labeling task named {name!r}: {names}",
                                    hint="say which one with --dataset NAME", task=name)
            row, dataset_name = rows[0]
            return self._record(session, row, dataset_name)

    def get_by_id(self, task_id: str) -> LabelTaskRecord:
        """Raises NotFoundError for an unknown id."""
        ds = _datasets.Dataset
        with self.db.session(write=False) as session:
            found = session.execute(select(LabelTask, ds.name).join(ds, ds.id == LabelTask.dataset_id)
                                    .where(LabelTask.id == task_id)).first()
            if found is None:
                raise NotFoundError(f"no labeling task with id {task_id!r}", hint="mloop label list shows the tasks")
            return self._record(session, found[0], found[1])

    def list(self, dataset: str | None = None, status: str | None = None) -> list[LabelTaskRecord]:
        """Tasks by dataset, then name, with their progress counts (one query)."""
        ds = _datasets.Dataset
        with self.db.session(write=False) as session:
            counts = (select(LabelTaskLabel.task_id, func.count().label("n"))
                      .where(LabelTaskLabel.prelabeled.is_(False)).group_by(LabelTaskLabel.task_id).subquery())
            query = (select(LabelTask, ds.name, counts.c.n).join(ds, ds.id == LabelTask.dataset_id)
                     .outerjoin(counts, counts.c.task_id == LabelTask.id))
            if dataset is not None:
                query = query.where(ds.name == dataset)
            if status is not None:
                query = query.where(LabelTask.status == status)
            rows = session.execute(query.order_by(ds.name, LabelTask.name)).all()
            return [self._to_record(row, dataset_name, int(n or 0)) for row, dataset_name, n in rows]

    def complete(self, task_id: str, output_version: str) -> tuple[LabelTaskRecord, bool]:
        """Mark a task completed with its labeled version, unless it already is.

        Returns:
            ``(task, changed)``: ``changed`` is False when the task was completed already (by
            another process, say); the task then keeps its first output version.
        """
        with self.db.session(write=True) as session:
            result = session.execute(
                update(LabelTask).where(LabelTask.id == task_id, LabelTask.status == "in_progress")
                .values(status="completed", output_version=output_version, completed_at=_now())
                .execution_options(synchronize_session=False))
            changed = bool(getattr(result, "rowcount", 0))
        return self.get_by_id(task_id), changed

    # -- labels -----------------------------------------------------------------------------
    def add_labels(self, task_id: str, entries: Sequence[tuple[str, Sequence[str], bool]], *,
                   annotator: str | None = None) -> int:
        """Record labels for samples of an in-progress task, in one transaction; a sample
        labeled before gets the new labels.

        Args:
            entries: ``(sample id, labels, prelabeled)`` per sample, already checked against
                the base version and the label set.

        Raises:
            LabelingError: the task is completed (nothing is recorded).
            NotFoundError: no such task.
        """
        with self.db.session(write=True) as session:
            # One writer per task at a time: delete-then-insert of the same sample by two
            # submissions must not collide on the primary key (PostgreSQL).
            self.db.lock_numbering(session, f"label_task_id:{task_id}")
            found = session.execute(select(LabelTask.status, LabelTask.name).where(LabelTask.id == task_id)).first()
            if found is None:
                raise NotFoundError(f"no labeling task with id {task_id!r}")
            if found[0] != "in_progress":
                raise LabelTaskCompletedError(f"labeling task {found[1]!r} is completed and takes no more labels",
                                    hint="create a new task over its output version to change labels",
                                    task=found[1])
            now = _now()
            latest = {sid: (list(labels), bool(pre)) for sid, labels, pre in entries}
            ids = list(latest)
            for chunk in _chunks(ids):
                session.execute(delete(LabelTaskLabel).where(LabelTaskLabel.task_id == task_id,
                                                             LabelTaskLabel.sample_id.in_(chunk))
                                .execution_options(synchronize_session=False))
            for chunk in _chunks(ids):
                session.add_all([LabelTaskLabel(task_id=task_id, sample_id=sid, labels=latest[sid][0],
                                                prelabeled=latest[sid][1], annotator=annotator, labeled_at=now)
                                 for sid in chunk])
                session.flush()
            return len(ids)

    def received(self, task_id: str) -> dict[str, ReceivedLabel]:
        """Every sample's received labels, by sample id."""
        with self.db.session(write=False) as session:
            rows = session.scalars(select(LabelTaskLabel).where(LabelTaskLabel.task_id == task_id)
                                   .order_by(LabelTaskLabel.sample_id)).all()
            return {r.sample_id: ReceivedLabel.model_validate(r) for r in rows}

    # -- helpers ----------------------------------------------------------------------------
    def _record(self, session: Session, row: LabelTask, dataset_name: str) -> LabelTaskRecord:
        n = session.scalar(select(func.count()).select_from(LabelTaskLabel).where(
            LabelTaskLabel.task_id == row.id, LabelTaskLabel.prelabeled.is_(False)))
        return self._to_record(row, dataset_name, int(n or 0))

    @staticmethod
    def _to_record(row: LabelTask, dataset_name: str, newly_labeled: int) -> LabelTaskRecord:
        data = {c: getattr(row, c) for c in LabelTaskRecord.model_fields
                if c not in ("dataset_name", "labeled_count")}
        return LabelTaskRecord.model_validate({**data, "dataset_name": dataset_name,
                                               "labeled_count": row.prelabeled_count + newly_labeled})
