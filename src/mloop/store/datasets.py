"""Datasets and their immutable versions.

Tables live here (on the store's shared ``Base``) next to the repository that reads and
writes them; :class:`~mloop.store.sql.SQLStore` exposes the repository as ``store.datasets``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mloop.store.sql import SQLStore


class DatasetRepository:
    def __init__(self, store: SQLStore) -> None:
        self.store = store
