"""The run service: create, execute, stop, retry, resume and reconcile runs, and read them.

Layer: run service — above the engine, below the doors (CLI, SDK verbs, REST API). Every door
starts and inspects runs through these names and nothing below them.

The names load on first use (module ``__getattr__``): ``from mloop.runs import open_backend``
does not import the engine, so a command that only reads runs doesn't pay for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mloop.runs.queries import RunDetail, has_live_engine, list_runs, log_lines, run_detail, run_metrics, step_log_path
    from mloop.runs.reconcile import reconcile_orphans, reconcile_run
    from mloop.runs.open import default_settings, open_backend, release_spec_with_settings
    from mloop.runs.service import (
        InProcessLauncher, Launcher, RunResult, create_run, execute_run, first_failure,
        Watch, provide_input, raise_for_result, raise_for_run, release_spec, resolve_data_paths, resume_and_run,
        retry_and_run, start_run, result_of, resumable, resume_run, retry_run, run_to_end, select_steps, stop_run,
        waiting_runs,
    )

_OPEN = ("default_settings", "open_backend", "release_spec_with_settings")
_SERVICE = ("InProcessLauncher", "Launcher", "RunResult", "Watch", "create_run", "execute_run", "first_failure",
            "provide_input", "raise_for_result", "raise_for_run", "release_spec", "resolve_data_paths",
            "result_of", "resumable", "resume_and_run", "resume_run", "retry_and_run", "retry_run", "run_to_end",
            "select_steps", "start_run", "stop_run", "waiting_runs")
_QUERIES = ("RunDetail", "has_live_engine", "list_runs", "log_lines", "run_detail", "run_metrics", "step_log_path")

#: Where each lazily exported name lives.
_LAZY = {**{n: "mloop.runs.open" for n in _OPEN}, **{n: "mloop.runs.service" for n in _SERVICE}, **{n: "mloop.runs.queries" for n in _QUERIES},
         "reconcile_orphans": "mloop.runs.reconcile", "reconcile_run": "mloop.runs.reconcile"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain global
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = sorted(_LAZY)
