"""The SQLAlchemy implementation of :class:`~mloop.store.base.Store` (SQLite and PostgreSQL).

Every public method is one short transaction; writes commit before the method returns.
SQLAlchemy errors are turned into :class:`~mloop.errors.StoreError` here, at the edge.

SQLite needs care because an engine process and a ``mloop stop`` process write the same
file: the database runs in WAL mode (readers never block the writer) and every write
transaction starts with ``BEGIN IMMEDIATE``, taking the write lock before its first read.
With a plain ``BEGIN``, two transactions that both read and then write can each hold a read
snapshot the other must wait for; SQLite then fails one at once with "database is locked"
instead of waiting ``busy_timeout``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from typing import Any, cast, get_args

from sqlalchemy import CursorResult, Engine, Table, and_, bindparam, create_engine, delete, event, func, insert, or_, select, update
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from mloop.errors import MissingExtraError, NotFoundError, StoreError
from mloop.store.base import (
    TERMINAL_RUN,
    TERMINAL_STEP,
    AlgorithmRecord,
    ArtifactRecord,
    EventRecord,
    MetricRecord,
    ReleaseRecord,
    RunRecord,
    RunStatus,
    StepInputsRecord,
    StepRecord,
    StepStatus,
    StepTransition,
    Store,
)
from mloop.store.database import Database
from mloop.store.datasets import DatasetRepository
from mloop.store.engines import EngineRepository
from mloop.store.labels import LabelRepository
from mloop.store.notify import NotifyRepository
from mloop.store.models import Algorithm, Artifact, Event, Metric, Release, Run, Step, as_utc
from mloop.store.registry import ModelRepository
from mloop.store.schedules import ScheduleRepository
from mloop.store.services import ServiceRepository
from mloop.store.tracking import TrackingRepository
from mloop.store.triggers import TriggerRepository
from mloop.store import notify, schedules, tracking, triggers, users, workflows  # noqa: F401 - tables
from mloop.store.tokens import TokenRepository
from mloop.store.users import UserRepository
from mloop.store.workflows import WorkflowRepository

#: How long a SQLite writer waits for another process's write lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: Shortest run-id prefix ``get_run`` accepts, so a typo can't match half the runs.
MIN_PREFIX = 4
#: Execution option that marks the engine used for write transactions (BEGIN IMMEDIATE).
WRITE_OPTION = "mloop_write"

_RUN_STATUSES = frozenset(get_args(RunStatus))
_STEP_STATUSES = frozenset(get_args(StepStatus))
#: Fields ``update_run``/``transition_run`` may set; ``status`` changes only by transition.
_RUN_FIELDS = frozenset({
    "params", "storages", "selected_steps", "started_at", "finished_at", "engine_pid",
    "engine_host", "engine_started_at", "engine_id", "stop_requested", "message", "attempt",
})
_STEP_FIELDS = frozenset({
    "attempt", "started_at", "finished_at", "pid", "exit_code", "message", "inputs", "outputs",
    "outputs_skipped", "workdir", "log_path", "code_hash", "executor_ref",
    "cache_key", "cache_facts", "cached_from", "environment",
})


def _now() -> datetime:
    return datetime.now(timezone.utc)


# transition_step's statements, built once: the engine runs it twice per step.
_STEPS = cast(Table, Step.__table__)
_SELECT_STEP_STATE = (
    select(_STEPS.c.status, _STEPS.c.started_at)
    .where(_STEPS.c.run_id == bindparam("k_run"), _STEPS.c.name == bindparam("k_name"))
    .with_for_update()
)
_UPDATE_STEP_IF = update(_STEPS).where(
    _STEPS.c.run_id == bindparam("k_run"), _STEPS.c.name == bindparam("k_name"),
    _STEPS.c.status == bindparam("k_status"),
)
_INSERT_EVENT = insert(cast(Table, Event.__table__))
# ... and what a terminal transition carries (metrics, artifacts): replaced, then inserted.
_METRICS = cast(Table, Metric.__table__)
_DELETE_METRICS_FROM = delete(_METRICS).where(
    _METRICS.c.run_id == bindparam("k_run"), _METRICS.c.step_name == bindparam("k_name"),
    _METRICS.c.source.in_(bindparam("k_sources", expanding=True)),
)
_INSERT_METRIC = insert(_METRICS)
_ARTIFACTS = cast(Table, Artifact.__table__)
_DELETE_ARTIFACTS_NAMED = delete(_ARTIFACTS).where(
    _ARTIFACTS.c.run_id == bindparam("k_run"), _ARTIFACTS.c.step_name == bindparam("k_name"),
    _ARTIFACTS.c.name.in_(bindparam("k_names", expanding=True)),
)
_INSERT_ARTIFACT = insert(_ARTIFACTS)


def _new_id() -> str:
    return uuid.uuid4().hex


def version_key(version: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key for algorithm versions: numeric parts compare as numbers (1.10 > 1.9),
    other parts as text, and text sorts below numbers."""
    return tuple((1, int(part), "") if part.isdigit() else (0, 0, part) for part in re.split(r"[.\-+_]", version))


_URL_HINT = "use sqlite:///path/to/mloop.db or postgresql://user@host/dbname"


