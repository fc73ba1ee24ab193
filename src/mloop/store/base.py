"""What the engine, the services, the CLI (and later the server) may ask of the metadata store.

Methods return pydantic records, never ORM rows. Every state transition is one committed
row in ``events`` written in the same transaction as the status change.
"""

from __future__ import annotations

import abc
from datetime import datetime, timezone
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:  # the repositories' modules import this one (for _Record)
    from mloop.store.datasets import DatasetRepository
    from mloop.store.engines import EngineRepository
    from mloop.store.labels import LabelRepository
    from mloop.store.notify import NotifyRepository
    from mloop.store.registry import ModelRepository
    from mloop.store.schedules import ScheduleRepository
    from mloop.store.services import ServiceRepository
    from mloop.store.tracking import TrackingRepository
    from mloop.store.triggers import TriggerRepository
    from mloop.store.tokens import TokenRepository
    from mloop.store.users import UserRepository
    from mloop.store.workflows import WorkflowRepository

RunStatus = Literal["pending", "running", "waiting_input", "succeeded", "failed", "stopped"]
StepStatus = Literal["pending", "running", "waiting_input", "succeeded", "failed", "skipped", "stopped"]

TERMINAL_RUN: frozenset[str] = frozenset({"succeeded", "failed", "stopped"})
TERMINAL_STEP: frozenset[str] = frozenset({"succeeded", "failed", "skipped", "stopped"})


class _Record(BaseModel):
    """Records are read straight off ORM rows; every timestamp comes out aware, in UTC
    (SQLite hands back naive datetimes, which mloop always writes in UTC)."""

    model_config = ConfigDict(from_attributes=True)

    @field_validator("*", mode="after")
    @classmethod
    def _utc(cls, value: Any) -> Any:
        if isinstance(value, datetime):
            return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
        return value


class ReleaseRecord(_Record):
    """A frozen workflow definition. Releasing the same name again adds version n+1."""

    id: str
    workflow_name: str
    version: int
    spec: dict[str, Any]
    spec_hash: str
    created_at: datetime
    extend: dict[str, Any] = Field(default_factory=dict)


class RunRecord(_Record):
    id: str
    release_id: str
    workflow_name: str
    number: int  # 1, 2, 3 ... per workflow name (SystemEnv.WORKFLOW_RUN_COUNT)
    status: RunStatus
    params: dict[str, Any] = Field(default_factory=dict)  # coerced placeholder + data values
    storages: dict[str, str] = Field(default_factory=dict)  # storage name -> run-time root
    selected_steps: list[str] | None = None  # partial run: only these steps
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    engine_pid: int | None = None
    engine_host: str | None = None
    engine_started_at: float | None = None  # process start time, guards against pid reuse
    engine_id: str | None = None  # the server or worker engine that claimed it (heartbeats)
    stop_requested: bool = False
    message: str | None = None
    attempt: int = 1  # incremented by retry
    origin: dict[str, Any] | None = None  # what started it (schedule, git push, API token, ...)


class StepRecord(_Record):
    run_id: str
    name: str
    type: str
    status: StepStatus
    attempt: int = 0  # 1 on first launch, +1 on each retry
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    pid: int | None = None
    executor_ref: str | None = None  # the executor's reference to the job (see mloop.executors)
    exit_code: int | None = None
    message: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)  # resolved input values
    outputs: dict[str, Any] = Field(default_factory=dict)  # resolved output values
    outputs_skipped: bool = False
    workdir: str | None = None
    log_path: str | None = None
    code_hash: str | None = None
    cache_key: str | None = None  # the digest of what decides the step's result (step caching)
    cache_facts: dict[str, Any] | None = None  # the parts of that digest, to say what changed
    cached_from: dict[str, Any] | None = None  # {"run_id", "step"} whose outputs were reused
    environment: dict[str, Any] | None = None  # the job's environment (interpreter, requirements)


class StepInputsRecord(_Record):
    """Part of one step's recorded inputs, as :meth:`Store.step_inputs_of_runs` reads it."""

    run_id: str
    step_name: str
    type: str  # the step's kind (job, model, dataset_release, ...)
    #: The step's recorded inputs, or only the asked top-level keys it has (absent or null: left out).
    inputs: dict[str, Any] = Field(default_factory=dict)


