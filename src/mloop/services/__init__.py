"""Plain functions the CLI, the SDK verbs and (later) the REST API all call.

The names below load on first use (module ``__getattr__``): ``from mloop.services import
open_backend`` imports the backend only, not the run engine, so a command that works on
datasets or models doesn't pay for importing the engine it never calls.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mloop.config import Settings
    from mloop.services.backend import Backend, default_settings, open_backend
    from mloop.services.runs import (
        create_run, execute_run, first_failure, raise_for_run, release_spec, retry_run, select_steps, stop_run,
    )
    from mloop.spec.models import WorkflowSpec
    from mloop.store.base import ReleaseRecord

#: Where each lazily exported name lives.
_LAZY = {
    "Backend": "mloop.services.backend",
    "default_settings": "mloop.services.backend",
    "open_backend": "mloop.services.backend",
    **{name: "mloop.services.runs" for name in (
        "create_run", "execute_run", "first_failure", "raise_for_run", "release_spec", "retry_run", "select_steps",
        "stop_run",
    )},
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain global
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def run_workflow(settings: Settings, spec: WorkflowSpec, values: dict[str, Any], **kwargs: Any) -> str:
    """Create and execute a run with live output (see :func:`mloop.console.run_workflow`)."""
    from mloop.console import run_workflow as _run

    return _run(settings, spec, values, **kwargs)


def release_spec_with_settings(settings: Settings, spec: WorkflowSpec) -> ReleaseRecord:
    """:func:`release_spec` on a backend opened (and closed) for the call."""
    from mloop.services.backend import open_backend
    from mloop.services.runs import release_spec

    with open_backend(settings) as backend:
        return release_spec(backend, spec)


__all__ = ["Backend", "create_run", "default_settings", "execute_run", "first_failure", "open_backend",
           "raise_for_run", "release_spec", "release_spec_with_settings", "retry_run", "run_workflow",
           "select_steps", "stop_run"]
