"""Opening the context a door works in.

Layer: run service. Kept apart from :mod:`mloop.runs.service` so a command that only reads
the store (``mloop runs``, ``mloop dataset list``) imports neither the engine nor the spec.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mloop.context import Context, open_context

if TYPE_CHECKING:
    from mloop.config import Settings
    from mloop.spec.models import WorkflowSpec
    from mloop.store.base import ReleaseRecord

__all__ = ["default_settings", "open_backend", "release_spec_with_settings"]

#: Run statuses a process owns (its creator, then its engine); such a run may have lost it.
_LIVE_STATUSES = ["pending", "running", "waiting_input"]


def open_backend(settings: Settings, *, reconcile: bool = True) -> Context:
    """Open the context a door works in (creating the store on first use), and finish runs
    whose engine died, so what the door shows is true."""
    ctx = open_context(settings)
    # The reconciler's work (and the process tools it uses) is needed only when some run is live.
    if reconcile and ctx.store.list_runs(status=_LIVE_STATUSES, limit=1):
        from mloop.runs.reconcile import reconcile_orphans

        reconcile_orphans(ctx)
    return ctx


def default_settings(**overrides: Any) -> Settings:
    """Settings from the environment and ``mloop.toml`` (what SDK verbs and the CLI use)."""
    from mloop.config import Settings

    return Settings(**overrides)


def release_spec_with_settings(settings: Settings, spec: WorkflowSpec) -> ReleaseRecord:
    """:func:`release_spec` on a context opened (and closed) for the call."""
    from mloop.runs.service import release_spec

    with open_backend(settings) as ctx:
        return release_spec(ctx, spec)


