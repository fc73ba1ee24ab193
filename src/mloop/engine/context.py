"""Everything a run knows while it runs, and how spec references become concrete values.

Layer: engine.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any, Callable, Protocol

from mloop.artifacts import ArtifactStore, is_local, join_url, local_path, resolve_obs_path
from mloop.config import Settings
from mloop.context import Context
from mloop.errors import ConfigError, NotFoundError
from mloop.metrics import float_values
from mloop.spec import refs
from mloop.spec.models import WorkflowSpec
from mloop.store.base import RunRecord, Store


class StepState(Protocol):
    """What input resolution needs to know of a step (a StepRecord or the engine's view)."""

    @property
    def status(self) -> str: ...

    @property
    def outputs(self) -> dict[str, Any]: ...

    @property
    def outputs_skipped(self) -> bool: ...


class InputUnavailable(Exception):
    """An input can't be resolved because its producers were skipped or did not run."""


def storage_roots(spec: WorkflowSpec, given: dict[str, str], settings: Settings) -> dict[str, str]:
    """The root location of every storage for a run: given > storage default > ``<home>/storage/<name>/``.

    Raises:
        ConfigError: a root given for a storage the workflow does not have.
    """
    known = {s.name for s in spec.storages}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ConfigError(f"no storage named {', '.join(map(repr, unknown))} in workflow {spec.name!r}",
                          hint=f"known storages: {', '.join(sorted(known)) or 'none'}")
    base = spec.source_dir or os.getcwd()
    out = {}
    for s in spec.storages:
        raw = given.get(s.name) or s.path or str(settings.home_path / "storage" / s.name)
        out[s.name] = obs_location(raw, settings, base)
    return out


def obs_location(raw: str, settings: Settings, base_dir: str) -> str:
    """What a user wrote in an OBS field (``obs://``, ModelArts' ``/bucket/dir/``, a relative or
    absolute path, a URL) as an absolute path or URL: the one rule of every SDK path field
    (see :func:`mloop.artifacts.resolve_obs_path` and the ``obs_absolute_paths`` setting)."""
    return resolve_obs_path(raw, obs_root=settings.resolved_obs_root, base_dir=base_dir,
                            absolute_paths=settings.obs_absolute_paths,
                            local_roots=(settings.resolved_artifact_root, str(settings.home_path)))


class RunContext(Context):
    """A run's fixed facts plus access to what its steps produced so far.

    It is a :class:`~mloop.context.Context` (settings, store, artifact store), so handlers pass
    it straight to the domain operations they call. The run service owns the store and
    closes it; nothing below the engine closes a run context.
    """

    def __init__(self, run: RunRecord, spec: WorkflowSpec, settings: Settings, store: Store,
                 artifacts: ArtifactStore | None, values: dict[str, Any], roots: dict[str, str], run_dir: str,
                 step_state: Callable[[str], StepState | None] | None = None) -> None:
        super().__init__(settings, store, artifacts)
        self.run, self.spec = run, spec
        self.values, self.roots, self.run_dir = values, roots, run_dir
        self.made_dirs: set[str] = set()
        #: What handlers compute once per run and reuse for every step (a code folder's
        #: snapshot, ...), keyed as each handler likes.
        self.memo: dict[Any, Any] = {}
        #: The engine's in-memory view of step states (it commits transitions in batches, so the
        #: store may lag by a scheduling pass); None reads the store.
        self.step_state = step_state

    def _step(self, name: str) -> StepState:
        if self.step_state is not None:
            state = self.step_state(name)
            if state is None:
                raise NotFoundError(f"run {self.run_id} has no step {name!r}")
            return state
        return self.store.get_step(self.run_id, name)

    @property
    def run_id(self) -> str:
        return self.run.id

    def base_dir(self) -> str:
        return self.spec.source_dir or os.getcwd()

    def location(self, raw: str) -> str:
        """A user-written path or URL as an absolute path or URL (``obs://`` and ``/bucket/``
        aliased: :func:`obs_location`)."""
        return obs_location(raw, self.settings, self.base_dir())

    def field_location(self, raw: Any) -> Any:
        """A path field of the spec as a location: a literal string through :meth:`location`;
        a placeholder's string value likewise; other references resolved (a storage or data
        reference already gives a location)."""
        if isinstance(raw, str) and raw and not refs.is_ref(raw):
            return self.location(raw)
        value = self.resolve(raw)
        if (isinstance(raw, str) and isinstance(value, str) and value
                and isinstance(refs.parse_ref(raw), refs.ParameterRef)):
            return self.location(value)
        return value

    # -- references -------------------------------------------------------------------------
    def resolve(self, value: Any) -> Any:
        """Replace every reference inside ``value`` by its concrete value for this run."""
        if refs.is_ref(value):
            return self.resolve_ref(refs.parse_ref(value))
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def resolve_ref(self, ref: refs.Ref) -> Any:
        if isinstance(ref, refs.ParameterRef):
            return self.values.get(ref.name)
        if isinstance(ref, refs.DataRequirementRef):
            return self._data_value(self.values.get(ref.name))
        if isinstance(ref, refs.DataRef):
            data = self.spec.data_object(ref.name)
            if data is None:
                raise NotFoundError(f"data {ref.name!r} is not in the spec")
            return self._data_value(self.resolve(data.value))
        if isinstance(ref, refs.StorageRef):
            return self.storage_path(ref)
        if isinstance(ref, refs.SystemEnvRef):
            return self.system_env(ref.name)
        if isinstance(ref, refs.ConsumptionRef):
            return self.consume(ref.step, ref.output)
        if isinstance(ref, refs.SelectorRef):
            for item in ref.items:
                try:
                    return self.consume(item.step, item.output)
                except InputUnavailable:
                    continue
            names = ", ".join(f"{i.step}.{i.output}" for i in ref.items)
            raise InputUnavailable(f"all input data are None: none of {names} was produced (all skipped)")
        if isinstance(ref, refs.OutputVariableRef):
            out = self.consume(ref.step, ref.output)
            if not isinstance(out, dict) or ref.variable not in out.get("variables", {}):
                raise NotFoundError(f"step {ref.step!r} published no variable {ref.variable!r}")
            return out["variables"][ref.variable]
        if isinstance(ref, refs.MetricRef):
            return self.metric(ref.step, ref.key)
        raise NotFoundError(f"cannot resolve reference {ref!r}")

    def _data_value(self, value: Any) -> Any:
        # OBS data resolves to its location; other data kinds stay as their dicts.
        if isinstance(value, dict) and set(value) == {"obs_url"}:
            url = value["obs_url"]
            return self.location(url) if isinstance(url, str) and not refs.is_ref(url) else url
        return value

    def storage_path(self, ref: refs.StorageRef) -> str:
        root = self.roots.get(ref.name)
        if root is None:
            raise NotFoundError(f"storage {ref.name!r} has no root in this run")
        url = root
        if ref.with_execution_id:
            url = join_url(url, self.run_id)
        if ref.directory:
            url = join_url(url, ref.directory)
        if ref.create_dir:
            url = url.rstrip("/") + "/"
            if url not in self.made_dirs:
                self.artifacts.makedirs(url) if not is_local(url) else os.makedirs(local_path(url) or url,
                                                                                     exist_ok=True)
                self.made_dirs.add(url)
        return url

    def system_env(self, name: str) -> Any:
        table = {
            "execution_create_time": self.run.created_at.astimezone(timezone.utc).isoformat(),
            "execution_uuid": self.run_id,
            "workflow_uuid": self.run.release_id,
            "workflow_name": self.spec.name,
            "workflow_run_count": self.run.number,
            "workflow_gallery_content_id": "",
            "workflow_gallery_version_id": "",
        }
        return table.get(name, "")

    def consume(self, step: str, output: str) -> Any:
        """What ``step``'s ``output`` holds; raises InputUnavailable if it was skipped."""
        try:
            record = self._step(step)
        except NotFoundError:
            # Partial run: a producer outside the selected steps gives what it recorded in the
            # run named with --from-run (checked when the run was created); nothing is assumed
            # to be where it would have written it in this run.
            if self.spec.step(step) is None:
                raise
            outputs = self.from_run_steps().get(step)
            if outputs is None:
                raise InputUnavailable(f"step {step!r} is not part of this run, so its {output!r} output is "
                                       "unknown (take it from an earlier run with --from-run RUN)") from None
            produced = outputs.get(output)
            if produced is None:
                raise NotFoundError(f"step {step!r} recorded no output {output!r} in run "
                                    f"{self.from_run_id()}") from None
            return produced.get("url", produced) if isinstance(produced, dict) else produced
        if record.status == "skipped" or record.outputs_skipped:
            raise InputUnavailable(f"step {step!r} was skipped, so its output {output!r} was not produced")
        if record.status != "succeeded":
            raise InputUnavailable(f"step {step!r} has not succeeded (it is {record.status})")
        produced = record.outputs.get(output)
        if produced is None:
            raise NotFoundError(f"step {step!r} recorded no output {output!r}")
        return produced.get("url", produced) if isinstance(produced, dict) else produced

    def from_run_steps(self) -> dict[str, dict[str, Any]]:
        """A partial run's outputs of unselected upstream steps, taken from the run it named
        with ``--from-run`` (step -> recorded outputs); empty otherwise."""
        taken = (self.run.origin or {}).get("from_run") or {}
        steps = taken.get("steps") if isinstance(taken, dict) else None
        return steps if isinstance(steps, dict) else {}

    def from_run_id(self) -> str | None:
        taken = (self.run.origin or {}).get("from_run") or {}
        return taken.get("run_id") if isinstance(taken, dict) else None

    def metric(self, step: str, key: str) -> float:
        """A float metric written by ``step`` in this run."""
        run_id = self.run_id
        try:
            record = self._step(step)
        except NotFoundError:
            if step not in self.from_run_steps():
                raise InputUnavailable(f"step {step!r} is not part of this run, so metric {key!r} is unknown "
                                       "(take it from an earlier run with --from-run RUN)") from None
            run_id = self.from_run_id() or run_id  # a partial run: the metric of the run it named
        else:
            if record.status == "skipped":
                raise InputUnavailable(f"step {step!r} was skipped, so it wrote no metric {key!r}")
        floats = float_values(self.store.list_metrics(run_id, step))  # type: ignore[arg-type]
        if key not in floats:
            have = ", ".join(sorted(floats)) or "none"
            raise NotFoundError(f"step {step!r} wrote no float metric {key!r} (float metrics it wrote: {have})",
                                hint="only 'float' entries of a metrics file can be used in a condition")
        return float(floats[key])  # 0.0 is a value, not a missing one


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
