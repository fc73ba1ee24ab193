"""Released workflows as objects: list, show, versions, spec diffs, saved run configurations, and
deleting ended runs and whole workflows.

Layer: domain operations. Starting, copying and stopping runs belong to the run service
(:mod:`mloop.runs`); the doors call it with what :func:`config_values` gives them.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from mloop.errors import BadArgumentError, NotFoundError, Problem, SpecValidationError
from mloop.spec.io import load_spec
from mloop.spec.values import coerce_given

if TYPE_CHECKING:
    from mloop.context import Context
    from mloop.spec.models import WorkflowSpec
    from mloop.store.base import ReleaseRecord, RunRecord
    from mloop.store.workflows import DeletedWorkflow, RunConfigRecord

__all__ = [
    "SpecDiff", "WorkflowSummary", "WorkflowView", "check_config_name", "config_values", "delete_config",
    "delete_run", "delete_workflow", "diff_workflow", "get_config", "get_release", "list_configs", "list_versions",
    "list_workflows", "save_config", "show_workflow", "spec_text",
]

_CONFIG_RE = re.compile(r"^[\w\-.]{1,64}$")


@dataclass
class WorkflowSummary:
    name: str
    latest_version: int
    versions: int
    runs: int = 0
    last_run_status: str | None = None
    last_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class WorkflowView:
    """One release of a workflow, as a person reads it."""

    name: str
    version: int
    versions: list[int]
    release_id: str
    spec_hash: str
    created_at: str
    description: str
    steps: list[dict[str, Any]]
    placeholders: list[dict[str, Any]]
    extend: dict[str, Any]
    configs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SpecDiff:
    """Two releases' specs compared: a unified diff of their canonical JSON and what changed."""

    name: str
    a: int
    b: int
    diff: list[str]
    steps_added: list[str] = field(default_factory=list)
    steps_removed: list[str] = field(default_factory=list)
    steps_changed: list[str] = field(default_factory=list)
    placeholders_added: list[str] = field(default_factory=list)
    placeholders_removed: list[str] = field(default_factory=list)
    defaults_changed: list[str] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return not self.diff

    def summary(self) -> list[str]:
        """One line per kind of change, e.g. ``steps changed: train``."""
        parts = [("steps added", self.steps_added), ("steps removed", self.steps_removed),
                 ("steps changed", self.steps_changed), ("placeholders added", self.placeholders_added),
                 ("placeholders removed", self.placeholders_removed), ("defaults changed", self.defaults_changed)]
        return [f"{label}: {', '.join(names)}" for label, names in parts if names]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary()}


# -- releases ------------------------------------------------------------------------------------
def _releases(ctx: Context, name: str) -> list[ReleaseRecord]:
    releases = ctx.store.list_releases(name)
    if not releases:
        known = sorted({r.workflow_name for r in ctx.store.list_releases()})[:10]
        raise NotFoundError(f"no workflow named {name!r} was released here", workflow=name,
                            hint=f"released workflows: {', '.join(known) or 'none'} (`mloop release FILE` adds one)")
    return releases


def get_release(ctx: Context, name: str, version: int | None = None) -> ReleaseRecord:
    """A workflow's release: ``version``, or the latest.

    Raises:
        NotFoundError: never released, or no such version (the hint lists them).
    """
    releases = _releases(ctx, name)
    if version is None:
        return releases[-1]
    for rel in releases:
        if rel.version == version:
            return rel
    raise NotFoundError(f"workflow {name!r} has no version {version}", workflow=name, version=version,
                        hint=f"its versions: {', '.join(str(r.version) for r in releases)}")


