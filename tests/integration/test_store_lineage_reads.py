"""The store's batch reads behind the console's lineage (``runs_by_ids``, ``step_inputs_of_runs``)
on SQLite and PostgreSQL: many ids in a bounded number of queries, unknown ids left out, and the
base :class:`~mloop.store.base.Store` fallbacks giving the same answers."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from mloop.store import SQLStore, open_store
from mloop.store.base import RunRecord, Store

#: More than one ``IN (...)`` chunk (500), and more than SQLite's old 999 bound parameters.
MANY = 1100


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLStore]:
    url = f"sqlite:///{tmp_path / 'mloop.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    with open_store(url) as opened:
        yield opened


def make_runs(store: Store, count: int, steps: tuple[tuple[str, str], ...] = (("train", "job"),)) -> list[RunRecord]:
    release = store.create_release("wf", {"workflow": "wf"})
    return [store.create_run(release.id, steps) for _ in range(count)]


class Queries:
    """The statements sent to the database while it is open (``with Queries(store) as q``)."""

    def __init__(self, store: SQLStore) -> None:
        self.engine, self.statements = store.engine, []  # type: list[str]

    def _count(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements.append(statement)

    def __enter__(self) -> Queries:
        event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc_info: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._count)

    def on(self, table: str) -> list[str]:
        return [s for s in self.statements if re.search(rf"\bFROM {table}\b", s)]

    def selects(self) -> list[str]:
        return [s for s in self.statements if s.lstrip().upper().startswith("SELECT")]


def test_runs_by_ids_in_the_order_asked_without_unknown_ids_or_prefixes(store: SQLStore) -> None:
    a, b, c = make_runs(store, 3)
    store.transition_run(b.id, "running")
    found = store.runs_by_ids([c.id, "no-such-run", a.id, c.id, a.id[:8]])
    assert list(found) == [c.id, a.id]  # each once; an unknown id and a prefix are absent
    assert found[a.id] == store.get_run(a.id) and found[c.id] == store.get_run(c.id)
    assert store.runs_by_ids([b.id])[b.id].status == "running"
    assert store.runs_by_ids([]) == {} and store.runs_by_ids(["nope"]) == {}
    # the base Store's fallback (get_run per id) says the same
    assert Store.runs_by_ids(store, [c.id, "no-such-run", a.id, c.id, a.id[:8]]) == found


def test_runs_by_ids_reads_many_in_one_query_per_chunk(store: SQLStore) -> None:
    runs = make_runs(store, 520)
    unknown = [f"unknown-{i}" for i in range(MANY - len(runs))]
    asked = [x for pair in zip(unknown, [r.id for r in runs]) for x in pair] + unknown[len(runs):]
    assert len(asked) == MANY
    with Queries(store) as queries:
        found = store.runs_by_ids(asked)
    assert list(found) == [r.id for r in runs] and found[runs[-1].id] == runs[-1]
    assert len(queries.on("runs")) == math.ceil(MANY / 500) and len(queries.selects()) == len(queries.on("runs"))


def test_step_inputs_of_runs_reads_only_the_asked_keys(store: SQLStore) -> None:
    steps = (("prepare", "job"), ("train", "job"), ("register", "model"))
    used, plain, bare = make_runs(store, 3, steps)
    datasets = {"data": {"dataset_name": "pets", "version_name": "v2"}}
    store.update_step(used.id, "train", inputs={"values": {"lr": 0.1}, "datasets": datasets, "argv": ["x"]})
    store.update_step(used.id, "prepare", inputs={"values": {}, "datasets": {}})
    store.update_step(plain.id, "train", inputs={"values": {"lr": 0.2}})

    found = store.step_inputs_of_runs([bare.id, "no-such-run", used.id, plain.id, used.id], keys=("datasets",))
    assert list(found) == [bare.id, used.id, plain.id]  # the order asked; unknown absent; each once
    assert [(s.run_id, s.step_name, s.type, s.inputs) for s in found[used.id]] == [
        (used.id, "prepare", "job", {"datasets": {}}),
        (used.id, "train", "job", {"datasets": datasets}),
        (used.id, "register", "model", {})]  # in step order
    assert [s.inputs for s in found[plain.id]] == [{}, {}, {}]  # no "datasets" recorded: left out

    whole = store.step_inputs_of_runs([used.id])  # no keys: the whole recorded inputs
    assert whole[used.id][1].inputs == {"values": {"lr": 0.1}, "datasets": datasets, "argv": ["x"]}
    assert store.step_inputs_of_runs([]) == {} and store.step_inputs_of_runs(["nope"], keys=("datasets",)) == {}
    # the base Store's fallback (list_steps per id) says the same
    for keys in (("datasets",), None):
        assert Store.step_inputs_of_runs(store, [bare.id, "no-such-run", used.id, plain.id], keys=keys) == \
            store.step_inputs_of_runs([bare.id, "no-such-run", used.id, plain.id], keys=keys)


def test_step_inputs_of_runs_reads_many_in_one_query_per_chunk(store: SQLStore) -> None:
    runs = make_runs(store, 520, (("prepare", "job"), ("train", "job")))
    store.update_step(runs[-1].id, "train", inputs={"datasets": {"d": {"dataset_name": "pets", "version_name": "v1"}}})
    asked = [r.id for r in runs] + [f"unknown-{i}" for i in range(MANY - len(runs))]
    with Queries(store) as queries:
        found = store.step_inputs_of_runs(asked, keys=("datasets",))
    assert list(found) == [r.id for r in runs] and all(len(v) == 2 for v in found.values())
    assert found[runs[-1].id][1].inputs == {"datasets": {"d": {"dataset_name": "pets", "version_name": "v1"}}}
    assert len(queries.on("steps")) == math.ceil(MANY / 500) and len(queries.selects()) == len(queries.on("steps"))
