"""The metadata store: runs, steps, events, metrics, artifacts, releases and algorithms.

Open it with :func:`open_store`; program against :class:`~mloop.store.base.Store`. Areas beyond
runs are repositories the store declares as typed properties: ``store.datasets``,
``store.labels``, ``store.registry`` and ``store.services``.

Layout: :mod:`~mloop.store.base` is the interface and its records; :mod:`~mloop.store.sql` the
SQLAlchemy implementation; :mod:`~mloop.store.database` the one seam (:class:`Database`:
transactions, the numbering lock, error translation) the store hands each repository, which
never touches the store's privates. Each table registers on the shared ``Base`` in the module
that defines it (runs, steps and the rest in :mod:`~mloop.store.models`; ``datasets``,
``labels``, ``registry`` and ``services`` next to their repository); :mod:`~mloop.store.models`
imports those modules, so ``Base.metadata`` (what Alembic compares) always holds every table.

Layer: foundation (the metadata store; imports only errors and the spec).
"""

from __future__ import annotations

from mloop.store.base import Store
from mloop.store.schema import ensure_schema, prepare_sqlite_folder, upgrade_database
from mloop.store.sql import SQLStore

__all__ = ["SQLStore", "Store", "open_store", "upgrade_database"]


def open_store(url: str) -> SQLStore:
    """Open the metadata store at ``url``, creating the schema in an empty database.

    Args:
        url: a SQLAlchemy URL, e.g. ``Settings().resolved_database_url``. For SQLite, a missing
            parent folder is created.

    Raises:
        SchemaVersionError: the database needs ``mloop db upgrade`` (or a newer mloop).
        StoreError: the database can't be reached.
    """
    prepare_sqlite_folder(url)
    store = SQLStore(url)
    try:
        ensure_schema(store.engine, url)
    except BaseException:
        store.close()
        raise
    return store