class EventRecord(_Record):
    id: int
    run_id: str
    step_name: str | None  # None = the run itself
    from_status: str | None
    to_status: str
    at: datetime
    message: str | None = None


class MetricRecord(_Record):
    run_id: str
    step_name: str
    key: str
    title: str
    type: str  # float | line chart | histogram | table | one-dimensional-table
    value: float | None = None  # for float entries
    data: dict[str, Any]
    source: str  # the metrics file it came from


class ArtifactRecord(_Record):
    id: int
    run_id: str
    step_name: str
    name: str  # output name
    kind: str  # obs | metrics | model | ...
    uri: str
    digest: str | None = None
    size: int | None = None
    created_at: datetime


class AlgorithmRecord(_Record):
    """A registered algorithm (``mloop algorithm register``), addressable three ways:
    by ``id`` (``wf.Algorithm(algorithm_id)``), by ``name``+``version``, and by
    ``subscription_id``+``version`` (``wf.AIGalleryAlgorithm``)."""

    id: str
    name: str
    version: str = "1.0.0"
    subscription_id: str | None = None
    code_dir: str
    boot_file: str | None = None
    command: str | None = None
    engine: dict[str, Any] = Field(default_factory=dict)
    parameters: list[dict[str, Any]] = Field(default_factory=list)  # {name, default, required, editable, help}
    inputs: list[str] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)
    environments: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True)
class NewArtifact:
    """An artifact a step produced, committed with the step's terminal transition."""

    name: str  # the output's name
    kind: str  # obs | metrics | model | ...
    uri: str
    digest: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class StepTransition:
    """One change of a step's status, for :meth:`Store.transition_steps`."""

    name: str
    to_status: str
    message: str | None = None
    expected_from: Sequence[str] | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    at: datetime | None = None  # when it happened, if not at commit (the event's time, and started/finished_at)
    #: What the step produced, written in the same transaction as the transition and only if
    #: it applied: a crash before the commit leaves neither, a retry replaces instead of adding.
    metrics: Sequence[MetricRecord] = ()
    artifacts: Sequence[NewArtifact] = ()


