"""The store has one public interface: nobody outside ``store/sql.py`` reaches into SQLStore's
privates, and the area repositories are declared, typed, on the abstract ``Store``."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import pytest

import mloop
from mloop.store import base
from mloop.store.base import Store
from mloop.store.datasets import DatasetRepository
from mloop.store.labels import LabelRepository
from mloop.store.registry import ModelRepository
from mloop.store.services import ServiceRepository

SRC = Path(mloop.__file__).resolve().parent
#: SQLStore's transaction internals; repositories get them through ``store.database.Database``.
PRIVATE = {"_session", "_lock_numbering"}


def _mentions(path: Path) -> list[str]:
    """Where ``path`` reaches a store private: as an attribute (``x._session(...)``) or by name
    (``getattr(x, "_session")``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        name = (node.attr if isinstance(node, ast.Attribute)
                else node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None)
        if name in PRIVATE:
            found.append(f"{path.relative_to(SRC.parent)}:{getattr(node, 'lineno', '?')}: {name}")
    return found


def test_only_the_sql_store_touches_its_transaction_privates() -> None:
    modules = [p for p in sorted(SRC.rglob("*.py")) if p != SRC / "store" / "sql.py"]
    assert len(modules) > 50  # the walk found the package
    offenders = [hit for path in modules for hit in _mentions(path)]
    assert offenders == [], "use the Database the store hands its repositories instead:\n" + "\n".join(offenders)


@pytest.mark.parametrize(("name", "repository"), [
    ("datasets", DatasetRepository), ("labels", LabelRepository),
    ("registry", ModelRepository), ("services", ServiceRepository),
])
def test_repositories_are_typed_abstract_properties_of_the_store(name: str, repository: type) -> None:
    prop = getattr(Store, name)
    assert isinstance(prop, property) and prop.__isabstractmethod__
    hints = typing.get_type_hints(prop.fget, globalns={**vars(base), repository.__name__: repository})
    assert hints["return"] is repository
