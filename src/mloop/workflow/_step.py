"""The step base class, inputs/outputs and consumptions, policies and conditions."""

from __future__ import annotations

import enum
from typing import Any

from mloop.durations import duration_seconds
from mloop.errors import NotFoundError, UnknownOutputError
from mloop.spec import models as m
from mloop.spec import refs
from mloop.workflow._base import DataObject, SpecContext, SpecObject, as_list, name_of


class Consumption(DataObject):
    """``step.outputs["x"].as_input()``: what that output will hold once its step has run."""

    def __init__(self, step: Step, output: StepOutput) -> None:
        self.step, self.output = step, output

    @property
    def data_type(self) -> str:  # type: ignore[override]
        return self.output.data_type

    def _data_ref(self, ctx: SpecContext, loc: str) -> str:
        ctx.imply_dependency(self.step)
        return refs.format_ref(refs.ConsumptionRef(self.step.name, self.output.name))

    def __repr__(self) -> str:
        return f"<{self.step.name}.outputs[{self.output.name!r}].as_input()>"


class OutputVariable:
    """A value a step publishes when it completes (e.g. a service's ``access_address``)."""

    def __init__(self, step: Step, output: StepOutput, variable: str) -> None:
        self.step, self.output, self.variable = step, output, variable

    def _ref(self) -> str:
        return refs.format_ref(refs.OutputVariableRef(self.step.name, self.output.name, self.variable))


class StepInput:
    """Base of every ``*Input(name, data)``."""

    def __init__(self, name: str, data: Any) -> None:
        self.name, self.data = name, data

    def _to_spec(self, ctx: SpecContext, loc: str) -> m.InputSpec:
        ctx.input = name_of(self.name)
        try:
            if isinstance(self.data, DataObject):
                return m.InputSpec(name=ctx.input, type=self.data.data_type, data=self.data._data_ref(ctx, loc))
            ctx.problem(loc, f"input data must be a wf.data object or an output's as_input(), got {self.data!r}")
            return m.InputSpec(name=ctx.input, type="unknown", data=None)
        finally:
            ctx.input = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, data={self.data!r})"