def list_workflows(ctx: Context) -> list[WorkflowSummary]:
    """Every released workflow, by name, with its run count and newest run's status."""
    out: dict[str, WorkflowSummary] = {}
    for rel in ctx.store.list_releases():  # by name, then version
        seen = out.get(rel.workflow_name)
        if seen is None:
            out[rel.workflow_name] = WorkflowSummary(rel.workflow_name, rel.version, 1)
        else:
            seen.latest_version, seen.versions = rel.version, seen.versions + 1
    for name, stats in ctx.store.workflows.run_stats().items():
        if name in out:
            out[name].runs, out[name].last_run_status, out[name].last_run_id = \
                stats.runs, stats.last_status, stats.last_run_id
    return sorted(out.values(), key=lambda w: w.name)


def list_versions(ctx: Context, name: str) -> list[ReleaseRecord]:
    """A workflow's releases, oldest first. Raises NotFoundError."""
    return _releases(ctx, name)


def _ref(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def show_workflow(ctx: Context, name: str, version: int | None = None) -> WorkflowView:
    """One release (default: the latest): its steps, placeholders, git facts and the saved configs."""
    releases = _releases(ctx, name)
    rel = get_release(ctx, name, version)
    spec = load_spec(rel.spec, validate=False)
    steps = [{"name": s.name, "type": str(getattr(s.type, "value", s.type)), "title": s.title,
              "depends": list(s.depend_steps),
              "inputs": [{"name": i.name, "type": i.type, "data": _ref(i.data)} for i in s.inputs],
              "outputs": [{"name": o.name, "type": o.type} for o in s.outputs]} for s in spec.steps]
    placeholders = [{"name": p.name, "kind": "parameter", "type": str(getattr(p.type, "value", p.type)),
                     "default": p.default, "required": p.required, "delay": p.delay,
                     "description": p.description or ""} for p in spec.parameters]
    placeholders += [{"name": d.name, "kind": "data", "type": d.type, "default": d.default,
                      "required": d.default is None, "delay": d.delay, "description": ""}
                     for d in spec.data_requirements]
    return WorkflowView(name=rel.workflow_name, version=rel.version, versions=[r.version for r in releases],
                        release_id=rel.id, spec_hash=rel.spec_hash, created_at=rel.created_at.isoformat(),
                        description=spec.description, steps=steps, placeholders=placeholders, extend=rel.extend,
                        configs=[c.name for c in ctx.store.workflows.list_configs(rel.workflow_name)])


# -- diff ----------------------------------------------------------------------------------------
def spec_text(spec: dict[str, Any]) -> list[str]:
    """A spec's canonical JSON (sorted keys, indent 2), line by line: what diffs compare."""
    return json.dumps(spec, sort_keys=True, indent=2, ensure_ascii=False).splitlines()


def _by_name(items: Any) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items or [] if isinstance(item, dict) and "name" in item}


def diff_workflow(ctx: Context, name: str, a: int, b: int) -> SpecDiff:
    """Compare versions ``a`` and ``b`` of a workflow.

    Raises:
        NotFoundError: the workflow or either version does not exist.
    """
    old, new = get_release(ctx, name, a), get_release(ctx, name, b)
    lines = list(difflib.unified_diff(spec_text(old.spec), spec_text(new.spec), fromfile=f"{name} v{a}",
                                      tofile=f"{name} v{b}", lineterm="", n=3))
    result = SpecDiff(name=name, a=a, b=b, diff=lines)
    old_steps, new_steps = _by_name(old.spec.get("steps")), _by_name(new.spec.get("steps"))
    result.steps_added = [s for s in new_steps if s not in old_steps]
    result.steps_removed = [s for s in old_steps if s not in new_steps]
    result.steps_changed = [s for s in new_steps if s in old_steps and new_steps[s] != old_steps[s]]
    old_ph = {**_by_name(old.spec.get("parameters")), **_by_name(old.spec.get("data_requirements"))}
    new_ph = {**_by_name(new.spec.get("parameters")), **_by_name(new.spec.get("data_requirements"))}
    result.placeholders_added = [p for p in new_ph if p not in old_ph]
    result.placeholders_removed = [p for p in old_ph if p not in new_ph]
    result.defaults_changed = [f"{p} ({old_ph[p].get('default')!r} -> {new_ph[p].get('default')!r})"
                               for p in new_ph if p in old_ph and old_ph[p].get("default") != new_ph[p].get("default")]
    return result


