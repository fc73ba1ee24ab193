"""Step kinds whose execution arrives in later work: they compile and validate today.

Every built-in kind runs now (MrsJobSteps too: :mod:`mloop.steps.mrs`); the handler stays for
a kind added to the spec before its execution, which then gets a line in :data:`WHEN`.
"""

from __future__ import annotations

from typing import Any

from mloop.engine.context import RunContext
from mloop.spec.models import StepSpec
from mloop.engine.handlers import Launched, Outcome, StepHandler

#: kind -> how the failure names it (none today).
WHEN: dict[str, str] = {}


class UnsupportedHandler(StepHandler):
    def start(self, step: StepSpec, ctx: RunContext, attempt: int, on_exit: Any) -> Outcome | Launched:
        what = WHEN.get(step.type, f"{step.type!r} steps")
        return Outcome("failed", f"{what} is not supported yet by this mloop; the step compiles and validates, "
                                 f"but cannot run. Skip it with a StepPolicy skip condition, or run the other "
                                 f"steps with --steps")
