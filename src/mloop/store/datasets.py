"""Datasets and their immutable versions.

Tables live here (on the store's shared ``Base``) next to the repository that reads and
writes them; :class:`~mloop.store.base.Store` declares the repository as ``store.datasets``, and it
reaches the database only through the :class:`~mloop.store.database.Database` the store hands it.

A version row is the *index* of a version: its number and name, the hash of its manifest (the
manifest itself, with every file and sample, is a content-addressed object in the artifact
store, see :mod:`mloop.datasets`), its counts and how it was made. Rows are only ever added:
a version never changes once committed.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pydantic import Field
from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from mloop.errors import DatasetConflictError, DatasetError, NotFoundError
from mloop.store.base import _Record
from mloop.store.models import Base

if TYPE_CHECKING:
    from mloop.store.database import Database

__all__ = ["DatasetRecord", "DatasetRepository", "DatasetVersionRecord", "parse_version"]

#: ``v3``, ``V3`` or ``3`` name version number 3.
_NUMBERED = re.compile(r"^[vV]?(\d+)$")
#: What a version name may look like (release names given by the user included).
_VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class DatasetRecord(_Record):
    """A dataset: a name and its versions (``latest_version`` is None before the first)."""

    id: str
    name: str
    description: str = ""
    created_at: datetime
    latest_version: str | None = None
    version_count: int = 0


class DatasetVersionRecord(_Record):
    """One immutable version of a dataset.

    Attributes:
        version: its name: ``v<number>``, or the name a release was given.
        number: 1, 2, 3 ... in the order versions were committed.
        manifest_hash: sha256 of the manifest's canonical JSON; the manifest is stored at
            ``datasets/manifests/<h[:2]>/<h[2:]>.json.gz`` in the artifact store.
        parent: the version this one was made from (None for a first version).
        release: for a release, ``{"ratio", "seed", "train", "eval", "of"}``; else None.
        stats: how the version was built (files hashed, re-read cache hits, objects stored,
            bytes stored, seconds), for reports; not part of the version's content.
    """

    id: str
    dataset_name: str
    number: int
    version: str
    manifest_hash: str
    format: str
    parent: str | None = None
    file_count: int
    sample_count: int
    total_bytes: int
    classes: list[str] = Field(default_factory=list)
    description: str = ""
    release: dict[str, Any] | None = None
    stats: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(String, unique=True)
    description: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class DatasetVersion(Base):
    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "number"), UniqueConstraint("dataset_id", "version"))

    id: Mapped[str] = mapped_column(String, primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String)
    manifest_hash: Mapped[str] = mapped_column(String)
    format: Mapped[str] = mapped_column(String)
    parent: Mapped[str | None] = mapped_column(String)
    file_count: Mapped[int] = mapped_column(Integer)
    sample_count: Mapped[int] = mapped_column(Integer)
    total_bytes: Mapped[int] = mapped_column(BigInteger)
    classes: Mapped[list[str]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text)
    release: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    stats: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def parse_version(version: str) -> int | None:
    """The number ``v3``/``3`` names, or None for another name (a named release)."""
    match = _NUMBERED.fullmatch(version.strip())
    return int(match.group(1)) if match else None


def _version_record(row: DatasetVersion, name: str) -> DatasetVersionRecord:
    data = {c: getattr(row, c) for c in DatasetVersionRecord.model_fields if c != "dataset_name"}
    return DatasetVersionRecord.model_validate({**data, "dataset_name": name})


class DatasetRepository:
    """Datasets and version rows on the store's database (SQLite or PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- datasets ---------------------------------------------------------------------------
    def get(self, name: str) -> DatasetRecord:
        """One dataset with its latest version.

        Raises:
            NotFoundError: no dataset has this name.
        """
        with self.db.session(write=False) as session:
            row = session.scalar(select(Dataset).where(Dataset.name == name))
            if row is None:
                raise NotFoundError(f"no dataset named {name!r}", dataset=name,
                                    hint="mloop dataset list shows the datasets; "
                                         "mloop dataset create NAME --from FOLDER makes one")
            return self._dataset_record(session, row)

    def list_datasets(self) -> list[DatasetRecord]:
        """Every dataset, by name."""
        with self.db.session(write=False) as session:
            latest = (select(DatasetVersion.dataset_id, func.max(DatasetVersion.number).label("n"),
                             func.count().label("c")).group_by(DatasetVersion.dataset_id).subquery())
            rows = session.execute(
                select(Dataset, DatasetVersion.version, latest.c.c)
                .outerjoin(latest, latest.c.dataset_id == Dataset.id)
                .outerjoin(DatasetVersion, (DatasetVersion.dataset_id == Dataset.id)
                           & (DatasetVersion.number == latest.c.n))
                .order_by(Dataset.name)
            ).all()
            return [DatasetRecord(id=d.id, name=d.name, description=d.description, created_at=d.created_at,
                                  latest_version=v, version_count=c or 0) for d, v, c in rows]

    # -- versions ---------------------------------------------------------------------------
    def add_version(self, name: str, *, manifest_hash: str, format: str, parent: str | None,
                    file_count: int, sample_count: int, total_bytes: int, classes: list[str],
                    description: str = "", release: dict[str, Any] | None = None,
                    stats: dict[str, Any] | None = None, version: str | None = None,
                    expect_latest: bool = False, create: bool = False,
                    dataset_description: str = "") -> DatasetVersionRecord:
        """Commit the next version of ``name`` in one transaction (numbering locked per dataset).

        Args:
            name: the dataset.
            manifest_hash: the version's manifest, already stored in the artifact store.
            parent: the version it was made from.
            version: a name for it (a release's ``version_name``); default ``v<number>``.
            expect_latest: refuse when ``parent`` is no longer the latest version (another
                import committed in between), so its additions are never silently dropped.
            create: create the dataset when it doesn't exist (a first version).
            dataset_description: the new dataset's description (with ``create``).

        Raises:
            NotFoundError: the dataset doesn't exist and ``create`` is false.
            DatasetConflictError: ``expect_latest`` and another version was committed first.
            DatasetError: ``version`` is already taken or is not a valid version name.
        """
        with self.db.session(write=True) as session:
            self.db.lock_numbering(session, f"dataset:{name}")
            dataset = session.scalar(select(Dataset).where(Dataset.name == name))
            if dataset is None:
                if not create:
                    raise NotFoundError(f"no dataset named {name!r}", dataset=name,
                                        hint=f"mloop dataset create {name} --from FOLDER makes it")
                dataset = Dataset(id=uuid.uuid4().hex, name=name, description=dataset_description,
                                  created_at=_now())
                session.add(dataset)
                session.flush()
            latest = session.scalars(select(DatasetVersion).where(DatasetVersion.dataset_id == dataset.id)
                                     .order_by(DatasetVersion.number.desc()).limit(1)).first()
            if expect_latest and (latest.version if latest else None) != parent:
                raise DatasetConflictError(
                    f"dataset {name!r} changed while this version was being made: its latest version is now "
                    f"{latest.version if latest else 'none'}, not {parent or 'none'}",
                    hint="run the command again: files already stored are reused, so it is quick",
                    dataset=name)
            number = (latest.number if latest else 0) + 1
            label = self._version_name(session, dataset.id, version, number)
            row = DatasetVersion(
                id=uuid.uuid4().hex, dataset_id=dataset.id, number=number, version=label,
                manifest_hash=manifest_hash, format=format, parent=parent, file_count=file_count,
                sample_count=sample_count, total_bytes=total_bytes, classes=list(classes),
                description=description, release=release, stats=dict(stats or {}), created_at=_now())
            session.add(row)
            session.flush()
            return _version_record(row, name)

    def get_version(self, name: str, version: str | None = None) -> DatasetVersionRecord:
        """A version by name (``v3``, ``3`` or a release's name); None means the latest.

        Raises:
            NotFoundError: no such dataset, or no such version (the message lists the versions).
        """
        with self.db.session(write=False) as session:
            dataset = self._require(session, name)
            query = select(DatasetVersion).where(DatasetVersion.dataset_id == dataset.id)
            if version is None:
                row = session.scalars(query.order_by(DatasetVersion.number.desc()).limit(1)).first()
            else:
                number = parse_version(version)
                cond = (DatasetVersion.number == number) if number is not None else (
                    DatasetVersion.version == version.strip())
                row = session.scalar(query.where(cond))
            if row is None:
                names = session.scalars(select(DatasetVersion.version).where(DatasetVersion.dataset_id == dataset.id)
                                        .order_by(DatasetVersion.number)).all()
                shown = ", ".join(names[-10:]) or "none yet"
                raise NotFoundError(f"dataset {name!r} has no version {version or '(no versions)'}",
                                    dataset=name, version=version,
                                    hint=f"its versions: {shown} (mloop dataset versions {name})")
            return _version_record(row, name)

    def list_versions(self, name: str) -> list[DatasetVersionRecord]:
        """Every version of ``name``, oldest first.

        Raises:
            NotFoundError: no such dataset.
        """
        with self.db.session(write=False) as session:
            dataset = self._require(session, name)
            rows = session.scalars(select(DatasetVersion).where(DatasetVersion.dataset_id == dataset.id)
                                   .order_by(DatasetVersion.number)).all()
            return [_version_record(row, name) for row in rows]

    # -- helpers ----------------------------------------------------------------------------
    @staticmethod
    def _require(session: Session, name: str) -> Dataset:
        row = session.scalar(select(Dataset).where(Dataset.name == name))
        if row is None:
            raise NotFoundError(f"no dataset named {name!r}", dataset=name,
                                hint="mloop dataset list shows the datasets")
        return row

    @staticmethod
    def _dataset_record(session: Session, row: Dataset) -> DatasetRecord:
        versions = session.execute(select(DatasetVersion.version, DatasetVersion.number)
                                   .where(DatasetVersion.dataset_id == row.id)
                                   .order_by(DatasetVersion.number.desc())).all()
        return DatasetRecord(id=row.id, name=row.name, description=row.description, created_at=row.created_at,
                             latest_version=versions[0][0] if versions else None, version_count=len(versions))

    @staticmethod
    def _version_name(session: Session, dataset_id: str, wanted: str | None, number: int) -> str:
        auto = f"v{number}"
        if wanted is None or wanted.strip() == "":
            return auto
        wanted = wanted.strip()
        if not _VERSION_NAME.fullmatch(wanted):
            raise DatasetError(f"version name {wanted!r} is not allowed",
                               hint="use letters, digits, '.', '_' or '-' (at most 64 characters)")
        numbered = parse_version(wanted)
        if numbered is not None and numbered != number:
            raise DatasetError(f"version name {wanted!r} would be read as version {numbered}, "
                               f"but this version is number {number}",
                               hint=f"leave the name out (it becomes {auto}) or pick a name that is not v<number>")
        if numbered is not None:
            return auto
        taken = session.scalar(select(DatasetVersion.id).where(DatasetVersion.dataset_id == dataset_id,
                                                               DatasetVersion.version == wanted))
        if taken is not None:
            raise DatasetError(f"version name {wanted!r} is already taken", hint="pick another version name")
        return wanted
