"""ConditionStep: evaluate its conditions (all must hold) and skip the losing branch."""

from __future__ import annotations

from typing import Any

from mloop.engine.conditions import describe, evaluate
from mloop.engine.context import RunContext
from mloop.spec.models import StepSpec
from mloop.engine.handlers import Launched, Outcome, StepHandler


class ConditionHandler(StepHandler):
    def start(self, step: StepSpec, ctx: RunContext, attempt: int, on_exit: Any) -> Outcome | Launched:
        result = all(evaluate(cond, ctx) for cond in step.conditions)
        taken, skipped = ("if", step.else_then_steps) if result else ("else", step.if_then_steps)
        text = " and ".join(describe(c, ctx) for c in step.conditions)
        return Outcome("succeeded", f"{text} is {result}: taking the {taken} branch",
                       outputs={"result": {"type": "bool", "value": result}}, skip_steps=list(skipped))
