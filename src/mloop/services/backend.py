"""The embedded backend: settings, metadata store and artifact store opened together."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mloop.artifacts import ArtifactStore
from mloop.config import Settings
from mloop.store import open_store
from mloop.store.base import Store


@dataclass
class Backend:
    settings: Settings
    store: Store
    artifacts: ArtifactStore

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def default_settings(**overrides: Any) -> Settings:
    """Settings from the environment and ``mloop.toml`` (what SDK verbs and the CLI use)."""
    return Settings(**overrides)


def open_backend(settings: Settings, *, reconcile: bool = True) -> Backend:
    """Open the store (creating it on first use) and reconcile runs whose engine died."""
    store = open_store(settings.resolved_database_url)
    backend = Backend(settings, store, ArtifactStore(settings.resolved_artifact_root))
    if reconcile:
        from mloop.engine.reconcile import reconcile_orphans

        reconcile_orphans(store, settings.stop_grace_seconds)
    return backend
