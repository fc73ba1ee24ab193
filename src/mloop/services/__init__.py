"""Plain functions the CLI, the SDK verbs and (later) the REST API all call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mloop.services.backend import Backend, default_settings, open_backend
from mloop.services.runs import (
    create_run, execute_run, first_failure, raise_for_run, release_spec, retry_run, select_steps, stop_run,
)

if TYPE_CHECKING:
    from mloop.config import Settings
    from mloop.spec.models import WorkflowSpec
    from mloop.store.base import ReleaseRecord


def run_workflow(settings: Settings, spec: WorkflowSpec, values: dict[str, Any], **kwargs: Any) -> str:
    """Create and execute a run with live output (see :func:`mloop.console.run_workflow`)."""
    from mloop.console import run_workflow as _run

    return _run(settings, spec, values, **kwargs)


def release_spec_with_settings(settings: Settings, spec: WorkflowSpec) -> ReleaseRecord:
    """:func:`release_spec` on a backend opened (and closed) for the call."""
    with open_backend(settings) as backend:
        return release_spec(backend, spec)


__all__ = ["Backend", "create_run", "default_settings", "execute_run", "first_failure", "open_backend",
           "raise_for_run", "release_spec", "release_spec_with_settings", "retry_run", "run_workflow",
           "select_steps", "stop_run"]