class StepOutput:
    """Base of every ``*Output``; ``as_input()`` hands it to a later step."""

    data_type = "unknown"

    def __init__(self, name: str | None) -> None:
        self.name = name
        self.step: Step | None = None

    def as_input(self) -> Consumption:
        if self.step is None:
            raise NotFoundError(f"output {self.name!r} does not belong to a step yet",
                                hint="pass it to a step's outputs= first")
        return Consumption(self.step, self)

    def get_output_variable(self, variable: str) -> OutputVariable:
        if self.step is None:
            raise NotFoundError(f"output {self.name!r} does not belong to a step yet")
        return OutputVariable(self.step, self, variable)

    def _config(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        return {}

    def _to_spec(self, ctx: SpecContext, loc: str) -> m.OutputSpec:
        ctx.input = name_of(self.name)
        try:
            return m.OutputSpec(name=ctx.input, type=self.data_type, config=self._config(ctx, loc))
        finally:
            ctx.input = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class Outputs(dict):  # type: ignore[type-arg]
    """``step.outputs``: outputs by name; a missing name says which ones exist."""

    def __init__(self, step: Step, items: list[StepOutput]) -> None:
        super().__init__()
        self.step, self.ordered = step, items  # declaration order, duplicates kept for validation
        for item in items:
            if isinstance(item, StepOutput):
                item.step = step
                self.setdefault(item.name, item)

    def __missing__(self, key: str) -> StepOutput:
        names = ", ".join(repr(k) for k in self) or "none"
        raise UnknownOutputError(f"step {self.step.name!r} has no output {key!r} (its outputs: {names})",
                            step=self.step.name)


class StepPolicy(SpecObject):
    """How a step is run: poll interval, timeout, and conditions under which it is skipped
    (skipped when *all* skip conditions are true).

    mloop extensions, keyword-only after the ModelArts parameters (step caching, jobs only):
    ``cache=False`` makes the step always run instead of reusing an earlier identical
    result; ``cache_expiry`` ("12h", "7d", "never") is how long its result may be reused
    (default: the ``cache_expiry`` setting).
    """

    def __init__(self, poll_interval_seconds: float = 1, max_execution_minutes: float = 10080,
                 skip_conditions: Any = None, *, cache: bool | None = None,
                 cache_expiry: str | int | None = None) -> None:
        self.poll_interval_seconds = poll_interval_seconds if poll_interval_seconds and poll_interval_seconds > 0 else 1
        self.max_execution_minutes = (max_execution_minutes if max_execution_minutes and max_execution_minutes > 0
                                      else 10080)
        self.skip_conditions = skip_conditions
        self.cache, self.cache_expiry = cache, cache_expiry

    def _to_spec(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        conds = []
        for i, cond in enumerate(as_list(self.skip_conditions)):
            if isinstance(cond, Condition):
                conds.append(cond._to_spec(ctx, f"{loc}.skip_conditions[{i}]"))
            else:
                ctx.problem(f"{loc}.skip_conditions[{i}]", f"expected a wf.steps.Condition, got {cond!r}")
        out = {"poll_interval_seconds": self.poll_interval_seconds,
               "max_execution_minutes": self.max_execution_minutes, "skip_conditions": conds}
        if self.cache is not None:
            if isinstance(self.cache, bool):
                out["cache"] = self.cache
            else:
                ctx.problem(f"{loc}.cache", f"expected True or False, got {self.cache!r}")
        if self.cache_expiry is not None:
            try:
                duration_seconds(self.cache_expiry)
                out["cache_expiry"] = str(self.cache_expiry)
            except ValueError as exc:
                ctx.problem(f"{loc}.cache_expiry", str(exc))
        return out


class ConditionTypeEnum(str, enum.Enum):
    EQ = "Equals"
    GT = "GreaterThan"
    GTE = "GreaterThanOrEqualTo"
    IN = "In"
    LT = "LessThan"
    LTE = "LessThanOrEqualTo"
    NOT = "Not"  # "not equal", not logical negation
    OR = "Or"


OPERATOR = {ConditionTypeEnum.EQ: "==", ConditionTypeEnum.GT: ">", ConditionTypeEnum.GTE: ">=",
            ConditionTypeEnum.IN: "in", ConditionTypeEnum.LT: "<", ConditionTypeEnum.LTE: "<=",
            ConditionTypeEnum.NOT: "!=", ConditionTypeEnum.OR: "or"}


class MetricInfo:
    """A float metric a job wrote: ``MetricInfo(job.outputs["metrics"].as_input(), "accuracy")``."""

    def __init__(self, input_data: Consumption, json_key: str) -> None:
        self.input_data, self.json_key = input_data, json_key

    def _ref(self, ctx: SpecContext, loc: str) -> str | None:
        if not isinstance(self.input_data, Consumption):
            ctx.problem(loc, "MetricInfo needs a job output's as_input() (a metrics or obs output), "
                             f"got {self.input_data!r}")
            return None
        if not isinstance(self.json_key, str) or not self.json_key:
            ctx.problem(loc, f"MetricInfo json_key must be a metric name, got {self.json_key!r}")
        ctx.imply_dependency(self.input_data.step)
        return refs.format_ref(refs.MetricRef(self.input_data.step.name, self.input_data.output.name,
                                              str(self.json_key)))


class Condition:
    """A typed comparison between placeholders, metrics, literals or nested conditions."""

    def __init__(self, condition_type: ConditionTypeEnum, left: Any, right: Any) -> None:
        self.condition_type, self.left, self.right = condition_type, left, right

    def _operand(self, value: Any, ctx: SpecContext, loc: str) -> Any:
        if isinstance(value, Condition):
            return value._to_spec(ctx, loc)
        if isinstance(value, MetricInfo):
            return value._ref(ctx, loc)
        return ctx.value(value, loc)

    def _to_spec(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        ctype = self.condition_type
        if isinstance(ctype, ConditionTypeEnum):
            op = OPERATOR[ctype]
        else:
            by_value = {c.value: OPERATOR[c] for c in ConditionTypeEnum} | {c.name: OPERATOR[c] for c in ConditionTypeEnum}
            op = by_value.get(str(ctype), str(ctype))
        return {"type": op, "left": self._operand(self.left, ctx, f"{loc}.left"),
                "right": self._operand(self.right, ctx, f"{loc}.right")}

    def __repr__(self) -> str:
        return f"Condition({self.condition_type!r}, {self.left!r}, {self.right!r})"


class Step:
    """Base of every step. Subclasses set ``step_type`` and serialise their ``properties``."""

    step_type = "step"

    def __init__(self, name: str, inputs: Any = None, outputs: Any = None, title: str | None = None,
                 description: str | None = None, policy: StepPolicy | None = None, depend_steps: Any = None) -> None:
        self.name = name
        self.title = title or name
        self.description = description
        self.inputs = as_list(inputs)
        self.outputs = Outputs(self, as_list(outputs))
        self.policy = policy
        self.depend_steps = as_list(depend_steps)

    def _properties(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        return {}

    def _to_spec(self, ctx: SpecContext) -> m.StepSpec:
        ctx.step = name_of(self.name)
        loc = f"steps[{ctx.step}]"
        inputs = []
        for i, item in enumerate(self.inputs):
            if isinstance(item, StepInput):
                inputs.append(item._to_spec(ctx, f"{loc}.inputs[{item.name}]"))
            else:
                ctx.problem(f"{loc}.inputs[{i}]", f"expected a step input object, got {item!r}")
        outputs = []
        for i, item in enumerate(self.outputs.ordered):
            if isinstance(item, StepOutput):
                outputs.append(item._to_spec(ctx, f"{loc}.outputs[{item.name}]"))
            else:
                ctx.problem(f"{loc}.outputs[{i}]", f"expected a step output object, got {item!r}")
        depends = []
        for i, dep in enumerate(self.depend_steps):
            if isinstance(dep, Step):
                depends.append(dep.name)
            else:
                ctx.problem(f"{loc}.depend_steps[{i}]", f"expected a step object, got {dep!r}")
        policy = None
        if self.policy is not None:
            if isinstance(self.policy, StepPolicy):
                policy = m.StepPolicySpec.model_validate(self.policy._to_spec(ctx, f"{loc}.policy"))
            else:
                ctx.problem(f"{loc}.policy", f"expected a wf.steps.StepPolicy, got {self.policy!r}")
        spec = m.StepSpec(name=name_of(self.name), type=self.step_type, title=self.title,  # type: ignore[arg-type]
                          description=self.description, inputs=inputs, outputs=outputs,
                          properties=self._properties(ctx, f"{loc}.properties"), depend_steps=depends, policy=policy)
        self._extra_spec(spec, ctx, loc)
        for producer in ctx.take_implied():
            if producer not in spec.depend_steps and producer != self.name:
                spec.depend_steps.append(producer)
        ctx.step = None
        return spec

    def _extra_spec(self, spec: m.StepSpec, ctx: SpecContext, loc: str) -> None:
        """Hook for step kinds with extra top-level fields (condition steps)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class ConditionStep(Step):
    """Evaluates its conditions (all must hold) and skips the losing branch."""

    step_type = "condition"

    def __init__(self, name: str, conditions: Any, if_then_steps: Any = None, else_then_steps: Any = None,
                 title: str | None = None, description: str | None = None, depend_steps: Any = None) -> None:
        super().__init__(name, title=title, description=description, depend_steps=depend_steps)
        self.conditions = conditions
        self.if_then_steps = if_then_steps
        self.else_then_steps = else_then_steps

    def _extra_spec(self, spec: m.StepSpec, ctx: SpecContext, loc: str) -> None:
        ctx.step = self.name
        for i, cond in enumerate(as_list(self.conditions)):
            if isinstance(cond, Condition):
                spec.conditions.append(m.ConditionSpec.model_validate(cond._to_spec(ctx, f"{loc}.conditions[{i}]")))
            else:
                ctx.problem(f"{loc}.conditions[{i}]", f"expected a wf.steps.Condition, got {cond!r}")
        for attr in ("if_then_steps", "else_then_steps"):
            names = []
            for target in as_list(getattr(self, attr)):
                if isinstance(target, Step):
                    names.append(target.name)
                elif isinstance(target, str):
                    names.append(target)
                else:
                    ctx.problem(f"{loc}.{attr}", f"expected step names, got {target!r}")
            setattr(spec, attr, names)
