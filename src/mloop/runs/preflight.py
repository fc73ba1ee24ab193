"""Pre-flight checks of a workflow without a run: what ``mloop validate`` asks.

Layer: run service. Every step's handler is asked its :meth:`~mloop.engine.handlers.StepHandler.preflight`
(the checks the engine makes before a run starts anything: a job's ``code_dir``, boot file,
registered algorithm, flavor; a Spark job's spark-submit and Java) on a context that creates
nothing: no run is recorded, no folder is made, and the metadata store is opened only if a
check needs it (a registered algorithm). Steps whose checked values come from placeholders
with no default are left to the run. Resource requests the machine can't meet (a GPU flavor
with no GPU) are warnings.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from mloop.artifacts import join_url
from mloop.engine.context import InputUnavailable, RunContext, storage_roots
from mloop.errors import MloopError, PlaceholderValueError, Problem, SpecValidationError

if TYPE_CHECKING:
    from mloop.config import Settings
    from mloop.spec.models import WorkflowSpec
    from mloop.store.base import Store

__all__ = ["PreflightReport", "check_spec", "gpu_count", "resource_warnings"]


@dataclass
class PreflightReport:
    """What the pre-flight checks found: problems refuse a run, warnings don't."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # steps whose checks need run-time values

    def raise_for_problems(self) -> None:
        if self.problems:
            n = len(self.problems)
            raise SpecValidationError(self.problems, headline=f"a run would be refused ({n} problem"
                                                              f"{'s' if n != 1 else ''}):")


def gpu_count() -> int:
    """How many GPUs this machine offers jobs (NVIDIA devices, narrowed by CUDA_VISIBLE_DEVICES).

    ``MLOOP_GPUS`` overrides the detection (an installation that knows better, tests)."""
    forced = os.environ.get("MLOOP_GPUS")
    if forced is not None and forced.strip().isdigit():
        return int(forced)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return 0
    devices = 0
    try:
        devices = sum(1 for n in os.listdir("/dev") if n.startswith("nvidia") and n[6:].isdigit())
    except OSError:
        pass
    if not devices and shutil.which("nvidia-smi"):
        devices = 1  # a driver without device nodes visible here: assume at least one
    if visible is not None and devices:
        return min(devices, len([v for v in visible.split(",") if v.strip()]))
    return devices


def resource_warnings(spec: WorkflowSpec, settings: Settings) -> list[str]:
    """A warning per job step whose flavor asks for more GPUs than this machine has (the
    local executor runs it anyway, on the CPU; a cluster executor decides for itself)."""
    if settings.executor != "local":
        return []
    have = None
    warnings = []
    for step in spec.steps:
        props = step.properties if isinstance(step.properties, dict) else {}
        resource = (props.get("spec") or {}).get("resource") or {}
        flavor = resource.get("flavor")
        flavor_id = flavor.get("flavor_id") if isinstance(flavor, dict) else flavor or resource.get("flavor_id")
        if not isinstance(flavor_id, str) or flavor_id not in settings.flavors:
            continue
        wanted = settings.flavors[flavor_id].gpu
        if wanted <= 0:
            continue
        have = gpu_count() if have is None else have
        if wanted > have:
            warnings.append(f"step {step.name!r}: flavor {flavor_id!r} asks for {wanted} GPU"
                            f"{'s' if wanted != 1 else ''} but this machine has {have or 'none'}; "
                            "the local executor runs the job without one")
    return warnings


class _LazyStore:
    """The metadata store, opened on first use (a check that needs the algorithm registry)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._ctx: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._ctx is None:
            from mloop.runs.open import open_backend

            self._ctx = open_backend(self._settings, reconcile=False)
        return getattr(self._ctx.store, name)

    def close(self) -> None:
        if self._ctx is not None:
            self._ctx.close()


def _default_values(spec: WorkflowSpec) -> dict[str, Any]:
    from mloop.spec.values import resolve_values

    try:
        return resolve_values(spec, {})
    except PlaceholderValueError:
        out = {p.name: p.default for p in spec.parameters if p.default is not None}
        out.update({d.name: d.default for d in spec.data_requirements if d.default is not None})
        return out


def _unset_placeholders(spec: WorkflowSpec, value: Any, values: dict[str, Any], seen: set[str]) -> bool:
    """Whether ``value`` (a step's properties) uses a placeholder with no value, directly or
    through a data object."""
    from mloop.spec import refs

    for text in refs.walk_refs(value):
        try:
            ref = refs.parse_ref(text)
        except Exception:  # noqa: BLE001 - a malformed ref is validation's business
            continue
        if isinstance(ref, (refs.ParameterRef, refs.DataRequirementRef)) and values.get(ref.name) is None:
            return True
        if isinstance(ref, refs.DataRef) and ref.name not in seen:
            seen.add(ref.name)
            data = spec.data_object(ref.name)
            if data is not None and _unset_placeholders(spec, data.value, values, seen):
                return True
    return False


def check_spec(spec: WorkflowSpec, settings: Settings, *, store: Store | None = None) -> PreflightReport:
    """Ask every step's handler the pre-flight questions a run asks, without a run.

    ``store`` is used for registered algorithms; None opens the settings' store only if a
    check needs it."""
    import mloop.steps  # noqa: F401 - registers the built-in step kinds
    from mloop.engine.handlers import registry
    from mloop.store.base import RunRecord

    report = PreflightReport(warnings=resource_warnings(spec, settings))
    values = _default_values(spec)
    lazy = _LazyStore(settings) if store is None else None
    run = RunRecord(id="validate", release_id="validate", workflow_name=spec.name, number=0, status="pending",
                    params=values, created_at=datetime.now(timezone.utc))
    try:
        roots = storage_roots(spec, {}, settings)
        ctx = _DryContext(run, spec, settings, store or lazy, None, dict(values), roots,  # type: ignore[arg-type]
                          os.path.join(str(settings.home_path), "runs", "validate"), step_state=lambda name: None)
        for step in spec.steps:
            if _unset_placeholders(spec, step.properties, values, set()):
                report.skipped.append(step.name)
                continue
            handler = registry.handler_for(step.type, None)  # type: ignore[arg-type]  # preflight runs nothing
            try:
                handler.preflight(step, ctx)
            except InputUnavailable:
                report.skipped.append(step.name)
            except MloopError as exc:
                report.problems.append(Problem(f"steps[{step.name}]", str(exc), exc.hint, step=step.name))
    finally:
        if lazy is not None:
            lazy.close()
    return report


class _DryContext(RunContext):
    """A run context that makes no folders (storage paths are computed, not created)."""

    def storage_path(self, ref: Any) -> str:
        url = self.roots.get(ref.name) or ""
        if ref.with_execution_id:
            url = join_url(url, self.run_id)
        if ref.directory:
            url = join_url(url, ref.directory)
        return url
