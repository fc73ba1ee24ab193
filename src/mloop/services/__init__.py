"""Plain functions the CLI, the SDK verbs and (later) the REST API all call."""

from mloop.services.backend import Backend, default_settings, open_backend
from mloop.services.runs import (
    create_run, execute_run, first_failure, raise_for_run, release_spec, retry_run, select_steps, stop_run,
)


def run_workflow(settings, spec, values, **kwargs):  # type: ignore[no-untyped-def]
    """Create and execute a run with live output (see :func:`mloop.console.run_workflow`)."""
    from mloop.console import run_workflow as _run

    return _run(settings, spec, values, **kwargs)


def release_spec_with_settings(settings, spec):  # type: ignore[no-untyped-def]
    with open_backend(settings) as backend:
        return release_spec(backend, spec)


__all__ = ["Backend", "create_run", "default_settings", "execute_run", "first_failure", "open_backend",
           "raise_for_run", "release_spec", "retry_run", "run_workflow", "select_steps", "stop_run"]