def parse_url(url: str) -> URL:
    """Parse a database URL; a bare ``postgresql://`` means psycopg 3.

    Raises:
        StoreError: ``url`` is not a URL.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"not a database URL: {url!r}", hint=_URL_HINT) from exc
    # mloop[postgres] installs psycopg 3; SQLAlchemy 2.0 would pick psycopg2 for this name.
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def display_url(url: str | URL) -> str:
    """The URL as it may appear in messages: the password is masked."""
    return make_url(url).render_as_string(hide_password=True)


def is_sqlite_file(url: URL) -> bool:
    """Whether ``url`` names a SQLite database in a file (not in memory)."""
    in_memory = url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"
    return url.get_backend_name() == "sqlite" and not in_memory


def create_store_engine(url: str) -> Engine:
    """Create the engine every mloop component uses for ``url``.

    On SQLite, each connection gets WAL, foreign keys, a busy timeout and
    ``synchronous=NORMAL``, and transactions on ``engine.execution_options(mloop_write=True)``
    begin ``IMMEDIATE``.

    Raises:
        StoreError: the URL can't be parsed or names an unknown kind of database.
        MissingExtraError: the PostgreSQL driver is not installed.
    """
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    kwargs: dict[str, Any] = {}
    if backend == "sqlite" and not is_sqlite_file(parsed):
        # One shared connection, or each pooled connection would see its own empty database.
        kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    elif backend == "postgresql":
        kwargs = {"pool_pre_ping": True}
    try:
        engine = create_engine(parsed, **kwargs)
    except ImportError as exc:
        if backend == "postgresql":
            raise MissingExtraError("psycopg", "postgres") from exc
        raise StoreError(f"no driver for the database {display_url(parsed)}: {exc}") from exc
    except ArgumentError as exc:
        raise StoreError(f"not a usable database URL: {display_url(parsed)} ({exc})", hint=_URL_HINT) from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Take transaction control away from the sqlite3 module (it would emit a deferred
    # BEGIN lazily); _sqlite_on_begin emits our own. PRAGMAs only hold per connection.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    write = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def translate_error(exc: SQLAlchemyError, url: str) -> StoreError:
    """Turn a SQLAlchemy error into a StoreError that says what to do."""
    detail = str(getattr(exc, "orig", None) or exc).strip()
    if isinstance(exc, OperationalError) and "database is locked" in detail:
        return StoreError(
            f"the database {url} is locked by another writer (waited up to {SQLITE_BUSY_TIMEOUT_MS // 1000} s)",
            hint="retry; if it keeps happening, use PostgreSQL for many concurrent writers",
        )
    if isinstance(exc, OperationalError):
        return StoreError(f"cannot use the database {url}: {detail}",
                          hint="check that the database server is running and the URL is right")
    return StoreError(f"database error on {url}: {detail}")


def _check_fields(given: dict[str, Any], allowed: frozenset[str], method: str) -> dict[str, Any]:
    """Refuse fields that are not columns one may set; store datetimes as UTC."""
    unknown = sorted(set(given) - allowed)
    if unknown:
        hint = " (change status with a transition)" if "status" in unknown else ""
        raise TypeError(f"{method}() got fields it cannot set: {', '.join(unknown)}{hint}")
    return {k: as_utc(v) if isinstance(v, datetime) else v for k, v in given.items()}


def _check_statuses(to_status: str, expected_from: Sequence[str] | None, known: frozenset[str]) -> None:
    # A misspelt status would silently never match a compare-and-set, so refuse it.
    bad = sorted({to_status, *(expected_from or ())} - known)
    if bad:
        raise ValueError(f"unknown status {', '.join(map(repr, bad))}; expected one of {', '.join(sorted(known))}")


def _timestamps(to_status: str, terminal: frozenset[str], started_at: datetime | None,
                now: datetime) -> dict[str, Any]:
    """``started_at`` on first entering running; ``finished_at`` set on entering a terminal
    status and cleared on leaving one (a retried run is not finished)."""
    values: dict[str, Any] = {"finished_at": now if to_status in terminal else None}
    if to_status == "running" and started_at is None:
        values["started_at"] = now
    return values


class SQLStore(Store):
    """The metadata store on a SQLAlchemy database (SQLite or PostgreSQL).

    Use :func:`mloop.store.open_store` rather than this constructor: it also checks (or
    creates) the schema.

    Args:
        url: a SQLAlchemy URL, e.g. ``sqlite:///.mloop/mloop.db`` or
            ``postgresql://user@host/mloop``.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_store_engine(url)
        self._display_url = display_url(url)
        #: The store's transactions; the area repositories get this and nothing else of the store.
        self.db = Database(self.engine, self.engine.execution_options(**{WRITE_OPTION: True}),
                           self._display_url, translate_error)
        self._datasets = DatasetRepository(self.db)
        self._labels = LabelRepository(self.db)
        self._registry = ModelRepository(self.db)
        self._services = ServiceRepository(self.db)
        self._tracking = TrackingRepository(self.db)
        self._schedules = ScheduleRepository(self.db)
        self._triggers = TriggerRepository(self.db)
        self._tokens = TokenRepository(self.db)
        self._engines = EngineRepository(self.db)
        self._users = UserRepository(self.db)
        self._notify = NotifyRepository(self.db)
        self._workflows = WorkflowRepository(self.db)

    def __enter__(self) -> SQLStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLStore({self._display_url!r})"

    # -- areas beyond runs: one repository each, sharing this store's transactions -------------
    @property
    def datasets(self) -> DatasetRepository:
        return self._datasets

    @property
    def labels(self) -> LabelRepository:
        return self._labels

    @property
    def registry(self) -> ModelRepository:
        return self._registry

    @property
    def services(self) -> ServiceRepository:
        return self._services

    @property
    def tracking(self) -> TrackingRepository:
        return self._tracking

    @property
    def schedules(self) -> ScheduleRepository:
        return self._schedules

    @property
    def triggers(self) -> TriggerRepository:
        return self._triggers

    @property
    def tokens(self) -> TokenRepository:
        return self._tokens

    @property
    def engines(self) -> EngineRepository:
        return self._engines

    @property
    def users(self) -> UserRepository:
        return self._users

    @property
    def notify(self) -> NotifyRepository:
        return self._notify

    @property
    def workflows(self) -> WorkflowRepository:
        return self._workflows

    # -- transactions -----------------------------------------------------------------------
    def _session(self, *, write: bool) -> AbstractContextManager[Session]:
        """One transaction: committed on success, rolled back on any error."""
        return self.db.session(write=write)

    # -- releases ---------------------------------------------------------------------------
    def create_release(self, workflow_name: str, spec: dict[str, Any],
                       extend: dict[str, Any] | None = None, *, reuse_if_unchanged: bool = False) -> ReleaseRecord:
        """Store a spec as the next release (version) of ``workflow_name``.

        Args:
            workflow_name: the workflow the spec belongs to.
            spec: the spec as JSON data; ``spec_hash`` is the sha256 of its canonical JSON.
            extend: free-form extra data kept with the release.
            reuse_if_unchanged: return the latest release if its spec hash is this spec's.

        Returns:
            The release, with version 1 for a new workflow name, else the latest version + 1.
        """
        from mloop.spec.io import spec_hash  # here: the spec models cost every command start-up time

        digest = spec_hash(spec)
        with self._session(write=True) as session:
            self.db.lock_numbering(session, workflow_name)
            latest = session.scalar(select(func.max(Release.version)).where(Release.workflow_name == workflow_name))
            if reuse_if_unchanged and latest is not None:
                current = session.scalar(select(Release).where(Release.workflow_name == workflow_name,
                                                               Release.version == latest))
                if current is not None and current.spec_hash == digest:
                    return current.to_record()
            row = Release(id=_new_id(), workflow_name=workflow_name, version=(latest or 0) + 1, spec=spec,
                          spec_hash=digest, created_at=_now(), extend=dict(extend or {}))
            session.add(row)
            session.flush()
            return row.to_record()

    def get_release(self, release_id: str) -> ReleaseRecord:
        """Return one release.

        Raises:
            NotFoundError: no release has this id.
        """
        with self._session(write=False) as session:
            row = session.get(Release, release_id)
            if row is None:
                raise NotFoundError(f"no release with id '{release_id}'", release_id=release_id)
            return row.to_record()

    def latest_release(self, workflow_name: str) -> ReleaseRecord | None:
        """The highest version of ``workflow_name``, or None if it was never released."""
        with self._session(write=False) as session:
            row = session.scalars(
                select(Release).where(Release.workflow_name == workflow_name)
                .order_by(Release.version.desc()).limit(1)
            ).first()
            return None if row is None else row.to_record()

    def list_releases(self, workflow_name: str | None = None) -> list[ReleaseRecord]:
        """Releases by workflow name, then version (oldest first)."""
        query = select(Release).order_by(Release.workflow_name, Release.version)
        if workflow_name is not None:
            query = query.where(Release.workflow_name == workflow_name)
        with self._session(write=False) as session:
            return [row.to_record() for row in session.scalars(query)]

    # -- runs -------------------------------------------------------------------------------
    def create_run(
        self,
        release_id: str,
        steps: Sequence[tuple[str, str]],
        *,
        params: dict[str, Any] | None = None,
        storages: dict[str, str] | None = None,
        selected_steps: list[str] | None = None,
        run_id: str | None = None,
        origin: dict[str, Any] | None = None,
    ) -> RunRecord:
        """Create a run in ``pending`` with one ``pending`` step row per (name, type).

        Args:
            release_id: the release to run.
            steps: (name, type) of every step, in the order ``list_steps`` will return them.
            params: placeholder and data values of this run.
            storages: storage name -> run-time root.
            selected_steps: for a partial run, the only steps to run.
            run_id: the id to use; a new uuid4 hex when None.
            origin: what started it (``{"kind": "schedule", ...}``); None from a terminal.

        Returns:
            The run; ``number`` is 1 + the number of earlier runs of the same workflow.

        Raises:
            NotFoundError: no release has ``release_id``.
            ValueError: two steps share a name.
            StoreError: a run with ``run_id`` already exists.
        """
        names = [name for name, _type in steps]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"step names must be unique; repeated: {', '.join(duplicates)}")
        new_id = run_id or _new_id()
        with self._session(write=True) as session:
            release = session.get(Release, release_id)
            if release is None:
                raise NotFoundError(f"no release with id '{release_id}'", release_id=release_id)
            if session.get(Run, new_id) is not None:
                raise StoreError(f"a run with id '{new_id}' already exists", run_id=new_id)
            self.db.lock_numbering(session, release.workflow_name)
            # The highest number, not the count: a deleted run's number is never given again.
            earlier = session.scalar(
                select(func.max(Run.number)).where(Run.workflow_name == release.workflow_name)
            )
            now = _now()
            run = Run(id=new_id, release_id=release_id, workflow_name=release.workflow_name,
                      number=(earlier or 0) + 1, status="pending", params=dict(params or {}),
                      storages=dict(storages or {}),
                      selected_steps=None if selected_steps is None else list(selected_steps),
                      created_at=now, stop_requested=False, attempt=1, origin=origin)
            session.add(run)
            session.flush()  # the run row first: the steps' foreign key points at it
            session.add_all(
                Step(run_id=new_id, name=name, position=position, type=step_type, status="pending",
                     attempt=0, created_at=now, inputs={}, outputs={}, outputs_skipped=False)
                for position, (name, step_type) in enumerate(steps)
            )
            return run.to_record()

    def get_run(self, run_id: str) -> RunRecord:
        """Look up a run by its full id or by a unique prefix of at least 4 characters.

        Raises:
            NotFoundError: nothing matches, or the prefix matches several runs (the message
                names some of them).
        """
        with self._session(write=False) as session:
            row = session.get(Run, run_id)
            if row is not None:
                return row.to_record()
            if len(run_id) < MIN_PREFIX:
                raise NotFoundError(f"no run with id '{run_id}'",
                                    hint=f"a prefix of a run id needs at least {MIN_PREFIX} characters",
                                    run_id=run_id)
            matches = list(session.scalars(
                select(Run).where(Run.id.startswith(run_id, autoescape=True)).order_by(Run.id).limit(3)
            ))
            if not matches:
                raise NotFoundError(f"no run with id or id prefix '{run_id}'", run_id=run_id)
            if len(matches) > 1:
                shown = ", ".join(m.id for m in matches[:2]) + (", ..." if len(matches) > 2 else "")
                raise NotFoundError(f"run id prefix '{run_id}' is ambiguous: it matches {shown}",
                                    hint="give more characters of the run id", run_id=run_id)
            return matches[0].to_record()

    def list_runs(self, workflow_name: str | None = None, status: Sequence[str] | None = None,
                  limit: int = 50, offset: int = 0, before: str | None = None, *,
                  since: datetime | None = None, until: datetime | None = None,
                  origin: Mapping[str, str] | None = None) -> list[RunRecord]:
        """Runs, newest first (by created_at, number, id).

        Args:
            workflow_name: only runs of this workflow.
            status: only runs in one of these statuses.
            limit: at most this many runs.
            offset: skip this many first (pages).
            before: keyset paging: only runs after this run (full id) in that order — one indexed
                query per page however deep, where an offset reads and drops every row before it.
            since, until: only runs created at or after ``since`` and before ``until`` (UTC).
            origin: only runs whose origin has these values (``kind``: git, schedule, api,
                console …; ``trigger``; ``commit``: a value ending in ``*`` matches a prefix).

        Raises:
            NotFoundError: ``before`` is no run's id.
        """
        query = select(Run).order_by(Run.created_at.desc(), Run.number.desc(), Run.id.desc()).limit(limit).offset(offset)
        if workflow_name is not None:
            query = query.where(Run.workflow_name == workflow_name)
        if status is not None:
            query = query.where(Run.status.in_(list(status)))
        if since is not None:
            query = query.where(Run.created_at >= as_utc(since))
        if until is not None:
            query = query.where(Run.created_at < as_utc(until))
        for key, value in (origin or {}).items():
            field = Run.origin[key].as_string()
            if value.endswith("*"):
                prefix = value[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                query = query.where(field.like(prefix + "%", escape="\\"))
            else:
                query = query.where(field == value)
        with self._session(write=False) as session:
            if before is not None:
                cursor = session.get(Run, before)
                if cursor is None:
                    raise NotFoundError(f"no run with id '{before}'", run_id=before)
                query = query.where(or_(Run.created_at < cursor.created_at,
                                        and_(Run.created_at == cursor.created_at, Run.number < cursor.number),
                                        and_(Run.created_at == cursor.created_at, Run.number == cursor.number,
                                             Run.id < cursor.id)))
            return [row.to_record() for row in session.scalars(query)]

    def runs_by_ids(self, run_ids: Sequence[str]) -> dict[str, RunRecord]:
        """Many runs by their full ids (see :meth:`Store.runs_by_ids`): one query per
        :meth:`_id_chunks` chunk, in the order asked; unknown ids are absent."""
        ids = list(dict.fromkeys(run_ids))
        rows: dict[str, RunRecord] = {}
        with self._session(write=False) as session:
            for chunk in self._id_chunks(ids):
                for row in session.scalars(select(Run).where(Run.id.in_(chunk))):
                    rows[row.id] = row.to_record()
        return {run_id: rows[run_id] for run_id in ids if run_id in rows}

    def count_runs_by_status(self) -> dict[str, int]:
        with self._session(write=False) as session:
            rows = session.execute(select(Run.status, func.count()).group_by(Run.status))
            return {status: count for status, count in rows}

    def queued_runs(self, limit: int = 1000) -> list[RunRecord]:
        query = (select(Run).where(Run.status == "pending", Run.engine_pid.is_(None))
                 .order_by(Run.created_at).limit(limit))
        with self._session(write=False) as session:
            return [row.to_record() for row in session.scalars(query)]

    def count_queued_runs(self) -> int:
        with self._session(write=False) as session:
            return int(session.scalar(select(func.count()).select_from(Run)
                                      .where(Run.status == "pending", Run.engine_pid.is_(None))) or 0)

    def update_run(self, run_id: str, **fields: Any) -> RunRecord:
        """Set fields other than ``status`` (engine_pid, params, stop_requested, ...).

        Raises:
            NotFoundError: no run has this (full) id.
            TypeError: a field is unknown or is ``status``.
        """
        values = _check_fields(fields, _RUN_FIELDS, "update_run")
        with self._session(write=True) as session:
            row = session.get(Run, run_id)
            if row is None:
                raise NotFoundError(f"no run with id '{run_id}'", run_id=run_id)
            for key, value in values.items():
                setattr(row, key, value)
            session.flush()
            return row.to_record()

    def transition_run(self, run_id: str, to_status: str, *, message: str | None = None,
                       expected_from: Sequence[str] | None = None, **fields: Any) -> bool:
        """Change a run's status and write its event row in one transaction.

        ``started_at`` is set on first entering ``running``; ``finished_at`` is set on entering
        a terminal status and cleared on leaving one. ``fields`` are written too and win over
        both. ``message``, when given, becomes the run's message and the event's.

        Args:
            run_id: the run's full id.
            to_status: the new status.
            message: why, for people reading the events.
            expected_from: compare-and-set: only change the status if it is one of these.
            **fields: other run fields to set in the same transaction.

        Returns:
            False (and nothing written) when ``expected_from`` did not hold, else True.

        Raises:
            NotFoundError: no run has this id.
            ValueError: an unknown status.
            TypeError: a field that can't be set.
        """
        _check_statuses(to_status, expected_from, _RUN_STATUSES)
        values = _check_fields(fields, _RUN_FIELDS, "transition_run")
        with self._session(write=True) as session:
            # FOR UPDATE locks the row on PostgreSQL so from_status is exact; on SQLite the
            # IMMEDIATE transaction already holds the write lock (and the clause is omitted).
            current = session.execute(
                select(Run.status, Run.started_at).where(Run.id == run_id).with_for_update()
            ).one_or_none()
            if current is None:
                raise NotFoundError(f"no run with id '{run_id}'", run_id=run_id)
            if expected_from is not None and current.status not in expected_from:
                return False
            now = _now()
            new = {**_timestamps(to_status, TERMINAL_RUN, current.started_at, now), **values, "status": to_status}
            if message is not None:
                new["message"] = message
            # Conditional on the status just read: the compare-and-set holds even if the
            # row lock were missing.
            result = session.execute(
                update(Run).where(Run.id == run_id, Run.status == current.status).values(new)
                .execution_options(synchronize_session=False)
            )
            if cast(CursorResult[Any], result).rowcount != 1:
                return False
            session.add(Event(run_id=run_id, step_name=None, from_status=current.status,
                              to_status=to_status, at=now, message=message))
            return True

    # -- steps ------------------------------------------------------------------------------
    def get_step(self, run_id: str, name: str) -> StepRecord:
        """Return one step of a run.

        Raises:
            NotFoundError: the run has no step of this name.
        """
        with self._session(write=False) as session:
            row = session.get(Step, (run_id, name))
            if row is None:
                raise NotFoundError(f"run '{run_id}' has no step '{name}'", run_id=run_id, step=name)
            return row.to_record()

    def list_steps(self, run_id: str) -> list[StepRecord]:
        """The run's steps in creation order.

        Raises:
            NotFoundError: no run has this id.
        """
        with self._session(write=False) as session:
            self._require_run(session, run_id)
            rows = session.scalars(select(Step).where(Step.run_id == run_id).order_by(Step.position))
            return [row.to_record() for row in rows]

    def step_inputs_of_runs(self, run_ids: Sequence[str], keys: Sequence[str] | None = None
                            ) -> dict[str, list[StepInputsRecord]]:
        """The recorded inputs of many runs' steps (see :meth:`Store.step_inputs_of_runs`): one
        query per :meth:`_id_chunks` chunk; with ``keys``, the database hands back only those
        parts of each step's inputs (JSON paths), not the whole document."""
        ids = list(dict.fromkeys(run_ids))
        wanted = list(dict.fromkeys(keys)) if keys is not None else None
        columns = [Step.inputs] if wanted is None else [Step.inputs[key] for key in wanted]
        found: dict[str, list[StepInputsRecord]] = {}
        with self._session(write=False) as session:
            for chunk in self._id_chunks(ids):
                query = (select(Step.run_id, Step.name, Step.type, *columns)
                         .where(Step.run_id.in_(chunk)).order_by(Step.run_id, Step.position))
                for run_id, name, step_type, *values in session.execute(query):
                    if wanted is None:
                        inputs = dict(values[0] or {})
                    else:
                        inputs = {key: value for key, value in zip(wanted, values) if value is not None}
                    found.setdefault(run_id, []).append(
                        StepInputsRecord(run_id=run_id, step_name=name, type=step_type, inputs=inputs))
        return {run_id: found[run_id] for run_id in ids if run_id in found}

    @staticmethod
    def _id_chunks(ids: Sequence[str], size: int = 500) -> list[Sequence[str]]:
        """``ids`` in slices of ``size``: one ``IN (...)`` each, well under SQLite's limit on
        bound parameters (999 before 3.32)."""
        return [ids[start:start + size] for start in range(0, len(ids), size)]

    def update_step(self, run_id: str, name: str, **fields: Any) -> StepRecord:
        """Set fields other than ``status`` (pid, inputs, outputs, workdir, ...).

        Raises:
            NotFoundError: the run has no step of this name.
            TypeError: a field is unknown or is ``status``.
        """
        values = _check_fields(fields, _STEP_FIELDS, "update_step")
        with self._session(write=True) as session:
            row = session.get(Step, (run_id, name))
            if row is None:
                raise NotFoundError(f"run '{run_id}' has no step '{name}'", run_id=run_id, step=name)
            for key, value in values.items():
                setattr(row, key, value)
            session.flush()
            return row.to_record()

    def find_cached_step(self, *, cache_key: str | None = None, workflow_name: str | None = None,
                         step_name: str | None = None, ran: bool = False,
                         exclude_run: str | None = None) -> StepRecord | None:
        """See :meth:`Store.find_cached_step`; by ``cache_key`` it is one indexed lookup."""
        query = select(Step).where(Step.status == "succeeded", Step.cache_key.is_not(None))
        if cache_key is not None:
            query = query.where(Step.cache_key == cache_key)
        if step_name is not None:
            query = query.where(Step.name == step_name)
        if workflow_name is not None:
            query = query.join(Run, Run.id == Step.run_id).where(Run.workflow_name == workflow_name)
        if ran:
            query = query.where(Step.cached_from.is_(None))
        if exclude_run is not None:
            query = query.where(Step.run_id != exclude_run)
        query = query.order_by(Step.finished_at.desc()).limit(1)
        with self._session(write=False) as session:
            row = session.scalars(query).first()
            return row.to_record() if row is not None else None

    def transition_step(self, run_id: str, name: str, to_status: str, *, message: str | None = None,
                        expected_from: Sequence[str] | None = None, **fields: Any) -> bool:
        """Like :meth:`transition_run`, for one step; extra ``fields`` are written too.

        Returns:
            False (and nothing written) when ``expected_from`` did not hold, else True.

        Raises:
            NotFoundError: the run has no step of this name.
            ValueError: an unknown status.
            TypeError: a field that can't be set.
        """
        change = StepTransition(name, to_status, message=message, expected_from=expected_from, fields=fields)
        return self.transition_steps(run_id, [change])[0]

    def transition_steps(self, run_id: str, changes: Sequence[StepTransition]) -> list[bool]:
        """Several step transitions, in order, in one transaction (one commit).

        A change's ``metrics`` and ``artifacts`` are written with it, and only if it applied:
        metrics replace the step's metrics from the same source files (as :meth:`add_metrics`),
        artifacts replace the step's artifacts of the same output name (as :meth:`add_artifact`),
        so a retried step that succeeds again keeps one row per output.

        Returns:
            For each change, whether it was applied (see :meth:`transition_step`).

        Raises:
            NotFoundError: the run has no step of one of these names (nothing is written).
        """
        checked = []
        for change in changes:
            _check_statuses(change.to_status, change.expected_from, _STEP_STATUSES)
            checked.append((change, _check_fields(dict(change.fields), _STEP_FIELDS, "transition_step")))
        events: list[dict[str, Any]] = []
        with self.db.write_connection() as conn:
            applied = [self._apply_step_change(conn, run_id, change, values, events) for change, values in checked]
            if events:  # one statement for the whole batch
                conn.execute(_INSERT_EVENT, events)
            return applied

    @staticmethod
    def _apply_step_change(conn: Connection, run_id: str, change: StepTransition, values: dict[str, Any],
                           events: list[dict[str, Any]]) -> bool:
        # The engine runs this twice per step: Core statements built once (module level) cost a
        # quarter of the ORM path's CPU (statement building, unit of work), for the same SQL.
        key = {"k_run": run_id, "k_name": change.name}
        now = as_utc(change.at) if change.at is not None else _now()
        expected = change.expected_from
        if expected is not None and len(expected) == 1 and (change.to_status != "running" or "started_at" in values):
            # The engine's case: it knows the status it moves from, and the update's own
            # condition checks it (no read first); only a miss needs a look at why.
            current_status, started_at = expected[0], None
        else:
            current = conn.execute(_SELECT_STEP_STATE, key).one_or_none()
            if current is None:
                raise NotFoundError(f"run '{run_id}' has no step '{change.name}'", run_id=run_id, step=change.name)
            if expected is not None and current.status not in expected:
                return False
            current_status, started_at = current.status, current.started_at
        new = {**_timestamps(change.to_status, TERMINAL_STEP, started_at, now), **values, "status": change.to_status}
        if change.message is not None:
            new["message"] = change.message
        if conn.execute(_UPDATE_STEP_IF, {**new, **key, "k_status": current_status}).rowcount != 1:
            if conn.execute(_SELECT_STEP_STATE, key).one_or_none() is None:
                raise NotFoundError(f"run '{run_id}' has no step '{change.name}'", run_id=run_id, step=change.name)
            return False
        events.append({"run_id": run_id, "step_name": change.name, "from_status": current_status,
                       "to_status": change.to_status, "at": now, "message": change.message})
        if change.metrics:
            conn.execute(_DELETE_METRICS_FROM, {**key, "k_sources": sorted({m.source for m in change.metrics})})
            conn.execute(_INSERT_METRIC, [
                {"run_id": run_id, "step_name": change.name, "key": m.key, "title": m.title, "type": m.type,
                 "value": m.value, "data": m.data, "source": m.source}
                for m in change.metrics
            ])
        if change.artifacts:
            latest = {a.name: a for a in change.artifacts}  # one row per output: the last one given wins
            conn.execute(_DELETE_ARTIFACTS_NAMED, {**key, "k_names": sorted(latest)})
            conn.execute(_INSERT_ARTIFACT, [
                {"run_id": run_id, "step_name": change.name, "name": a.name, "kind": a.kind, "uri": a.uri,
                 "digest": a.digest, "size": a.size, "created_at": now}
                for a in latest.values()
            ])
        return True

    def events_after(self, after_id: int, run_id: str | None = None, limit: int = 500) -> list[EventRecord]:
        """Transitions with an id above ``after_id`` (of one run, or of all), oldest first: what
        an event stream that reconnects with ``Last-Event-ID`` resumes from."""
        query = select(Event).where(Event.id > after_id).order_by(Event.id).limit(limit)
        if run_id is not None:
            query = query.where(Event.run_id == run_id)
        with self._session(write=False) as session:
            return [row.to_record() for row in session.scalars(query)]

    def list_events(self, run_id: str) -> list[EventRecord]:
        """The run's and its steps' transitions, oldest first.

        Raises:
            NotFoundError: no run has this id.
        """
        with self._session(write=False) as session:
            self._require_run(session, run_id)
            rows = session.scalars(select(Event).where(Event.run_id == run_id).order_by(Event.id))
            return [row.to_record() for row in rows]

    def count_events(self, run_id: str) -> int:
        """How many transitions the run and its steps went through, counted by the database.

        Raises:
            NotFoundError: no run has this id.
        """
        with self._session(write=False) as session:
            self._require_run(session, run_id)
            return int(session.scalar(select(func.count()).select_from(Event).where(Event.run_id == run_id)) or 0)

    # -- metrics and artifacts --------------------------------------------------------------
    def add_metrics(self, run_id: str, step_name: str, entries: Sequence[MetricRecord]) -> None:
        """Replace the step's metrics from the same source files with these entries.

        Metrics of the step from other sources stay. The entries are stored under
        ``run_id``/``step_name`` whatever their own ``run_id``/``step_name`` say.

        Raises:
            NotFoundError: the run has no step of this name.
        """
        sources = {entry.source for entry in entries}
        with self._session(write=True) as session:
            self._require_step(session, run_id, step_name)
            if sources:
                session.execute(delete(Metric).where(
                    Metric.run_id == run_id, Metric.step_name == step_name, Metric.source.in_(sources)
                ))
            session.add_all(
                Metric(run_id=run_id, step_name=step_name, key=e.key, title=e.title, type=e.type,
                       value=e.value, data=e.data, source=e.source)
                for e in entries
            )

    def list_metrics(self, run_id: str, step_name: str | None = None) -> list[MetricRecord]:
        """Metrics of a run (or of one of its steps) in the order they were added.

        Raises:
            NotFoundError: no run has this id.
        """
        records: list[MetricRecord] = self._records_of_run(Metric, run_id, step_name)
        return records

    def add_artifact(self, run_id: str, step_name: str, name: str, kind: str, uri: str,
                     digest: str | None = None, size: int | None = None) -> ArtifactRecord:
        """Record an artifact a step produced, replacing the step's artifact of the same output
        name (a retried step keeps one row per output).

        Args:
            run_id: the run.
            step_name: the step that produced it.
            name: the output's name.
            kind: obs, metrics, model, ...
            uri: where the bytes are (an fsspec URL).
            digest: content digest, if known.
            size: size in bytes, if known.

        Raises:
            NotFoundError: the run has no step of this name.
        """
        with self._session(write=True) as session:
            self._require_step(session, run_id, step_name)
            session.execute(delete(Artifact).where(
                Artifact.run_id == run_id, Artifact.step_name == step_name, Artifact.name == name
            ))
            row = Artifact(run_id=run_id, step_name=step_name, name=name, kind=kind, uri=uri,
                           digest=digest, size=size, created_at=_now())
            session.add(row)
            session.flush()
            return row.to_record()

    def list_artifacts(self, run_id: str, step_name: str | None = None) -> list[ArtifactRecord]:
        """Artifacts of a run (or of one of its steps), oldest first.

        Raises:
            NotFoundError: no run has this id.
        """
        records: list[ArtifactRecord] = self._records_of_run(Artifact, run_id, step_name)
        return records

    def metrics_of_runs(self, run_ids: Sequence[str], types: Sequence[str] | None = None
                        ) -> dict[str, list[MetricRecord]]:
        """The metrics of many runs by run id (see :meth:`Store.metrics_of_runs`): one query per
        900 runs (under SQLite's bound-parameter limit)."""
        ids = list(dict.fromkeys(run_ids))
        found: dict[str, list[MetricRecord]] = {}
        with self._session(write=False) as session:
            for start in range(0, len(ids), 900):
                query = select(Metric).where(Metric.run_id.in_(ids[start:start + 900])).order_by(Metric.id)
                if types is not None:
                    query = query.where(Metric.type.in_(list(types)))
                for row in session.scalars(query):
                    found.setdefault(row.run_id, []).append(row.to_record())
        return found

    def _records_of_run(self, model: type[Metric] | type[Artifact], run_id: str,
                        step_name: str | None) -> list[Any]:
        """A run's (or one step's) metrics or artifacts as records, oldest first.

        Raises:
            NotFoundError: no run has this id.
        """
        query = select(model).where(model.run_id == run_id).order_by(model.id)
        if step_name is not None:
            query = query.where(model.step_name == step_name)
        with self._session(write=False) as session:
            self._require_run(session, run_id)
            rows: list[Metric | Artifact] = list(session.scalars(query))
            return [row.to_record() for row in rows]

    # -- algorithms -------------------------------------------------------------------------
    def register_algorithm(self, record: AlgorithmRecord) -> AlgorithmRecord:
        """Insert, or replace the row with the same (name, version).

        A replaced algorithm keeps its id, so workflows that name it by id keep working;
        ``record.id`` is then ignored. Use the returned record.

        Raises:
            StoreError: ``record.id`` already belongs to another (name, version).
        """
        values = record.model_dump(exclude={"id", "created_at"})
        created_at = as_utc(record.created_at) if record.created_at else _now()
        with self._session(write=True) as session:
            row = session.scalars(
                select(Algorithm).where(Algorithm.name == record.name, Algorithm.version == record.version)
            ).first()
            if row is None:
                taken = session.get(Algorithm, record.id)
                if taken is not None:
                    raise StoreError(
                        f"algorithm id '{record.id}' already belongs to {taken.name} {taken.version}",
                        hint="register with a new id", algorithm_id=record.id,
                    )
                row = Algorithm(id=record.id, created_at=created_at, **values)
                session.add(row)
            else:
                for key, value in values.items():
                    setattr(row, key, value)
                row.created_at = created_at
            session.flush()
            return row.to_record()

    def find_algorithm(self, *, algorithm_id: str | None = None, name: str | None = None,
                       subscription_id: str | None = None, version: str | None = None) -> AlgorithmRecord:
        """Find an algorithm by id, by name or by subscription id (criteria combine).

        Args:
            algorithm_id: the algorithm's id.
            name: its registered name.
            subscription_id: its gallery subscription id.
            version: this version; None picks the highest version (numeric parts compare as
                numbers, so 1.10.0 is newer than 1.9.0).

        Raises:
            NotFoundError: nothing matches; the message names what was asked.
            TypeError: none of ``algorithm_id``, ``name``, ``subscription_id`` was given.
        """
        if algorithm_id is None and name is None and subscription_id is None:
            raise TypeError("find_algorithm() needs algorithm_id, name or subscription_id")
        query = select(Algorithm)
        if algorithm_id is not None:
            query = query.where(Algorithm.id == algorithm_id)
        if name is not None:
            query = query.where(Algorithm.name == name)
        if subscription_id is not None:
            query = query.where(Algorithm.subscription_id == subscription_id)
        if version is not None:
            query = query.where(Algorithm.version == version)
        with self._session(write=False) as session:
            rows = list(session.scalars(query))
            if not rows:
                asked = {"algorithm_id": algorithm_id, "name": name, "subscription_id": subscription_id,
                         "version": version}
                asked = {k: v for k, v in asked.items() if v is not None}
                what = ", ".join(f"{k}={v!r}" for k, v in asked.items())
                raise NotFoundError(f"no algorithm with {what}", **asked)
            newest = max(rows, key=lambda r: (version_key(r.version), as_utc(r.created_at)))
            return newest.to_record()

    def list_algorithms(self) -> list[AlgorithmRecord]:
        """All algorithms by name, then version (oldest first)."""
        with self._session(write=False) as session:
            rows = sorted(session.scalars(select(Algorithm)), key=lambda r: (r.name, version_key(r.version)))
            return [row.to_record() for row in rows]

    # -- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        """Close every pooled connection. The store can't be used afterwards."""
        self.engine.dispose()

    # -- helpers ----------------------------------------------------------------------------
    @staticmethod
    def _require_run(session: Session, run_id: str) -> None:
        if session.get(Run, run_id) is None:
            raise NotFoundError(f"no run with id '{run_id}'", run_id=run_id)

    @staticmethod
    def _require_step(session: Session, run_id: str, step_name: str) -> None:
        if session.get(Step, (run_id, step_name)) is None:
            raise NotFoundError(f"run '{run_id}' has no step '{step_name}'", run_id=run_id, step=step_name)
