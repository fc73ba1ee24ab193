"""Step kinds whose execution arrives in later work: they compile and validate today."""

from __future__ import annotations

from typing import Any

from mloop.engine.context import RunContext
from mloop.spec.models import StepSpec
from mloop.engine.handlers import Launched, Outcome, StepHandler

WHEN = {
    "mrs_job": "MapReduce jobs (MrsJobStep)",
}


class UnsupportedHandler(StepHandler):
    def start(self, step: StepSpec, ctx: RunContext, attempt: int, on_exit: Any) -> Outcome | Launched:
        what = WHEN.get(step.type, f"{step.type!r} steps")
        return Outcome("failed", f"{what} is not supported yet by this mloop; the step compiles and validates, "
                                 f"but cannot run. Skip it with a StepPolicy skip condition, or run the other "
                                 f"steps with --steps")
