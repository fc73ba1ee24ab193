"""Partial runs (``--steps``, a scene): where the selected steps' inputs from unselected
upstream steps come from.

Layer: run service. A selected step that consumes an output (or a metric) of a step outside
the run gets it from a named earlier run (``--from-run RUN``: that run's step rows'
recorded ``outputs`` and its metrics), or the run is refused before it is created, naming
each missing upstream output. Nothing is assumed to exist where an unselected step *would*
have written it. What was taken is kept on the run (``origin["from_run"]``), so a retry of
the partial run uses the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mloop.errors import Problem, SpecValidationError
from mloop.spec import refs

if TYPE_CHECKING:
    from mloop.spec.models import WorkflowSpec
    from mloop.store.base import Store

__all__ = ["Need", "upstream_needs", "take_from_run"]


@dataclass(frozen=True)
class Need:
    """What selected step ``consumer`` takes from unselected step ``step``: an output
    (``kind="output"``) or a float metric (``kind="metric"``); ``alternatives`` are the other
    producers of a selector (any one of them will do)."""

    consumer: str
    step: str
    name: str
    kind: str = "output"
    alternatives: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        return f"{self.step}.{self.name}" if self.kind == "output" else f"{self.step} metric {self.name!r}"


def _refs_in(spec: WorkflowSpec, value: Any, seen: set[str]) -> list[refs.Ref]:
    found: list[refs.Ref] = []
    for text in refs.walk_refs(value):
        try:
            ref = refs.parse_ref(text)
        except Exception:  # noqa: BLE001 - malformed references are validation's business
            continue
        found.append(ref)
        if isinstance(ref, refs.DataRef) and ref.name not in seen:
            seen.add(ref.name)
            data = spec.data_object(ref.name)
            if data is not None:
                found.extend(_refs_in(spec, data.value, seen))
    return found


def upstream_needs(spec: WorkflowSpec, selected: set[str]) -> list[Need]:
    """Every output or metric the ``selected`` steps take from steps outside the selection."""
    needs: list[Need] = []
    for step in spec.steps:
        if step.name not in selected:
            continue
        used = [[i.model_dump() if hasattr(i, "model_dump") else i for i in step.inputs or []],
                step.properties, [c.model_dump() if hasattr(c, "model_dump") else c for c in step.conditions or []]]
        for ref in _refs_in(spec, used, set()):
            if isinstance(ref, (refs.ConsumptionRef, refs.OutputVariableRef)) and ref.step not in selected:
                needs.append(Need(step.name, ref.step, ref.output))
            elif isinstance(ref, refs.MetricRef) and ref.step not in selected:
                needs.append(Need(step.name, ref.step, ref.key, kind="metric"))
            elif isinstance(ref, refs.SelectorRef):
                items = [(i.step, i.output) for i in ref.items]
                if any(s in selected for s, _ in items) or not items:
                    continue  # a producer inside the run may provide it
                first, *rest = items
                needs.append(Need(step.name, first[0], first[1], alternatives=tuple(rest)))
    unique: dict[tuple[str, str, str, str], Need] = {}
    for need in needs:
        unique.setdefault((need.consumer, need.step, need.name, need.kind), need)
    return list(unique.values())


def take_from_run(store: Store, spec: WorkflowSpec, selected: set[str] | None,
                  from_run: str | None) -> dict[str, Any] | None:
    """What a partial run takes from ``from_run`` (``{"run_id", "steps": {step: outputs}}``),
    to keep on the new run as ``origin["from_run"]``; None when nothing is needed.

    Raises:
        SpecValidationError: (exit 2) an input of a selected step has no producer: each missing
            upstream step/output is named, and ``--from-run`` suggested.
        NotFoundError: no run ``from_run``.
    """
    if selected is None:
        if from_run:
            source = store.get_run(from_run)  # still checked: a typo is refused, not ignored
            return {"run_id": source.id, "steps": {}}
        return None
    needs = upstream_needs(spec, selected)
    if not needs:
        if from_run:
            source = store.get_run(from_run)
            return {"run_id": source.id, "steps": {}}
        return None
    if not from_run:
        problems = [Problem(f"steps[{n.consumer}]", f"needs {n.label}, but step {n.step!r} is not in this run",
                            "run it too (add it to --steps), or take its outputs from an earlier run with "
                            "--from-run RUN", step=n.consumer, input=n.name) for n in needs]
        raise SpecValidationError(problems, headline="cannot run only those steps: their inputs from "
                                                     "upstream steps would be missing (give --from-run RUN):")
    source = store.get_run(from_run)
    if source.workflow_name != spec.name:
        raise SpecValidationError([Problem("--from-run", f"run {source.id} is a run of workflow "
                                           f"{source.workflow_name!r}, not {spec.name!r}",
                                           f"name a run of {spec.name!r} (`mloop runs -w {spec.name}`)")],
                                  headline="cannot take inputs from that run:")
    records = {s.name: s for s in store.list_steps(source.id)}
    metrics: dict[str, set[str]] = {}
    taken: dict[str, dict[str, Any]] = {}
    problems = []

    def produced(step: str, name: str, kind: str) -> str | None:
        """Why ``source`` can't provide it, or None when it can."""
        record = records.get(step)
        if record is None:
            return f"step {step!r} is not part of run {source.id}"
        if record.status != "succeeded" or record.outputs_skipped:
            return f"step {step!r} {record.status} in run {source.id}"
        if kind == "metric":
            if step not in metrics:
                metrics[step] = {m.key for m in store.list_metrics(source.id, step)}
            return None if name in metrics[step] else f"step {step!r} wrote no metric {name!r} in run {source.id}"
        if record.outputs.get(name) is None:
            return f"step {step!r} recorded no output {name!r} in run {source.id}"
        return None

    for need in needs:
        candidates = [(need.step, need.name), *need.alternatives]
        reasons = []
        for step, name in candidates:
            why = produced(step, name, need.kind)
            if why is None:
                taken.setdefault(step, dict(records[step].outputs))
                break
            reasons.append(why)
        else:
            problems.append(Problem(f"steps[{need.consumer}]", f"needs {need.label}: " + "; ".join(reasons),
                                    "name a run in which that step succeeded", step=need.consumer, input=need.name))
    if problems:
        raise SpecValidationError(problems, headline=f"run {source.id} does not have what those steps need:")
    return {"run_id": source.id, "workflow": source.workflow_name, "steps": taken}