# -- run configurations --------------------------------------------------------------------------
def check_config_name(name: str) -> str:
    """Raises BadArgumentError unless ``name`` is 1-64 letters, digits, ``-``, ``_`` or ``.``."""
    if not isinstance(name, str) or not _CONFIG_RE.fullmatch(name):
        raise BadArgumentError(f"invalid run configuration name {name!r}", config=str(name),
                               hint="1-64 letters, digits, '-', '_' or '.', e.g. nightly or lr-0.1")
    return name


def _check_steps(spec: WorkflowSpec, steps: list[str] | None) -> list[str] | None:
    if not steps:
        return None
    known = [s.name for s in spec.steps]
    problems = [Problem("steps", f"no step named {s!r}", f"steps: {', '.join(known)}", step=s)
                for s in steps if s not in known]
    if problems:
        raise SpecValidationError(problems, headline="cannot select those steps:")
    return [s for s in known if s in set(steps)]


def save_config(ctx: Context, workflow: str, name: str, values: dict[str, Any], *, steps: list[str] | None = None,
                description: str = "") -> RunConfigRecord:
    """Save (or replace) a run configuration, its values checked against the latest release.

    Raises:
        NotFoundError: the workflow was never released.
        BadArgumentError: an invalid configuration name.
        PlaceholderValueError: unknown placeholders or bad values, named (nothing is saved).
        SpecValidationError: unknown step names.
    """
    check_config_name(name)
    spec = load_spec(get_release(ctx, workflow).spec, validate=False)
    coerced = coerce_given(spec, dict(values))
    return ctx.store.workflows.save_config(workflow, name, coerced, steps=_check_steps(spec, steps),
                                           description=description)


def list_configs(ctx: Context, workflow: str) -> list[RunConfigRecord]:
    return ctx.store.workflows.list_configs(workflow)


def get_config(ctx: Context, workflow: str, name: str) -> RunConfigRecord:
    """Raises NotFoundError."""
    return ctx.store.workflows.get_config(workflow, name)


def delete_config(ctx: Context, workflow: str, name: str) -> RunConfigRecord:
    """Raises NotFoundError."""
    return ctx.store.workflows.delete_config(workflow, name)


def config_values(ctx: Context, workflow: str, config: str | None,
                  parameters: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str] | None]:
    """The values (and steps) to start a run with: the saved ``config``'s, overridden by
    ``parameters``. The run service checks them when it creates the run.

    Raises:
        NotFoundError: no such configuration.
    """
    if config is None:
        return dict(parameters or {}), None
    saved = get_config(ctx, workflow, config)
    return {**saved.params, **(parameters or {})}, saved.steps


# -- deleting ------------------------------------------------------------------------------------
def _remove_run_folder(ctx: Context, run_id: str) -> None:
    folder = os.path.join(ctx.settings.home_path, "runs", run_id)
    shutil.rmtree(folder, ignore_errors=True)


def delete_run(ctx: Context, run_id: str) -> RunRecord:
    """Remove an ended run: its rows (steps, events, metrics, artifacts) and ``<home>/runs/<id>``.
    What its steps wrote to storages and the artifact store stays.

    Raises:
        NotFoundError: no such run.
        RunStateError: the run has not ended (stop it first).
    """
    run = ctx.store.get_run(run_id)
    ctx.store.workflows.delete_run(run.id)
    _remove_run_folder(ctx, run.id)
    return run


def delete_workflow(ctx: Context, name: str) -> DeletedWorkflow:
    """Remove a workflow: its releases, its runs (each must have ended) with their folders, and
    its saved run configurations, in one transaction.

    Raises:
        NotFoundError: no such workflow.
        RunStateError: one of its runs has not ended (nothing is removed).
    """
    deleted = ctx.store.workflows.delete_workflow(name)
    for run_id in deleted.run_ids:
        _remove_run_folder(ctx, run_id)
    return deleted
