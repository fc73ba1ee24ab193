"""The store contract: one behaviour suite, run on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from mloop.errors import NotFoundError, StoreError
from mloop.store import SQLStore, open_store
from mloop.store.base import AlgorithmRecord, MetricRecord, NewArtifact, RunRecord, StepTransition, Store
from mloop.store.datasets import DatasetRepository
from mloop.store.labels import LabelRepository
from mloop.store.registry import ModelRepository
from mloop.store.services import ServiceRepository


def make_run(store: Store, workflow: str = "wf",
             steps: tuple[tuple[str, str], ...] = (("prepare", "job"), ("train", "job")),
             **kwargs: object) -> RunRecord:
    release = store.create_release(workflow, {"workflow": workflow})
    return store.create_run(release.id, steps, **kwargs)  # type: ignore[arg-type]


def metric(key: str, source: str, value: float = 1.0) -> MetricRecord:
    return MetricRecord(run_id="ignored", step_name="ignored", key=key, title=key.title(), type="float",
                        value=value, data={"value": value}, source=source)


def algorithm(name: str, version: str, **fields: object) -> AlgorithmRecord:
    return AlgorithmRecord(id=f"{name}-{version}", name=name, version=version,
                           code_dir=f"/code/{name}/{version}", **fields)  # type: ignore[arg-type]


class StoreContract:
    """Behaviour every Store must have. Subclasses provide a ``store`` fixture: an open store
    on a fresh, empty database."""

    # -- releases ---------------------------------------------------------------------------
    def test_releases_are_versioned_per_workflow(self, store: Store) -> None:
        a1 = store.create_release("a", {"v": 1})
        a2 = store.create_release("a", {"v": 2})
        b1 = store.create_release("b", {"v": 1})

        assert (a1.version, a2.version, b1.version) == (1, 2, 1)
        assert store.latest_release("a") == a2
        assert store.latest_release("never-released") is None
        assert [r.id for r in store.list_releases("a")] == [a1.id, a2.id]
        assert [r.id for r in store.list_releases()] == [a1.id, a2.id, b1.id]

    def test_an_unchanged_spec_reuses_the_latest_release_when_asked(self, store: Store) -> None:
        first = store.create_release("wf", {"v": 1})
        assert store.create_release("wf", {"v": 1}, reuse_if_unchanged=True) == first
        changed = store.create_release("wf", {"v": 2}, reuse_if_unchanged=True)
        assert changed.version == 2
        barrier = threading.Barrier(4)
        got: list[int] = []

        def release() -> None:
            barrier.wait()
            got.append(store.create_release("wf", {"v": 3}, reuse_if_unchanged=True).version)

        threads = [threading.Thread(target=release) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert got == [3, 3, 3, 3]

    def test_release_round_trips_spec_and_extend_with_canonical_hash(self, store: Store) -> None:
        spec = {"schema_version": 1, "title": "Zürich", "steps": [{"name": "train", "inputs": {"lr": 0.5}}]}
        release = store.create_release("wf", spec, extend={"git_sha": "abc123"})

        loaded = store.get_release(release.id)
        assert loaded == release
        assert loaded.spec == spec
        assert loaded.extend == {"git_sha": "abc123"}
        canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert loaded.spec_hash == hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        # Key order does not change the hash.
        assert store.create_release("wf", dict(reversed(spec.items()))).spec_hash == loaded.spec_hash
        assert loaded.created_at.utcoffset() == timedelta(0)

    def test_unknown_release_raises_not_found(self, store: Store) -> None:
        with pytest.raises(NotFoundError, match="no release with id 'nope'"):
            store.get_release("nope")
        with pytest.raises(NotFoundError, match="no release with id 'nope'"):
            store.create_run("nope", [("a", "job")])

    # -- runs -------------------------------------------------------------------------------
    def test_runs_are_numbered_per_workflow_across_releases(self, store: Store) -> None:
        first = store.create_release("wf", {"v": 1})
        second = store.create_release("wf", {"v": 2})
        other = store.create_release("other", {"v": 1})

        numbers = [store.create_run(release.id, [("a", "job")]).number
                   for release in (first, second, first, other)]
        assert numbers == [1, 2, 3, 1]

    def test_concurrent_releases_and_runs_get_distinct_numbers(self, store: Store) -> None:
        release = store.create_release("wf", {})
        barrier = threading.Barrier(6)
        versions: list[int] = []
        numbers: list[int] = []

        def create() -> None:
            barrier.wait()
            versions.append(store.create_release("wf", {}).version)
            numbers.append(store.create_run(release.id, [("a", "job")]).number)

        threads = [threading.Thread(target=create) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert sorted(versions) == [2, 3, 4, 5, 6, 7]
        assert sorted(numbers) == [1, 2, 3, 4, 5, 6]

    def test_new_run_is_pending_with_pending_steps_in_given_order(self, store: Store) -> None:
        run = make_run(store, steps=(("zeta", "job"), ("alpha", "condition"), ("mid", "model")))

        assert run.status == "pending"
        assert run.attempt == 1 and not run.stop_requested
        assert run.started_at is None and run.finished_at is None
        assert len(run.id) == 32 and int(run.id, 16) >= 0
        steps = store.list_steps(run.id)
        assert [(s.name, s.type, s.status, s.attempt) for s in steps] == [
            ("zeta", "job", "pending", 0), ("alpha", "condition", "pending", 0), ("mid", "model", "pending", 0),
        ]
        assert store.get_step(run.id, "alpha") == steps[1]

    def test_run_keeps_params_storages_selection_and_given_id(self, store: Store) -> None:
        run = make_run(store, run_id="my-run-0001", params={"epochs": 3, "lr": 0.1, "data": {"uri": "s3://b/k"}},
                       storages={"out": "/tmp/out"}, selected_steps=["train"])

        assert run == store.get_run("my-run-0001")
        assert run.params == {"epochs": 3, "lr": 0.1, "data": {"uri": "s3://b/k"}}
        assert run.storages == {"out": "/tmp/out"}
        assert run.selected_steps == ["train"]

    def test_create_run_refuses_duplicate_ids_and_step_names(self, store: Store) -> None:
        run = make_run(store, run_id="dup-0001")
        with pytest.raises(StoreError, match="already exists"):
            store.create_run(run.release_id, [("a", "job")], run_id="dup-0001")
        with pytest.raises(ValueError, match="repeated: a"):
            store.create_run(run.release_id, [("a", "job"), ("a", "job")])
        assert [r.id for r in store.list_runs()] == ["dup-0001"]

    def test_get_run_accepts_unique_prefix(self, store: Store) -> None:
        run = make_run(store)
        assert store.get_run(run.id[:4]) == run
        assert store.get_run(run.id) == run

    def test_get_run_refuses_ambiguous_prefix(self, store: Store) -> None:
        make_run(store, run_id="abcd1111")
        make_run(store, run_id="abcd2222")

        with pytest.raises(NotFoundError, match="'abcd' is ambiguous: it matches abcd1111, abcd2222") as info:
            store.get_run("abcd")
        assert info.value.hint == "give more characters of the run id"
        assert store.get_run("abcd2").id == "abcd2222"

    def test_get_run_refuses_short_or_unknown_prefix(self, store: Store) -> None:
        make_run(store, run_id="abcd1111")

        with pytest.raises(NotFoundError, match="no run with id 'abc'") as info:
            store.get_run("abc")
        assert "at least 4 characters" in (info.value.hint or "")
        with pytest.raises(NotFoundError, match="no run with id or id prefix 'ffff'"):
            store.get_run("ffff")

    def test_get_run_prefix_treats_like_wildcards_literally(self, store: Store) -> None:
        make_run(store, run_id="ab_x1111")
        make_run(store, run_id="abcx2222")
        assert store.get_run("ab_x").id == "ab_x1111"
        with pytest.raises(NotFoundError):
            store.get_run("ab%x")

    def test_list_runs_newest_first_with_filters(self, store: Store) -> None:
        first = make_run(store, "a")
        second = make_run(store, "b")
        third = make_run(store, "a")
        store.transition_run(second.id, "running")

        assert [r.id for r in store.list_runs()] == [third.id, second.id, first.id]
        assert [r.id for r in store.list_runs(workflow_name="a")] == [third.id, first.id]
        assert [r.id for r in store.list_runs(status=["running"])] == [second.id]
        assert [r.id for r in store.list_runs(limit=1)] == [third.id]

    def test_update_run_sets_fields_but_not_status(self, store: Store) -> None:
        run = make_run(store)

        updated = store.update_run(run.id, engine_pid=4321, engine_host="box", engine_started_at=12.5,
                                   stop_requested=True, params={"x": 1})
        assert (updated.engine_pid, updated.engine_host, updated.engine_started_at) == (4321, "box", 12.5)
        assert updated.stop_requested and updated.params == {"x": 1}
        assert store.get_run(run.id) == updated
        with pytest.raises(TypeError, match="status"):
            store.update_run(run.id, status="running")
        with pytest.raises(TypeError, match="colour"):
            store.update_run(run.id, colour="red")
        with pytest.raises(NotFoundError, match="no run with id 'missing'"):
            store.update_run("missing", engine_pid=1)

    # -- transitions ------------------------------------------------------------------------
    def test_run_transitions_write_events_and_timestamps(self, store: Store) -> None:
        run = make_run(store)

        assert store.transition_run(run.id, "running", message="engine started")
        running = store.get_run(run.id)
        assert store.transition_run(run.id, "failed", message="train failed", expected_from=["running"])
        failed = store.get_run(run.id)

        events = store.list_events(run.id)
        assert [(e.step_name, e.from_status, e.to_status, e.message) for e in events] == [
            (None, "pending", "running", "engine started"),
            (None, "running", "failed", "train failed"),
        ]
        assert store.count_events(run.id) == 2 and store.count_events(make_run(store).id) == 0
        with pytest.raises(NotFoundError):
            store.count_events("no-such-run")
        assert running.started_at == events[0].at and running.finished_at is None
        assert failed.started_at == running.started_at
        assert failed.finished_at == events[1].at >= events[0].at
        assert failed.message == "train failed"
        assert all(e.at.utcoffset() == timedelta(0) for e in events)

    def test_started_at_is_kept_and_finished_at_cleared_on_retry(self, store: Store) -> None:
        run = make_run(store)
        store.transition_run(run.id, "running")
        started = store.get_run(run.id).started_at
        store.transition_run(run.id, "waiting_input")
        store.transition_run(run.id, "failed")
        assert store.get_run(run.id).finished_at is not None

        store.transition_run(run.id, "running", attempt=2)

        retried = store.get_run(run.id)
        assert retried.started_at == started
        assert retried.finished_at is None
        assert retried.attempt == 2

    def test_compare_and_set_refuses_a_wrong_state(self, store: Store) -> None:
        run = make_run(store)

        assert store.transition_run(run.id, "stopped", expected_from=["running"]) is False
        assert store.get_run(run.id).status == "pending"
        assert store.list_events(run.id) == []
        assert store.transition_run(run.id, "stopped", expected_from=["pending", "running"]) is True
        assert store.get_run(run.id).status == "stopped"

    def test_only_one_of_racing_compare_and_sets_wins(self, store: Store) -> None:
        run = make_run(store)
        results: list[bool] = []
        barrier = threading.Barrier(8)

        def contender() -> None:
            barrier.wait()
            results.append(store.transition_run(run.id, "running", expected_from=["pending"]))

        threads = [threading.Thread(target=contender) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert sorted(results) == [False] * 7 + [True]
        assert len(store.list_events(run.id)) == 1

    def test_batched_step_transitions_commit_in_order_with_their_own_times(self, store: Store) -> None:
        release = store.create_release("wf", {})
        run = store.create_run(release.id, [("a", "job"), ("b", "job")])
        t0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
        applied = store.transition_steps(run.id, [
            StepTransition("a", "running", at=t0),
            StepTransition("a", "succeeded", fields={"outputs": {"x": {"url": "/x"}}}, at=t0 + timedelta(seconds=2)),
            StepTransition("b", "running", at=t0 + timedelta(seconds=3)),
            StepTransition("b", "succeeded", expected_from=["pending"]),  # refused: b is running by then
        ])
        assert applied == [True, True, True, False]
        a, b = store.list_steps(run.id)
        assert (a.status, a.started_at, a.finished_at) == ("succeeded", t0, t0 + timedelta(seconds=2))
        assert a.outputs == {"x": {"url": "/x"}}
        assert (b.status, b.started_at) == ("running", t0 + timedelta(seconds=3))
        steps_events = [(e.step_name, e.to_status, e.at) for e in store.list_events(run.id) if e.step_name]
        assert steps_events == [("a", "running", t0), ("a", "succeeded", t0 + timedelta(seconds=2)),
                                ("b", "running", t0 + timedelta(seconds=3))]

    def test_a_batch_with_an_unknown_step_writes_nothing(self, store: Store) -> None:
        release = store.create_release("wf", {})
        run = store.create_run(release.id, [("a", "job")])
        with pytest.raises(NotFoundError, match="no step 'nope'"):
            store.transition_steps(run.id, [StepTransition("a", "running"), StepTransition("nope", "running")])
        assert store.get_step(run.id, "a").status == "pending"

    def test_transition_writes_extra_fields(self, store: Store) -> None:
        run = make_run(store)
        store.transition_run(run.id, "running", engine_pid=99, engine_host="h")
        running = store.get_run(run.id)
        assert (running.status, running.engine_pid, running.engine_host) == ("running", 99, "h")

    def test_transitions_refuse_unknown_statuses_and_targets(self, store: Store) -> None:
        run = make_run(store)
        with pytest.raises(ValueError, match="'finished'"):
            store.transition_run(run.id, "finished")
        with pytest.raises(ValueError, match="'runing'"):
            store.transition_run(run.id, "stopped", expected_from=["runing"])
        with pytest.raises(ValueError, match="'done'"):
            store.transition_step(run.id, "train", "done")
        with pytest.raises(NotFoundError, match="no run with id 'missing'"):
            store.transition_run("missing", "running")
        with pytest.raises(NotFoundError, match=f"run '{run.id}' has no step 'nope'"):
            store.transition_step(run.id, "nope", "running")
        assert store.list_events(run.id) == []

    # -- steps ------------------------------------------------------------------------------
    def test_step_transitions_and_updates(self, store: Store) -> None:
        run = make_run(store)

        assert store.transition_step(run.id, "train", "running", expected_from=["pending"], pid=42, attempt=1)
        store.update_step(run.id, "train", outputs={"model": "/tmp/m"}, workdir="/w", log_path="/w/log",
                          code_hash="c0de", inputs={"lr": 0.1})
        assert store.transition_step(run.id, "train", "succeeded", exit_code=0)
        assert not store.transition_step(run.id, "train", "failed", expected_from=["running"])

        step = store.get_step(run.id, "train")
        assert (step.status, step.pid, step.attempt, step.exit_code) == ("succeeded", 42, 1, 0)
        assert (step.outputs, step.inputs, step.workdir, step.log_path, step.code_hash) == (
            {"model": "/tmp/m"}, {"lr": 0.1}, "/w", "/w/log", "c0de")
        events = store.list_events(run.id)
        assert [(e.step_name, e.from_status, e.to_status) for e in events] == [
            ("train", "pending", "running"), ("train", "running", "succeeded"),
        ]
        assert step.started_at == events[0].at and step.finished_at == events[1].at
        assert store.get_step(run.id, "prepare").status == "pending"

    def test_skipped_step_is_finished(self, store: Store) -> None:
        run = make_run(store)
        store.transition_step(run.id, "train", "skipped", outputs_skipped=True, message="condition false")
        step = store.get_step(run.id, "train")
        assert step.finished_at is not None and step.started_at is None
        assert step.outputs_skipped and step.message == "condition false"

    def test_unknown_step_and_run_raise_not_found(self, store: Store) -> None:
        run = make_run(store)
        with pytest.raises(NotFoundError, match=f"run '{run.id}' has no step 'nope'"):
            store.get_step(run.id, "nope")
        with pytest.raises(NotFoundError, match=f"run '{run.id}' has no step 'nope'"):
            store.update_step(run.id, "nope", pid=1)
        with pytest.raises(NotFoundError, match="no run with id 'missing'"):
            store.list_steps("missing")
        with pytest.raises(NotFoundError, match="no run with id 'missing'"):
            store.list_events("missing")

    # -- metrics and artifacts --------------------------------------------------------------
    def test_metrics_replace_entries_from_the_same_source(self, store: Store) -> None:
        run = make_run(store)
        store.add_metrics(run.id, "train", [metric("acc", "a.json", 0.5), metric("loss", "a.json", 2.0)])
        store.add_metrics(run.id, "train", [metric("f1", "b.json", 0.7)])
        store.add_metrics(run.id, "prepare", [metric("rows", "a.json", 10.0)])

        store.add_metrics(run.id, "train", [metric("acc", "a.json", 0.9)])

        train = store.list_metrics(run.id, "train")
        assert [(m.key, m.value, m.source) for m in train] == [("f1", 0.7, "b.json"), ("acc", 0.9, "a.json")]
        assert all((m.run_id, m.step_name) == (run.id, "train") for m in train)
        assert train[1].data == {"value": 0.9} and train[1].title == "Acc"
        assert len(store.list_metrics(run.id)) == 3

    def test_artifacts_are_listed_per_run_and_step(self, store: Store) -> None:
        run = make_run(store)
        model = store.add_artifact(run.id, "train", "model", "model", "file:///a/model", digest="sha256:1",
                                   size=5 * 2**30)
        data = store.add_artifact(run.id, "prepare", "data", "obs", "obs://bucket/data")

        assert model.size == 5 * 2**30 and model.digest == "sha256:1"
        assert model.created_at.utcoffset() == timedelta(0)
        assert store.list_artifacts(run.id) == [model, data]
        assert store.list_artifacts(run.id, "prepare") == [data]

    def test_metrics_and_artifacts_need_an_existing_step(self, store: Store) -> None:
        run = make_run(store)
        with pytest.raises(NotFoundError, match="has no step 'ghost'"):
            store.add_metrics(run.id, "ghost", [metric("acc", "a.json")])
        with pytest.raises(NotFoundError, match="has no step 'ghost'"):
            store.add_artifact(run.id, "ghost", "m", "model", "file:///m")
        with pytest.raises(NotFoundError, match="no run with id 'missing'"):
            store.list_metrics("missing")
        with pytest.raises(NotFoundError, match="no run with id 'missing'"):
            store.list_artifacts("missing")

    def test_adding_an_artifact_twice_for_one_output_keeps_one_row(self, store: Store) -> None:
        run = make_run(store)
        store.add_artifact(run.id, "train", "model", "model", "file:///attempt-1/model")
        log = store.add_artifact(run.id, "train", "log", "log", "file:///attempt-1/log")
        other = store.add_artifact(run.id, "prepare", "model", "model", "file:///prepare/model")

        again = store.add_artifact(run.id, "train", "model", "model", "file:///attempt-2/model", digest="sha256:2")

        assert store.list_artifacts(run.id, "train") == [log, again]
        assert store.list_artifacts(run.id, "prepare") == [other]

    # -- a step's outcome lands with its terminal transition ---------------------------------
    def test_metrics_and_artifacts_commit_with_the_transition(self, store: Store) -> None:
        run = make_run(store)
        store.transition_step(run.id, "train", "running")
        store.add_metrics(run.id, "train", [metric("acc", "a.json", 0.1), metric("f1", "b.json", 0.2)])
        done = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

        applied = store.transition_steps(run.id, [StepTransition(
            "train", "succeeded", expected_from=["running"], at=done,
            metrics=[metric("acc", "a.json", 0.9), metric("loss", "a.json", 0.3)],
            artifacts=[NewArtifact("model", "model", "file:///m", digest="sha256:m", size=3),
                       NewArtifact("metrics", "metrics", "file:///a.json")],
        )])

        assert applied == [True]
        assert store.get_step(run.id, "train").status == "succeeded"
        train = store.list_metrics(run.id, "train")
        assert [(m.key, m.value, m.source) for m in train] == [
            ("f1", 0.2, "b.json"), ("acc", 0.9, "a.json"), ("loss", 0.3, "a.json")]
        assert all((m.run_id, m.step_name) == (run.id, "train") for m in train)
        artifacts = store.list_artifacts(run.id)
        assert [(a.step_name, a.name, a.kind, a.uri, a.digest, a.size) for a in artifacts] == [
            ("train", "model", "model", "file:///m", "sha256:m", 3),
            ("train", "metrics", "metrics", "file:///a.json", None, None)]
        assert all(a.created_at == done for a in artifacts)

    def test_a_refused_transition_writes_no_metrics_or_artifacts(self, store: Store) -> None:
        run = make_run(store)
        store.transition_step(run.id, "train", "running")
        store.transition_step(run.id, "train", "stopped")  # a stop won the race

        applied = store.transition_steps(run.id, [StepTransition(
            "train", "succeeded", expected_from=["running"],
            metrics=[metric("acc", "a.json")], artifacts=[NewArtifact("model", "model", "file:///m")],
        )])

        assert applied == [False]
        assert store.get_step(run.id, "train").status == "stopped"
        assert store.list_metrics(run.id) == [] and store.list_artifacts(run.id) == []

    def test_a_failing_batch_writes_neither_status_nor_attachments(self, store: Store) -> None:
        run = make_run(store)
        store.transition_step(run.id, "train", "running")

        with pytest.raises(NotFoundError, match="no step 'nope'"):
            store.transition_steps(run.id, [
                StepTransition("train", "succeeded", metrics=[metric("acc", "a.json")],
                               artifacts=[NewArtifact("model", "model", "file:///m")]),
                StepTransition("nope", "running"),
            ])

        assert store.get_step(run.id, "train").status == "running"
        assert store.list_metrics(run.id) == [] and store.list_artifacts(run.id) == []
        assert [e.to_status for e in store.list_events(run.id)] == ["running"]

    def test_a_retried_step_keeps_one_artifact_per_output(self, store: Store) -> None:
        run = make_run(store)
        first = store.transition_steps(run.id, [
            StepTransition("train", "running"),
            StepTransition("train", "failed", metrics=[metric("acc", "a.json", 0.1)],
                           artifacts=[NewArtifact("model", "model", "file:///try-1/model"),
                                      NewArtifact("log", "log", "file:///try-1/log")]),
        ])
        retry = store.transition_steps(run.id, [
            StepTransition("train", "pending", expected_from=["failed"]),
            StepTransition("train", "running", expected_from=["pending"]),
            StepTransition("train", "succeeded", expected_from=["running"],
                           metrics=[metric("acc", "a.json", 0.9)],
                           artifacts=[NewArtifact("model", "model", "file:///try-2/model")]),
        ])

        assert first == [True, True] and retry == [True, True, True]
        assert sorted((a.name, a.uri) for a in store.list_artifacts(run.id, "train")) == [
            ("log", "file:///try-1/log"), ("model", "file:///try-2/model")]
        assert [(m.key, m.value) for m in store.list_metrics(run.id, "train")] == [("acc", 0.9)]

    # -- areas beyond runs --------------------------------------------------------------------
    def test_area_repositories_are_store_properties(self, store: Store) -> None:
        assert isinstance(store.datasets, DatasetRepository) and store.datasets is store.datasets
        assert isinstance(store.labels, LabelRepository)
        assert isinstance(store.registry, ModelRepository)
        assert isinstance(store.services, ServiceRepository)
        assert store.datasets.list_datasets() == [] and store.labels.list() == []
        assert store.registry.list_models() == [] and store.services.list_all() == []

    # -- algorithms -------------------------------------------------------------------------
    def test_algorithm_is_found_by_id_name_or_subscription(self, store: Store) -> None:
        registered = store.register_algorithm(algorithm(
            "resnet", "1.0.0", subscription_id="sub-1", boot_file="train.py", command="python train.py",
            engine={"image": "py3"}, parameters=[{"name": "lr", "default": "0.1", "required": False}],
            inputs=["data_url"], outputs=["train_url"], environments={"A": "1"}, description="d",
        ))

        assert registered.created_at is not None
        assert store.find_algorithm(algorithm_id="resnet-1.0.0") == registered
        assert store.find_algorithm(name="resnet") == registered
        assert store.find_algorithm(subscription_id="sub-1", version="1.0.0") == registered
        assert registered.parameters == [{"name": "lr", "default": "0.1", "required": False}]
        assert store.list_algorithms() == [registered]

    def test_registering_same_name_and_version_replaces_it_keeping_the_id(self, store: Store) -> None:
        first = store.register_algorithm(algorithm("resnet", "1.0.0", description="old"))

        replaced = store.register_algorithm(
            AlgorithmRecord(id="another-id", name="resnet", version="1.0.0", code_dir="/new", description="new")
        )

        assert replaced.id == first.id
        assert (replaced.code_dir, replaced.description) == ("/new", "new")
        assert store.list_algorithms() == [replaced]

    def test_highest_version_is_chosen_when_none_is_asked(self, store: Store) -> None:
        store.register_algorithm(algorithm("resnet", "1.9.0", subscription_id="sub"))
        store.register_algorithm(algorithm("resnet", "1.10.0", subscription_id="sub"))
        store.register_algorithm(algorithm("resnet", "1.9.0", subscription_id="sub", description="re-registered"))

        assert store.find_algorithm(name="resnet").version == "1.10.0"
        assert store.find_algorithm(subscription_id="sub").version == "1.10.0"
        assert store.find_algorithm(name="resnet", version="1.9.0").description == "re-registered"
        assert [a.version for a in store.list_algorithms()] == ["1.9.0", "1.10.0"]

    def test_missing_algorithm_error_names_what_was_asked(self, store: Store) -> None:
        store.register_algorithm(algorithm("resnet", "1.0.0"))
        with pytest.raises(NotFoundError, match=r"no algorithm with name='resnet', version='2\.0\.0'"):
            store.find_algorithm(name="resnet", version="2.0.0")
        with pytest.raises(NotFoundError, match="no algorithm with subscription_id='sub-x'"):
            store.find_algorithm(subscription_id="sub-x")
        with pytest.raises(NotFoundError, match="no algorithm with algorithm_id='x'"):
            store.find_algorithm(algorithm_id="x")
        with pytest.raises(TypeError, match="needs algorithm_id, name or subscription_id"):
            store.find_algorithm(version="1.0.0")

    # -- run filters ------------------------------------------------------------------------
    def test_runs_filter_by_creation_window_and_origin(self, store: Store) -> None:
        from datetime import datetime, timedelta, timezone

        from sqlalchemy import update

        from mloop.store.models import Run

        git = [make_run(store, origin={"kind": "git", "trigger": "main-push", "commit": c})
               for c in ("abc123", "abd999", "50%_off")]
        sched = make_run(store, origin={"kind": "schedule", "schedule": "nightly"})
        plain = make_run(store)
        day = datetime(2026, 11, 30, tzinfo=timezone.utc)
        with store.db.session(write=True) as session:  # type: ignore[attr-defined]
            for i, run in enumerate([*git, sched, plain]):
                session.execute(update(Run).where(Run.id == run.id).values(created_at=day + timedelta(days=i)))

        def ids(**kw: object) -> list[str]:
            return [r.id for r in store.list_runs(limit=50, **kw)]  # type: ignore[arg-type]

        assert ids(origin={"kind": "git"}) == [r.id for r in reversed(git)]
        assert ids(origin={"kind": "git", "commit": "ab*"}) == [git[1].id, git[0].id]
        assert ids(origin={"commit": "abc123"}) == [git[0].id]
        assert ids(origin={"commit": "50%*"}) == [git[2].id]  # % and _ are literal in a prefix
        assert ids(origin={"commit": "5*"}) == [git[2].id]
        assert ids(origin={"commit": "_*"}) == []
        assert ids(origin={"trigger": "main-push", "kind": "schedule"}) == []
        assert ids(since=day + timedelta(days=1), until=day + timedelta(days=3)) == [git[2].id, git[1].id]
        assert ids(since=day + timedelta(days=4)) == [plain.id]
        assert ids(until=day + timedelta(days=1), origin={"kind": "git"}) == [git[0].id]
        assert ids(origin={"kind": "schedule"}, before=sched.id) == []

    def test_algorithm_id_of_another_algorithm_is_refused(self, store: Store) -> None:
        store.register_algorithm(algorithm("resnet", "1.0.0"))
        clash = AlgorithmRecord(id="resnet-1.0.0", name="vgg", version="1.0.0", code_dir="/c")
        with pytest.raises(StoreError, match="already belongs to resnet 1.0.0"):
            store.register_algorithm(clash)


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SQLStore]:
        with open_store(f"sqlite:///{tmp_path / 'mloop.db'}") as store:
            yield store

    def test_connections_use_wal_foreign_keys_and_busy_timeout(self, store: SQLStore) -> None:
        with store.engine.connect() as connection:
            pragmas = {name: connection.execute(text(f"PRAGMA {name}")).scalar()
                       for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")}
        assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 30_000, "synchronous": 1}


@pytest.mark.postgres
class TestPostgresStore(StoreContract):
    @pytest.fixture
    def store(self, pg_url: str) -> Iterator[SQLStore]:
        with open_store(pg_url) as store:
            yield store


def test_in_memory_sqlite_store_works() -> None:
    with open_store("sqlite://") as store:
        run = make_run(store)
        assert store.transition_run(run.id, "running")
        assert store.get_run(run.id).status == "running"


# Each writer process transitions its own step back and forth; with a deferred BEGIN the
# two would soon fail with "database is locked".
_WRITER = textwrap.dedent("""
    import pathlib, sys, time
    from mloop.store import open_store
    url, run_id, step, go, n = sys.argv[1:6]
    store = open_store(url)
    while not pathlib.Path(go).exists():
        time.sleep(0.005)
    for i in range(int(n)):
        assert store.transition_step(run_id, step, "running" if i % 2 == 0 else "pending")
        if i % 10 == 0:
            store.update_run(run_id, message=f"{step} {i}")
    store.close()
""")


def test_two_processes_write_the_same_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mloop.db'}"
    with open_store(url) as store:
        run = make_run(store)
    go = tmp_path / "go"
    writes = 200
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, url, run.id, step, str(go), str(writes)],
                         env=env, stderr=subprocess.PIPE, text=True)
        for step in ("prepare", "train")
    ]
    time.sleep(1.0)  # let both import mloop and open the store, so they start together
    go.touch()
    errors = [writer.communicate(timeout=120)[1] for writer in writers]

    assert [writer.returncode for writer in writers] == [0, 0], errors
    with open_store(url) as store:
        events = store.list_events(run.id)
    assert len(events) == 2 * writes
    assert {e.step_name for e in events} == {"prepare", "train"}
