"""The model registry: models, versions, aliases.

Tables live here (on the store's shared ``Base``) next to the repository that reads and
writes them; :class:`~mloop.store.base.Store` declares the repository as ``store.registry``, and it
reaches the database only through the :class:`~mloop.store.database.Database` the store hands it.

A version row points at immutable, content-addressed files in the artifact store (``uri``,
``content_hash``); the rows themselves are never changed after insert, except that aliases
move. Version numbers of one model are assigned under a per-model lock (SQLite: the write
transaction's ``BEGIN IMMEDIATE``; PostgreSQL: an advisory lock), with the unique
constraints as the last guard.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pydantic import Field
from sqlalchemy import JSON, BigInteger, ForeignKey, ForeignKeyConstraint, Integer, String, Text, UniqueConstraint
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from mloop.errors import ModelError, ModelVersionExistsError, NotFoundError
from mloop.store.base import _Record
from mloop.store.models import Base

if TYPE_CHECKING:
    from mloop.store.database import Database

__all__ = ["ModelAlias", "ModelRecord", "ModelRepository", "ModelVersion", "ModelVersionRecord", "RegisteredModel",
           "check_alias", "check_model_name", "check_version"]

#: Model names: 1-64 letters (any script), digits, ``-``, ``_``, ``.``; no ``:``, ``@`` or ``/``
#: (they separate the parts of ``NAME:VERSION`` and ``NAME@alias``).
_NAME_RE = re.compile(r"^[^\W_][\w.\-]{0,63}$")
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+\-]{0,63}$")
_ALIAS_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")


def check_model_name(name: str) -> str:
    """Return ``name`` if it is a valid model name.

    Raises:
        ModelError: it is not.
    """
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ModelError(f"invalid model name {name!r}",
                         hint="1-64 letters, digits, '-', '_' or '.', starting with a letter or digit",
                         model=str(name))
    return name


def check_version(version: str) -> str:
    """Return ``version`` if it is a valid explicit version (``3``, ``0.0.1``, ``1.2.0-rc1``).

    Raises:
        ModelError: it is not.
    """
    if not isinstance(version, str) or not _VERSION_RE.fullmatch(version):
        raise ModelError(f"invalid model version {version!r}",
                         hint="1-64 letters, digits, '.', '_', '+' or '-', starting with a letter or digit "
                              "(e.g. 3 or 0.0.1)", version=str(version))
    return version


def check_alias(alias: str) -> str:
    """Return ``alias`` if it is a valid alias name (``production``, ``staging``).

    Raises:
        ModelError: it is not (an alias must start with a letter, so it never reads as a version).
    """
    if not isinstance(alias, str) or not _ALIAS_RE.fullmatch(alias):
        raise ModelError(f"invalid alias {alias!r}",
                         hint="1-64 letters, digits, '-' or '_', starting with a letter (e.g. production)",
                         alias=str(alias))
    return alias


def _now() -> datetime:
    return datetime.now(timezone.utc)


# -- records -----------------------------------------------------------------------------------------

class ModelVersionRecord(_Record):
    """One registered version of a model: immutable files plus where they came from."""

    model_id: str  # unique id of this version (ModelArts ``model_id``)
    name: str
    version: str  # "1", "2", ... unless given explicitly ("0.0.1")
    seq: int  # registration order within the model: the latest version has the highest
    model_type: str  # torchscript | pytorch_state_dict | sklearn | onnx | custom
    layout: dict[str, Any] = Field(default_factory=dict)  # files the loader needs (see mloop.registry.types)
    uri: str  # artifact-store folder holding exactly the model files
    content_hash: str  # sha256 of the folder manifest (mloop.artifacts.hashing)
    size: int  # bytes, all files
    file_count: int
    run_id: str | None = None
    step_name: str | None = None
    dataset: dict[str, Any] | None = None  # {"name": ..., "version": ...} of the data it was trained on
    metrics: dict[str, float] = Field(default_factory=dict)
    description: str = ""
    runtime: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    aliases: list[str] = Field(default_factory=list)

    @property
    def ref(self) -> str:
        """``NAME:VERSION``, the reference that names exactly this version."""
        return f"{self.name}:{self.version}"


class ModelRecord(_Record):
    """A model name and a summary of its versions."""

    name: str
    description: str = ""
    created_at: datetime
    updated_at: datetime
    latest_version: str | None = None
    version_count: int = 0
    aliases: dict[str, str] = Field(default_factory=dict)  # alias -> version


# -- tables ------------------------------------------------------------------------------------------

class RegisteredModel(Base):
    __tablename__ = "registered_models"

    name: Mapped[str] = mapped_column(String, primary_key=True)
    description: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_name", "version"), UniqueConstraint("model_name", "seq"))

    id: Mapped[str] = mapped_column(String, primary_key=True)
    model_name: Mapped[str] = mapped_column(ForeignKey("registered_models.name", ondelete="CASCADE"))
    version: Mapped[str] = mapped_column(String)
    seq: Mapped[int] = mapped_column(Integer)
    model_type: Mapped[str] = mapped_column(String)
    layout: Mapped[dict[str, Any]] = mapped_column(JSON)
    uri: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String, index=True)
    # A 32-bit INTEGER would cap models at 2 GiB on PostgreSQL.
    size: Mapped[int] = mapped_column(BigInteger)
    file_count: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[str | None] = mapped_column(String, index=True)
    step_name: Mapped[str | None] = mapped_column(String)
    dataset: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    metrics: Mapped[dict[str, float]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text)
    runtime: Mapped[str | None] = mapped_column(String)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]

    def to_record(self, aliases: list[str] | None = None) -> ModelVersionRecord:
        """This row as a :class:`ModelVersionRecord` (with the aliases pointing at it)."""
        return ModelVersionRecord(
            model_id=self.id, name=self.model_name, version=self.version, seq=self.seq, model_type=self.model_type,
            layout=dict(self.layout), uri=self.uri, content_hash=self.content_hash, size=self.size,
            file_count=self.file_count, run_id=self.run_id, step_name=self.step_name,
            dataset=None if self.dataset is None else dict(self.dataset), metrics=dict(self.metrics),
            description=self.description, runtime=self.runtime, extra=dict(self.extra), created_at=self.created_at,
            aliases=sorted(aliases or []),
        )


class ModelAlias(Base):
    __tablename__ = "model_aliases"
    __table_args__ = (
        ForeignKeyConstraint(["model_name"], ["registered_models.name"], ondelete="CASCADE"),
    )

    model_name: Mapped[str] = mapped_column(String, primary_key=True)
    alias: Mapped[str] = mapped_column(String, primary_key=True)
    version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    updated_at: Mapped[datetime]


# -- repository --------------------------------------------------------------------------------------

class ModelRepository:
    """Models, versions and aliases in the metadata store (``store.registry``).

    Every method is one transaction. Records come back with their aliases filled in.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def create_version(self, name: str, *, model_type: str, uri: str, content_hash: str, size: int,
                       file_count: int, version: str | None = None, layout: dict[str, Any] | None = None,
                       run_id: str | None = None, step_name: str | None = None,
                       dataset: dict[str, Any] | None = None, metrics: dict[str, float] | None = None,
                       description: str = "", runtime: str | None = None,
                       extra: dict[str, Any] | None = None) -> ModelVersionRecord:
        """Add a version of ``name`` (creating the model on its first version).

        Args:
            name: the model's name.
            model_type: its canonical type.
            uri: where its files are (immutable).
            content_hash: the files' manifest digest.
            size: total bytes.
            file_count: number of files.
            version: an explicit version; None takes the next number: 1 + the highest
                all-digit version of the model (``"1"`` for a new model).
            layout, run_id, step_name, dataset, metrics, description, runtime, extra: kept as given.

        Returns:
            The new version.

        Raises:
            ModelError: an invalid name or version.
            ModelVersionExistsError: ``version`` is already registered for ``name``.
        """
        check_model_name(name)
        if version is not None:
            check_version(version)
        now = _now()
        with self.db.session(write=True) as session:
            self.db.lock_numbering(session, f"model:{name}")
            model = session.get(RegisteredModel, name)
            if model is None:
                model = RegisteredModel(name=name, description="", created_at=now, updated_at=now)
                session.add(model)
                session.flush()
            existing = list(session.execute(
                select(ModelVersion.version, ModelVersion.seq).where(ModelVersion.model_name == name)
            ))
            if version is None:
                version = str(max((int(v) for v, _ in existing if v.isdigit()), default=0) + 1)
            elif any(v == version for v, _ in existing):
                raise ModelVersionExistsError(
                    f"model {name!r} already has version {version!r}; registered versions never change",
                    hint="give another version, or leave it out to take the next number",
                    model=name, version=version)
            row = ModelVersion(
                id=uuid.uuid4().hex, model_name=name, version=version,
                seq=max((s for _, s in existing), default=0) + 1, model_type=model_type, layout=dict(layout or {}),
                uri=uri, content_hash=content_hash, size=size, file_count=file_count, run_id=run_id,
                step_name=step_name, dataset=None if dataset is None else dict(dataset),
                metrics={k: float(v) for k, v in (metrics or {}).items()}, description=description or "",
                runtime=runtime, extra=dict(extra or {}), created_at=now,
            )
            session.add(row)
            model.updated_at = now
            session.flush()
            return row.to_record([])

    def get_version(self, name: str, version: str) -> ModelVersionRecord:
        """One version of a model.

        Raises:
            NotFoundError: no such model, or it has no such version (the message lists the latest ones).
        """
        with self.db.session(write=False) as session:
            row = session.scalars(select(ModelVersion).where(
                ModelVersion.model_name == name, ModelVersion.version == version)).first()
            if row is None:
                self._require_model(session, name)
                known = list(session.scalars(select(ModelVersion.version).where(ModelVersion.model_name == name)
                                             .order_by(ModelVersion.seq.desc()).limit(5)))
                raise NotFoundError(f"model {name!r} has no version {version!r}",
                                    hint=f"its latest versions: {', '.join(known) or 'none'} "
                                         f"(mloop model versions {name})", model=name, version=version)
            return self._with_aliases(session, [row])[0]

    def get_latest(self, name: str) -> ModelVersionRecord:
        """The most recently registered version of a model.

        Raises:
            NotFoundError: no such model, or it has no versions.
        """
        with self.db.session(write=False) as session:
            row = session.scalars(select(ModelVersion).where(ModelVersion.model_name == name)
                                  .order_by(ModelVersion.seq.desc()).limit(1)).first()
            if row is None:
                self._require_model(session, name)
                raise NotFoundError(f"model {name!r} has no versions", model=name)
            return self._with_aliases(session, [row])[0]

    def get_by_alias(self, name: str, alias: str) -> ModelVersionRecord:
        """The version an alias of a model points at.

        Raises:
            NotFoundError: no such model or alias (the message lists the model's aliases).
        """
        with self.db.session(write=False) as session:
            row = session.scalars(select(ModelVersion).join(ModelAlias, ModelAlias.version_id == ModelVersion.id)
                                  .where(ModelAlias.model_name == name, ModelAlias.alias == alias)).first()
            if row is None:
                self._require_model(session, name)
                known = list(session.scalars(select(ModelAlias.alias).where(ModelAlias.model_name == name)
                                             .order_by(ModelAlias.alias)))
                raise NotFoundError(f"model {name!r} has no alias {alias!r}",
                                    hint=f"its aliases: {', '.join(known) or 'none'}; set one with "
                                         f"`mloop model alias {name} {alias} VERSION`", model=name, alias=alias)
            return self._with_aliases(session, [row])[0]

    def get_by_id(self, model_id: str) -> ModelVersionRecord:
        """A version by its ``model_id``.

        Raises:
            NotFoundError: no version has this id.
        """
        with self.db.session(write=False) as session:
            row = session.get(ModelVersion, model_id)
            if row is None:
                raise NotFoundError(f"no model version with id {model_id!r}", model_id=model_id)
            return self._with_aliases(session, [row])[0]

    def find_versions(self, *, run_id: str, step_name: str | None = None) -> list[ModelVersionRecord]:
        """Versions registered by a run (or one of its steps), oldest first."""
        query = select(ModelVersion).where(ModelVersion.run_id == run_id).order_by(ModelVersion.created_at,
                                                                                   ModelVersion.seq)
        if step_name is not None:
            query = query.where(ModelVersion.step_name == step_name)
        with self.db.session(write=False) as session:
            return self._with_aliases(session, list(session.scalars(query)))

    def list_models(self) -> list[ModelRecord]:
        """Every model, by name, with its latest version, version count and aliases."""
        with self.db.session(write=False) as session:
            models = list(session.scalars(select(RegisteredModel).order_by(RegisteredModel.name)))
            counts: dict[str, int] = {name: count for name, count in session.execute(
                select(ModelVersion.model_name, func.count()).group_by(ModelVersion.model_name))}
            # The latest version (highest seq) of each model, in one query.
            top_seq = (select(ModelVersion.model_name.label("name"), func.max(ModelVersion.seq).label("seq"))
                       .group_by(ModelVersion.model_name).subquery())
            latest: dict[str, str] = {name: version for name, version in session.execute(
                select(ModelVersion.model_name, ModelVersion.version).join(
                    top_seq, (top_seq.c.name == ModelVersion.model_name) & (top_seq.c.seq == ModelVersion.seq)))}
            aliases: dict[str, dict[str, str]] = {}
            for name, alias, version in session.execute(
                    select(ModelAlias.model_name, ModelAlias.alias, ModelVersion.version)
                    .join(ModelVersion, ModelVersion.id == ModelAlias.version_id)):
                aliases.setdefault(name, {})[alias] = version
            out = []
            for model in models:
                out.append(ModelRecord(name=model.name, description=model.description, created_at=model.created_at,
                                       updated_at=model.updated_at, version_count=counts.get(model.name, 0),
                                       latest_version=latest.get(model.name),
                                       aliases=dict(sorted(aliases.get(model.name, {}).items()))))
            return out

    def list_versions(self, name: str) -> list[ModelVersionRecord]:
        """A model's versions, oldest first.

        Raises:
            NotFoundError: no such model.
        """
        with self.db.session(write=False) as session:
            self._require_model(session, name)
            rows = list(session.scalars(select(ModelVersion).where(ModelVersion.model_name == name)
                                        .order_by(ModelVersion.seq)))
            return self._with_aliases(session, rows)

    def set_alias(self, name: str, alias: str, version: str) -> ModelVersionRecord:
        """Point ``alias`` of model ``name`` at ``version``, creating or moving it in one transaction.

        Readers see the old target or the new one, never no alias.

        Raises:
            ModelError: an invalid alias name.
            NotFoundError: no such model or version.
        """
        check_alias(alias)
        with self.db.session(write=True) as session:
            self.db.lock_numbering(session, f"model:{name}")
            row = session.scalars(select(ModelVersion).where(
                ModelVersion.model_name == name, ModelVersion.version == version)).first()
            if row is None:
                self._require_model(session, name)
                raise NotFoundError(f"model {name!r} has no version {version!r}",
                                    hint=f"see `mloop model versions {name}`", model=name, version=version)
            current = session.get(ModelAlias, (name, alias))
            now = _now()
            if current is None:
                session.add(ModelAlias(model_name=name, alias=alias, version_id=row.id, updated_at=now))
            else:
                current.version_id = row.id
                current.updated_at = now
            session.flush()
            return self._with_aliases(session, [row])[0]

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove an alias of a model.

        Raises:
            NotFoundError: no such model or alias.
        """
        with self.db.session(write=True) as session:
            result = session.execute(delete(ModelAlias).where(ModelAlias.model_name == name,
                                                              ModelAlias.alias == alias))
            if not getattr(result, "rowcount", 0):
                self._require_model(session, name)
                raise NotFoundError(f"model {name!r} has no alias {alias!r}", model=name, alias=alias)

    # -- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _require_model(session: Session, name: str) -> None:
        if session.get(RegisteredModel, name) is None:
            raise NotFoundError(f"no model named {name!r}", hint="see `mloop model list`", model=name)

    @staticmethod
    def _with_aliases(session: Session, rows: list[ModelVersion]) -> list[ModelVersionRecord]:
        if not rows:
            return []
        by_version: dict[str, list[str]] = {}
        for version_id, alias in session.execute(select(ModelAlias.version_id, ModelAlias.alias).where(
                ModelAlias.version_id.in_([r.id for r in rows]))):
            by_version.setdefault(version_id, []).append(alias)
        return [row.to_record(by_version.get(row.id, [])) for row in rows]
