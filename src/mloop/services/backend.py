"""The embedded backend: settings, metadata store and artifact store opened together."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mloop.store import open_store

if TYPE_CHECKING:
    from mloop.artifacts import ArtifactStore
    from mloop.config import Settings
    from mloop.store.base import Store

#: Run statuses an engine process owns; a run in one of them may have lost its engine.
_LIVE_STATUSES = ["running", "waiting_input"]


class Backend:
    """Settings, the metadata store and the artifact store, used together and closed together.

    ``artifacts`` is created on first use when not given: a command that only reads the
    metadata store (``mloop dataset list``) doesn't import fsspec.
    """

    def __init__(self, settings: Settings, store: Store, artifacts: ArtifactStore | None = None) -> None:
        self.settings = settings
        self.store = store
        self._artifacts = artifacts

    @property
    def artifacts(self) -> ArtifactStore:
        if self._artifacts is None:
            from mloop.artifacts import ArtifactStore

            self._artifacts = ArtifactStore(self.settings.resolved_artifact_root)
        return self._artifacts

    def __repr__(self) -> str:
        return f"Backend(store={self.store!r}, artifact_root={self.settings.resolved_artifact_root!r})"

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def default_settings(**overrides: Any) -> Settings:
    """Settings from the environment and ``mloop.toml`` (what SDK verbs and the CLI use)."""
    from mloop.config import Settings

    return Settings(**overrides)


def open_backend(settings: Settings, *, reconcile: bool = True) -> Backend:
    """Open the store (creating it on first use) and reconcile runs whose engine died."""
    store = open_store(settings.resolved_database_url)
    backend = Backend(settings, store)
    # The reconciler (and the process tools it imports) is needed only when some run is live.
    if reconcile and store.list_runs(status=_LIVE_STATUSES, limit=1):
        from mloop.engine.reconcile import reconcile_orphans

        reconcile_orphans(store, settings.stop_grace_seconds)
    return backend
