"""The context every operation works in: settings, the metadata store and the artifact store.

Layer: foundation (imports config, store and artifacts only). Domain operations
(:mod:`mloop.services`) take a :class:`Context`; the engine's
:class:`~mloop.engine.context.RunContext` *is* one, with the facts of one run added, so a
step handler hands its run context straight to the operation it calls.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mloop.artifacts import ArtifactStore
    from mloop.config import Settings
    from mloop.store.base import Store

__all__ = ["Context", "make_private_home", "open_context"]


class Context:
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
            from mloop.artifacts import ArtifactStore, configure_from_settings

            # The settings' S3 endpoint, region and retries become this process's defaults,
            # so every s3:// filesystem opened below (inputs, metrics, caches) uses them too.
            configure_from_settings(self.settings)
            self._artifacts = ArtifactStore(self.settings.resolved_artifact_root)
        return self._artifacts

    def __repr__(self) -> str:
        return f"{type(self).__name__}(store={self.store!r}, artifact_root={self.settings.resolved_artifact_root!r})"

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_context(settings: Settings) -> Context:
    """Open the metadata store of ``settings`` (creating it on first use) in a new context.

    Doors that look at runs open it through :func:`mloop.runs.open_backend`, which also
    reconciles runs whose engine died.
    """
    from mloop.store import open_store

    make_private_home(settings.home_path)
    return Context(settings, open_store(settings.resolved_database_url))


def make_private_home(home: os.PathLike[str] | str) -> None:
    """Create the home folder owner-only (0700, whatever the umask), or make an existing one
    so: it holds the database, the artifacts and run files, and service control tokens. A
    home that isn't this user's is left as it is."""
    path = os.fspath(home)
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.stat(path)
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            os.chmod(path, 0o700)
    except OSError:
        pass  # a read-only or foreign home: opening the store says what is wrong
