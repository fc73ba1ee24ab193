"""Rules a spec must follow, checked all at once: every problem is reported, not the first.

The same checks run on a spec the SDK just built and on one loaded from JSON (a stored
release, an API request), so the engine only ever sees specs that passed them.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from typing import Any

from mloop.errors import Problem, SpecValidationError
from mloop.spec import refs
from mloop.spec.models import ConditionSpec, ParameterSpec, StepSpec, WorkflowSpec

NAME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]*$")
VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")  # algorithm/gallery versions: 1.0.0
NAME_MAX = 64
DESC_MAX = 500
NAME_RULE = "use letters, digits, '_' or '-', start with a letter, at most 64 characters"

#: The only parameter names an MrsJobAlgorithm takes.
MRS_PARAMETERS = ("run_args", "app_args", "properties")
OPERATORS = {"==", ">", ">=", "in", "<", "<=", "!=", "or"}
ORDERING = {">", ">=", "<", "<="}
SYSTEM_ENV = {"execution_create_time", "execution_uuid", "workflow_uuid", "workflow_name",
              "workflow_run_count", "workflow_gallery_content_id", "workflow_gallery_version_id"}

#: What each step type accepts as input data (by data type), and how many inputs/outputs.
INPUT_TYPES: dict[str, set[str]] = {
    "job": {"obs", "dataset", "data_selector"},
    "mrs_job": {"obs", "data_selector"},
    "model": {"obs", "swr", "gallery_model"},
    "service": {"model_list", "service"},
    "create_dataset": {"obs"},
    "dataset_import": {"obs", "dataset", "label_task"},
    "release_dataset": {"dataset", "label_task"},
    "labeling": {"dataset", "label_task"},
}
INPUT_COUNT: dict[str, tuple[int, int]] = {
    "release_dataset": (1, 1), "labeling": (1, 1), "dataset_import": (2, 2), "service": (1, 2),
    "create_dataset": (1, 1_000), "model": (1, 2),
}
OUTPUT_COUNT: dict[str, tuple[int, int]] = {
    "release_dataset": (1, 1), "labeling": (1, 1), "service": (1, 1), "model": (1, 1),
    "dataset_import": (1, 1), "create_dataset": (1, 1),
}


def check_name(value: Any) -> str | None:
    """The problem with a name, or None if it follows the rule."""
    if not isinstance(value, str):
        return f"name must be a string, got {type(value).__name__}"
    if not value:
        return "name is empty"
    if len(value) > NAME_MAX:
        return f"name {value!r} is {len(value)} characters long; at most {NAME_MAX} are allowed"
    if not NAME_RE.fullmatch(value):
        return f"name {value!r} is not allowed: {NAME_RULE}"
    return None


def _py_type_ok(ptype: str, value: Any, fmt: str | None) -> bool:
    if ptype == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if ptype == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if ptype == "bool":
        return isinstance(value, bool)
    if ptype == "str":
        return isinstance(value, str)
    if ptype == "json":
        return isinstance(value, dict)
    if ptype == "list":
        return isinstance(value, list) and all(_py_type_ok(fmt or "str", v, None) for v in value)
    return True  # enum: checked against the list


def parameter_problems(p: ParameterSpec) -> list[Problem]:
    """Problems with one placeholder definition."""
    loc = f"parameters[{p.name}]"
    out: list[Problem] = []

    def add(msg: str, hint: str | None = None) -> None:
        out.append(Problem(loc, msg, hint, placeholder=p.name))

    if not isinstance(p.name, str) or not p.name:
        add("placeholder name is empty")
    if p.type == "enum":
        if not p.enum:
            add("an ENUM placeholder needs a non-empty enum_list")
        elif p.default is not None and p.default not in p.enum:
            add(f"default {p.default!r} is not in enum_list {p.enum!r}", "pick a default from enum_list")
    elif p.type == "list" and (p.format or "str") not in {"str", "int", "float", "bool"}:
        add(f"a LIST placeholder needs placeholder_format str, int, float or bool, not {p.format!r}")
    if p.default is not None and p.type != "enum" and not _py_type_ok(p.type, p.default, p.format):
        add(f"default {p.default!r} ({type(p.default).__name__}) is not of type {p.type.upper()}")
    if not p.required and p.delay:
        add("required=False together with delay=True is not allowed", "drop one of the two")
    return out


class _Checker:
    def __init__(self, spec: WorkflowSpec) -> None:
        self.spec = spec
        self.problems: list[Problem] = []
        self.steps = {s.name: s for s in spec.steps}

    def add(self, location: str, message: str, hint: str | None = None, **fields: Any) -> None:
        self.problems.append(Problem(location, message, hint, **fields))

    def run(self) -> list[Problem]:
        spec = self.spec
        if msg := check_name(spec.name):
            self.add("workflow.name", msg)
        if len(spec.description or "") > DESC_MAX:
            self.add("workflow.desc", f"description is {len(spec.description)} characters; at most {DESC_MAX}")
        if not spec.steps:
            self.add("workflow.steps", "a workflow needs at least one step")
        self._names()
        for p in spec.parameters:
            self.problems.extend(parameter_problems(p))
        self._unique([p.name for p in spec.parameters] + [d.name for d in spec.data_requirements],
                     "parameters", "placeholder name {!r} is defined more than once",
                     "placeholder names are global: rename one, or reuse the same object")
        for d in spec.data_requirements:
            for cond in d.conditions:
                if cond.get("attribute") == "object_type" and cond.get("value") not in ("file", "directory"):
                    self.add(f"data_requirements[{d.name}]",
                             f"object_type must be 'file' or 'directory', not {cond.get('value')!r}",
                             placeholder=d.name)
        for s in spec.storages:
            if msg := check_name(s.name):
                self.add(f"storages[{s.name}]", msg)
            if len(s.description) > DESC_MAX:
                self.add(f"storages[{s.name}]", f"description is longer than {DESC_MAX} characters")
        self._unique([s.name for s in spec.storages], "storages", "storage name {!r} is used twice",
                     "give each root storage its own name")
        for step in spec.steps:
            self._step(step)
        self._cycles()
        self._scenes_and_subgraphs()
        return self.problems

    def _unique(self, names: Iterable[str], loc: str, msg: str, hint: str | None = None) -> None:
        seen: set[str] = set()
        for name in names:
            if name in seen:
                self.add(f"{loc}[{name}]", msg.format(name), hint)
            seen.add(name)

    def _names(self) -> None:
        seen: set[str] = set()
        for step in self.spec.steps:
            loc = f"steps[{step.name}]"
            if msg := check_name(step.name):
                self.add(loc, f"step {msg}", step=step.name)
            if step.name in seen:
                self.add(loc, f"two steps are named {step.name!r}", "step names must be unique in a workflow",
                         step=step.name)
            seen.add(step.name)
            for kind, items in (("inputs", step.inputs), ("outputs", step.outputs)):
                names: set[str] = set()
                for item in items:
                    iloc = f"{loc}.{kind}[{item.name}]"
                    if msg := check_name(item.name):
                        self.add(iloc, f"{kind[:-1]} {msg}", step=step.name, input=str(item.name))
                    if item.name in names:
                        self.add(iloc, f"{kind[:-1]} name {item.name!r} is used twice in step {step.name!r}",
                                 f"{kind} of one step need distinct names", step=step.name, input=item.name)
                    names.add(item.name)

    # -- one step ---------------------------------------------------------------------------
    def _step(self, step: StepSpec) -> None:
        loc = f"steps[{step.name}]"
        deps: set[str] = set()
        for dep in step.depend_steps:
            if dep == step.name:
                self.add(loc, "a step cannot depend on itself", step=step.name)
            elif dep not in self.steps:
                self.add(f"{loc}.depend_steps", f"depends on {dep!r}, which is not a step of this workflow",
                         "add that step to Workflow(steps=...)", step=step.name)
            if dep in deps:
                self.add(f"{loc}.depend_steps", f"lists {dep!r} twice", step=step.name)
            deps.add(dep)
        for inp in step.inputs:
            iloc = f"{loc}.inputs[{inp.name}]"
            self._refs(inp.data, iloc, step, input_name=inp.name)
            accepted = INPUT_TYPES.get(step.type)
            if accepted is not None and inp.type not in accepted and inp.type != "unknown":
                self.add(iloc, f"a {step.type} step cannot take {inp.type!r} data",
                         f"accepted: {', '.join(sorted(accepted))}", step=step.name, input=inp.name)
        for out in step.outputs:
            oloc = f"{loc}.outputs[{out.name}]"
            if out.type == "unknown":
                self.add(oloc, "output has no configuration",
                         "give JobOutput one of obs_config, model_config, metrics_config, service_config",
                         step=step.name, input=out.name)
            mf = out.config.get("metric_file")
            if isinstance(mf, str) and not refs.is_ref(mf) and not mf.endswith(".json"):
                self.add(oloc, f"metric_file {mf!r} must end in .json", step=step.name, input=out.name)
            self._refs(out.config, oloc, step)
        for kind, table in (("inputs", INPUT_COUNT), ("outputs", OUTPUT_COUNT)):
            if step.type in table:
                low, high = table[step.type]
                n = len(step.inputs if kind == "inputs" else step.outputs)
                if not low <= n <= high:
                    want = str(low) if low == high else f"{low} to {high}" if high < 1000 else f"at least {low}"
                    self.add(f"{loc}.{kind}", f"a {step.type} step needs {want} {kind}, it has {n}", step=step.name)
        self._refs(step.properties, f"{loc}.properties", step)
        if step.type == "job":
            self._job(step, loc)
        if step.type == "mrs_job":
            self._mrs_job(step, loc)
        if step.policy:
            for i, cond in enumerate(step.policy.skip_conditions):
                self._condition(cond, f"{loc}.policy.skip_conditions[{i}]", step)
        if step.type == "condition":
            if not step.conditions:
                self.add(loc, "a condition step needs at least one condition", step=step.name)
            for i, cond in enumerate(step.conditions):
                self._condition(cond, f"{loc}.conditions[{i}]", step)
            for attr in ("if_then_steps", "else_then_steps"):
                for target in getattr(step, attr):
                    if target == step.name:
                        self.add(f"{loc}.{attr}", "a condition step cannot branch to itself", step=step.name)
                    elif target not in self.steps:
                        self.add(f"{loc}.{attr}", f"{target!r} is not a step of this workflow", step=step.name)

    def _job(self, step: StepSpec, loc: str) -> None:
        props = step.properties
        resource = (props.get("spec") or {}).get("resource") or {}
        has_flavor, has_id = resource.get("flavor") is not None, resource.get("flavor_id") is not None
        if has_flavor == has_id:
            self.add(f"{loc}.spec.resource",
                     "give exactly one of flavor and flavor_id" if has_flavor else "no resource flavor given",
                     "e.g. JobResource(flavor={'flavor_id': 'cpu.small'})", step=step.name)
        algo = props.get("algorithm") or {}
        forms = [bool(algo.get("id")), bool(algo.get("subscription_id") or algo.get("item_version_id")),
                 bool(algo.get("code_dir"))]
        if sum(forms) != 1:
            self.add(f"{loc}.algorithm",
                     "an algorithm needs exactly one of: id; subscription_id + item_version_id; code_dir "
                     "with boot_file or command", step=step.name)
        if algo.get("subscription_id") or algo.get("item_version_id"):
            if not (algo.get("subscription_id") and algo.get("item_version_id")):
                self.add(f"{loc}.algorithm", "AIGalleryAlgorithm needs both subscription_id and item_version_id",
                         step=step.name)
        if algo.get("code_dir"):
            if bool(algo.get("boot_file")) == bool(algo.get("command")):
                self.add(f"{loc}.algorithm", "with code_dir give exactly one of boot_file and command",
                         step=step.name)
            boot = algo.get("boot_file")
            if isinstance(boot, str) and not refs.is_ref(boot) and ".." in boot.replace("\\", "/").split("/"):
                self.add(f"{loc}.algorithm.boot_file", f"boot_file {boot!r} must lie inside code_dir",
                         step=step.name)
        self._unique([p.get("name") for p in algo.get("parameters") or []], f"{loc}.algorithm.parameters",
                     "algorithm parameter {!r} is given twice")

    def _mrs_job(self, step: StepSpec, loc: str) -> None:
        """MrsJobStep: a boot file, a cluster id, and only run_args / app_args / properties (the
        reference's rule), each once; a literal properties value must be a dict literal."""
        props = step.properties
        algo = props.get("algorithm") or {}
        if not algo.get("boot_file"):
            self.add(f"{loc}.algorithm.boot_file", "an MrsJobAlgorithm needs a boot_file",
                     "e.g. MrsJobAlgorithm(boot_file='wordcount.py') (relative to the workflow file)", step=step.name)
        if not props.get("cluster_id") or not isinstance(props.get("cluster_id"), str):
            self.add(f"{loc}.cluster_id", "an MrsJobStep needs a cluster_id (a string)",
                     "a cluster id from spark_clusters in mloop.toml; an id not listed runs in local[*]",
                     step=step.name)
        seen: set[Any] = set()
        for p in algo.get("parameters") or []:
            name, value = p.get("name"), p.get("value")
            ploc = f"{loc}.algorithm.parameters[{name}]"
            if name not in MRS_PARAMETERS:
                self.add(ploc, f"MrsJobAlgorithm parameter {name!r} is not allowed",
                         f"use only {', '.join(MRS_PARAMETERS)}", step=step.name)
            elif name in seen:
                self.add(ploc, f"MrsJobAlgorithm parameter {name!r} is given twice", "give it once", step=step.name)
            seen.add(name)
            if name == "properties" and isinstance(value, str) and value and not refs.is_ref(value):
                try:
                    parsed = ast.literal_eval(value)
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    parsed = None
                if not isinstance(parsed, dict):
                    self.add(ploc, f"properties {value!r} is not a dict literal",
                             "e.g. properties=\"{'spark.executor.memory': '2g'}\"", step=step.name)

    # -- references -------------------------------------------------------------------------
    def _refs(self, value: Any, loc: str, step: StepSpec, input_name: str | None = None) -> None:
        for text in refs.walk_refs(value):
            try:
                ref = refs.parse_ref(text)
            except ValueError as exc:
                self.add(loc, str(exc), step=step.name, input=input_name)
                continue
            self._ref(ref, loc, step, input_name)

    def _ref(self, ref: refs.Ref, loc: str, step: StepSpec, input_name: str | None) -> None:
        spec = self.spec
        fields = {"step": step.name, "input": input_name}
        if isinstance(ref, refs.ParameterRef) and spec.parameter(ref.name) is None:
            self.add(loc, f"refers to placeholder {ref.name!r}, which is not defined", **fields)
        elif isinstance(ref, refs.DataRef) and spec.data_object(ref.name) is None:
            self.add(loc, f"refers to data {ref.name!r}, which is not defined", **fields)
        elif isinstance(ref, refs.DataRequirementRef) and spec.data_requirement(ref.name) is None:
            self.add(loc, f"refers to data placeholder {ref.name!r}, which is not defined", **fields)
        elif isinstance(ref, refs.SystemEnvRef) and ref.name not in SYSTEM_ENV:
            self.add(loc, f"unknown system value {ref.name!r}", **fields)
        elif isinstance(ref, refs.StorageRef) and spec.storage(ref.name) is None:
            self.add(loc, f"uses storage {ref.name!r}, which is not in Workflow(storages=...)",
                     "pass the root storage to Workflow(storages=...)", **fields)
        elif isinstance(ref, refs.SelectorRef):
            if not ref.items:
                self.add(loc, "DataConsumptionSelector needs at least one output", **fields)
            for item in ref.items:
                self._consumption(item.step, item.output, loc, step, input_name)
        elif isinstance(ref, (refs.ConsumptionRef, refs.OutputVariableRef)):
            self._consumption(ref.step, ref.output, loc, step, input_name)
        elif isinstance(ref, refs.MetricRef):
            out = self._consumption(ref.step, ref.output, loc, step, input_name)
            if out is not None:
                if out.type not in ("metrics", "obs"):
                    self.add(loc, f"MetricInfo reads {ref.step}.{ref.output}, a {out.type!r} output",
                             "use a metrics output, or an obs output with metric_file", **fields)
                elif out.type == "obs" and not out.config.get("metric_file"):
                    self.add(loc, f"MetricInfo reads obs output {ref.step}.{ref.output}, which has no metric_file",
                             "set OBSOutputConfig(metric_file='metrics.json')", **fields)

    def _consumption(self, producer: str, output: str, loc: str, step: StepSpec, input_name: str | None) -> Any:
        fields = {"step": step.name, "input": input_name}
        target = self.steps.get(producer)
        if target is None:
            self.add(loc, f"uses an output of step {producer!r}, which is not in this workflow",
                     "add the producing step to Workflow(steps=...)", **fields)
            return None
        out = target.output(output)
        if out is None:
            names = ", ".join(o.name for o in target.outputs) or "none"
            self.add(loc, f"step {producer!r} has no output {output!r} (its outputs: {names})", **fields)
            return None
        if producer == step.name:
            self.add(loc, "a step cannot consume its own output", **fields)
        elif producer not in self._ancestors(step.name):
            self.add(loc, f"uses output {producer}.{output} but does not depend on step {producer!r}",
                     f"add depend_steps=[{producer}]", **fields)
        return out

    def _ancestors(self, name: str) -> set[str]:
        seen: set[str] = set()
        stack = list(self.steps[name].depend_steps) if name in self.steps else []
        while stack:
            dep = stack.pop()
            if dep in seen or dep not in self.steps:
                continue
            seen.add(dep)
            stack.extend(self.steps[dep].depend_steps)
        return seen

    def _condition(self, cond: ConditionSpec, loc: str, step: StepSpec) -> None:
        if cond.type not in OPERATORS:
            self.add(loc, f"unknown condition operator {cond.type!r}", step=step.name)
        for side in ("left", "right"):
            operand = getattr(cond, side)
            if isinstance(operand, ConditionSpec):
                self._condition(operand, f"{loc}.{side}", step)
            else:
                self._refs(operand, f"{loc}.{side}", step)
        left, right = cond.left, cond.right

        def literal_seq(v: Any) -> bool:
            return isinstance(v, (list, tuple))

        def literal_str(v: Any) -> bool:
            return isinstance(v, str) and not refs.is_ref(v)

        if cond.type in ORDERING:
            for side, v in (("left", left), ("right", right)):
                if literal_str(v) or literal_seq(v):
                    self.add(f"{loc}.{side}", f"operator {cond.type!r} compares numbers; got {v!r}", step=step.name)
        if cond.type == "in":
            if literal_seq(left):
                self.add(f"{loc}.left", "IN needs a single value on the left", step=step.name)
            if not (literal_seq(right) or refs.is_ref(right)):
                self.add(f"{loc}.right", "IN needs a list on the right", step=step.name)

    def _cycles(self) -> None:
        state: dict[str, int] = {}
        path: list[str] = []

        def visit(name: str) -> None:
            state[name] = 1
            path.append(name)
            for dep in self.steps[name].depend_steps:
                if dep not in self.steps:
                    continue
                if state.get(dep) == 1:
                    cycle = path[path.index(dep):] + [dep]
                    self.add(f"steps[{dep}]", "dependency cycle: " + " -> ".join(reversed(cycle)),
                             "remove one of these depend_steps", step=dep)
                elif dep not in state:
                    visit(dep)
            path.pop()
            state[name] = 2

        for name in self.steps:
            if name not in state:
                visit(name)

    def _scenes_and_subgraphs(self) -> None:
        spec = self.spec
        if spec.policy:
            self._unique([s.name for s in spec.policy.scenes], "policy.scenes", "scene name {!r} is used twice")
            for scene in spec.policy.scenes:
                loc = f"policy.scenes[{scene.name}]"
                if msg := check_name(scene.name):
                    self.add(loc, f"scene {msg}")
                if not scene.steps:
                    self.add(loc, "a scene needs at least one step")
                self._unique(scene.steps, loc, "step {!r} is listed twice in the scene")
                for name in scene.steps:
                    if name not in self.steps:
                        self.add(loc, f"{name!r} is not a step of this workflow")
        owner: dict[str, str] = {}
        self._unique([g.name for g in spec.sub_graphs], "sub_graphs", "subgraph name {!r} is used twice")
        for graph in spec.sub_graphs:
            loc = f"sub_graphs[{graph.name}]"
            if msg := check_name(graph.name):
                self.add(loc, f"subgraph {msg}")
            if graph.name in self.steps:
                self.add(loc, f"subgraph {graph.name!r} has the name of a step")
            for name in graph.steps:
                if name not in self.steps:
                    self.add(loc, f"{name!r} is not a step of this workflow")
                elif name in owner:
                    self.add(loc, f"step {name!r} is already in subgraph {owner[name]!r}")
                owner.setdefault(name, graph.name)
        if owner:
            self._collapsed_cycles(owner)

    def _collapsed_cycles(self, owner: dict[str, str]) -> None:
        """With each subgraph collapsed to one node, the graph must still be acyclic."""
        def node(step: str) -> str:
            return owner.get(step, step)

        edges: dict[str, set[str]] = {}
        for step in self.spec.steps:
            for dep in step.depend_steps:
                if dep in self.steps and node(dep) != node(step.name):
                    edges.setdefault(node(step.name), set()).add(node(dep))
        state: dict[str, int] = {}

        def visit(n: str) -> bool:
            state[n] = 1
            for m in edges.get(n, ()):
                if state.get(m) == 1 or (m not in state and visit(m)):
                    return True
            state[n] = 2
            return False

        for n in list(edges):
            if n not in state and visit(n):
                self.add("sub_graphs", "with its subgraphs collapsed the workflow has a dependency cycle",
                         "a subgraph must not contain steps both before and after a step outside it")
                return


def spec_problems(spec: WorkflowSpec) -> list[Problem]:
    """Every problem found in ``spec`` (empty when it is valid)."""
    return _Checker(spec).run()


def validate_spec(spec: WorkflowSpec, extra: Iterable[Problem] = ()) -> WorkflowSpec:
    """Raise :class:`SpecValidationError` listing every problem, or return ``spec``."""
    problems = list(extra) + spec_problems(spec)
    if problems:
        raise SpecValidationError(problems, headline=f"workflow {spec.name!r} is invalid "
                                  f"({len(problems)} problem{'s' if len(problems) != 1 else ''}):")
    return spec