class Store(abc.ABC):
    """The metadata store. One implementation (SQLAlchemy) serves SQLite and PostgreSQL.

    Runs, steps, events, metrics, artifacts, releases and algorithms are methods here; each
    other area is one repository, reached as a typed property (``store.registry.get(...)``).
    """

    # -- areas beyond runs: one repository each, on this store's database ----------------------
    @property
    @abc.abstractmethod
    def datasets(self) -> DatasetRepository:
        """Datasets and their immutable versions."""

    @property
    @abc.abstractmethod
    def labels(self) -> LabelRepository:
        """Labeling tasks and the labels they receive."""

    @property
    @abc.abstractmethod
    def registry(self) -> ModelRepository:
        """The model registry: models, versions, aliases."""

    @property
    @abc.abstractmethod
    def services(self) -> ServiceRepository:
        """Managed inference services and their deployments."""

    @property
    @abc.abstractmethod
    def tracking(self) -> TrackingRepository:
        """MLflow-compatible tracking runs: params, tags and metric points."""

    @property
    @abc.abstractmethod
    def schedules(self) -> ScheduleRepository:
        """Schedules (cron-driven runs) and their fires."""

    @property
    @abc.abstractmethod
    def triggers(self) -> TriggerRepository:
        """Git-push triggers and the deliveries they received."""

    @property
    @abc.abstractmethod
    def engines(self) -> EngineRepository:
        """Engines sharing the database (heartbeats) and the takeover of a dead one's runs."""

    @property
    @abc.abstractmethod
    def tokens(self) -> TokenRepository:
        """API tokens of the server (hashed, scoped, revocable)."""

    @property
    @abc.abstractmethod
    def users(self) -> UserRepository:
        """Console users of the server (argon2 password hashes, scoped, disable-able)."""

    @property
    @abc.abstractmethod
    def notify(self) -> NotifyRepository:
        """Notification subscriptions, the outbox of notifications and the notifier's cursor."""

    @property
    @abc.abstractmethod
    def workflows(self) -> WorkflowRepository:
        """Saved run configurations; deleting ended runs and whole workflows."""

    # -- releases -----------------------------------------------------------------------------
    @abc.abstractmethod
    def create_release(self, workflow_name: str, spec: dict[str, Any], extend: dict[str, Any] | None = None,
                       *, reuse_if_unchanged: bool = False) -> ReleaseRecord:
        """Store a spec as the next release (version) of ``workflow_name``.

        With ``reuse_if_unchanged``, the latest release is returned instead when it has the
        same spec hash (decided under the same lock, so concurrent releases make one version).
        """

    @abc.abstractmethod
    def get_release(self, release_id: str) -> ReleaseRecord:
        """Raises NotFoundError."""

    @abc.abstractmethod
    def latest_release(self, workflow_name: str) -> ReleaseRecord | None: ...

    @abc.abstractmethod
    def list_releases(self, workflow_name: str | None = None) -> list[ReleaseRecord]: ...

    # -- runs ---------------------------------------------------------------------------------
    @abc.abstractmethod
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
        """Create a run in ``pending`` with one ``pending`` step row per (name, type)."""

    @abc.abstractmethod
    def get_run(self, run_id: str) -> RunRecord:
        """Look up by full id or by a unique prefix (at least 4 characters).

        Raises NotFoundError (no match, or an ambiguous prefix: the message says so)."""

    @abc.abstractmethod
    def list_runs(self, workflow_name: str | None = None, status: Sequence[str] | None = None,
                  limit: int = 50, offset: int = 0, before: str | None = None, *,
                  since: datetime | None = None, until: datetime | None = None,
                  origin: Mapping[str, str] | None = None) -> list[RunRecord]:
        """Newest first (skipping the first ``offset``; with ``before``, a run's full id, only the
        runs after it in that order: keyset paging); ``since``/``until`` bound the creation time,
        ``origin`` matches values of the run's origin (a value ending in ``*``: a prefix)."""

    def runs_by_ids(self, run_ids: Sequence[str]) -> dict[str, RunRecord]:
        """Many runs by their full ids (no prefixes), in the order asked, each once; an unknown
        (or deleted) id is absent. Stores answer it in one query (per few hundred ids)."""
        from mloop.errors import NotFoundError

        found: dict[str, RunRecord] = {}
        for run_id in dict.fromkeys(run_ids):
            try:
                run = self.get_run(run_id)
            except NotFoundError:
                continue
            if run.id == run_id:  # get_run also takes a prefix; this asks for full ids only
                found[run_id] = run
        return found

    @abc.abstractmethod
    def count_runs_by_status(self) -> dict[str, int]:
        """How many runs are in each status (statuses with none are left out)."""

    @abc.abstractmethod
    def queued_runs(self, limit: int = 1000) -> list[RunRecord]:
        """Runs waiting in the queue (pending, no engine or creator recorded), oldest first."""

    @abc.abstractmethod
    def count_queued_runs(self) -> int:
        """How many runs wait in the queue (pending, no engine or creator recorded)."""

    @abc.abstractmethod
    def update_run(self, run_id: str, **fields: Any) -> RunRecord:
        """Set fields other than ``status`` (engine_pid, params, stop_requested, ...)."""

    @abc.abstractmethod
    def transition_run(self, run_id: str, to_status: str, *, message: str | None = None,
                       expected_from: Sequence[str] | None = None, **fields: Any) -> bool:
        """Change a run's status and write its event row in one transaction.

        ``started_at``/``finished_at`` are set automatically (running / terminal). When
        ``expected_from`` is given and the current status is not in it, nothing is written and
        False is returned (compare-and-set, so a stop and the engine can't both win).
        """

    # -- steps --------------------------------------------------------------------------------
    @abc.abstractmethod
    def get_step(self, run_id: str, name: str) -> StepRecord: ...

    @abc.abstractmethod
    def list_steps(self, run_id: str) -> list[StepRecord]:
        """In creation order."""

    def step_inputs_of_runs(self, run_ids: Sequence[str], keys: Sequence[str] | None = None
                            ) -> dict[str, list[StepInputsRecord]]:
        """The recorded inputs of many runs' steps by run id, each run's in step order; a run with
        no steps (or unknown) is absent. With ``keys``, only those top-level keys of each step's
        inputs (e.g. ``("datasets",)``: the dataset versions a job read); the rest is not read.
        Stores answer it in one query (per few hundred ids)."""
        from mloop.errors import NotFoundError

        found: dict[str, list[StepInputsRecord]] = {}
        for run_id in dict.fromkeys(run_ids):
            try:
                steps = self.list_steps(run_id)
            except NotFoundError:
                continue
            if steps:
                found[run_id] = [StepInputsRecord(
                    run_id=s.run_id, step_name=s.name, type=s.type,
                    inputs=dict(s.inputs) if keys is None
                    else {k: s.inputs[k] for k in keys if s.inputs.get(k) is not None})
                    for s in steps]
        return found

    @abc.abstractmethod
    def update_step(self, run_id: str, name: str, **fields: Any) -> StepRecord:
        """Set fields other than ``status``."""

    @abc.abstractmethod
    def find_cached_step(self, *, cache_key: str | None = None, workflow_name: str | None = None,
                         step_name: str | None = None, ran: bool = False,
                         exclude_run: str | None = None) -> StepRecord | None:
        """The succeeded step that finished last among those that recorded a cache key (step
        caching): with ``cache_key`` (what a step may reuse), and/or of ``workflow_name``'s
        step ``step_name`` (what a step that was not cached is compared with).

        Args:
            ran: only steps that ran, not ones that were themselves cached from another.
            exclude_run: leave out this run's steps.
        """

    @abc.abstractmethod
    def transition_step(self, run_id: str, name: str, to_status: str, *, message: str | None = None,
                        expected_from: Sequence[str] | None = None, **fields: Any) -> bool:
        """Like :meth:`transition_run`, for one step; extra ``fields`` are written too."""

    @abc.abstractmethod
    def transition_steps(self, run_id: str, changes: Sequence[StepTransition]) -> list[bool]:
        """Several step transitions in order, in one transaction; whether each was applied.

        Each change's ``metrics`` and ``artifacts`` are written in that transaction only if the
        change applied, replacing the step's metrics from the same sources and its artifacts of
        the same output names. Any error writes nothing of the batch.
        """

    @abc.abstractmethod
    def list_events(self, run_id: str) -> list[EventRecord]:
        """Oldest first."""

    def count_events(self, run_id: str) -> int:
        """How many transitions the run and its steps went through (what ``list_events`` would list)."""
        return len(self.list_events(run_id))

    # -- metrics and artifacts ----------------------------------------------------------------
    @abc.abstractmethod
    def events_after(self, after_id: int, run_id: str | None = None, limit: int = 500) -> list[EventRecord]:
        """Transitions with an id above ``after_id`` (of one run, or of all), oldest first."""

    @abc.abstractmethod
    def add_metrics(self, run_id: str, step_name: str, entries: Sequence[MetricRecord]) -> None:
        """Replace the step's metrics from the same source files with these entries."""

    @abc.abstractmethod
    def list_metrics(self, run_id: str, step_name: str | None = None) -> list[MetricRecord]: ...

    def metrics_of_runs(self, run_ids: Sequence[str], types: Sequence[str] | None = None
                        ) -> dict[str, list[MetricRecord]]:
        """The metrics of many runs by run id, in the order they were added (only of these
        ``types``, e.g. ``("float",)``); a run with none is absent. Stores answer it in one query."""
        wanted = set(types) if types is not None else None
        found: dict[str, list[MetricRecord]] = {}
        for run_id in run_ids:
            records = [m for m in self.list_metrics(run_id) if wanted is None or m.type in wanted]
            if records:
                found[run_id] = records
        return found

    @abc.abstractmethod
    def add_artifact(self, run_id: str, step_name: str, name: str, kind: str, uri: str,
                     digest: str | None = None, size: int | None = None) -> ArtifactRecord:
        """Record an artifact, replacing the step's artifact of the same output ``name``."""

    @abc.abstractmethod
    def list_artifacts(self, run_id: str, step_name: str | None = None) -> list[ArtifactRecord]: ...

    # -- algorithms ---------------------------------------------------------------------------
    @abc.abstractmethod
    def register_algorithm(self, record: AlgorithmRecord) -> AlgorithmRecord:
        """Insert, or replace the row with the same (name, version)."""

    @abc.abstractmethod
    def find_algorithm(self, *, algorithm_id: str | None = None, name: str | None = None,
                       subscription_id: str | None = None, version: str | None = None) -> AlgorithmRecord:
        """Newest version when ``version`` is None. Raises NotFoundError naming what was asked."""

    @abc.abstractmethod
    def list_algorithms(self) -> list[AlgorithmRecord]: ...

    # -- lifecycle ----------------------------------------------------------------------------
    @abc.abstractmethod
    def close(self) -> None: ...
