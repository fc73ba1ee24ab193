"""The services table and its repository (``store.services``) on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from helpers import BOTH_DATABASES, Embedded, database_url, embedded, write_workflow  # noqa: F401

from mloop.errors import ManagedServiceError, NotFoundError
from mloop.store.services import ServiceRepository, check_service_name


@BOTH_DATABASES
class TestServiceRepository:
    def repo(self, embedded: Embedded) -> ServiceRepository:
        return embedded.store.services

    def test_create_get_update_list(self, embedded: Embedded) -> None:
        repo = self.repo(embedded)
        created = repo.create("mnist", host="127.0.0.1", log_path="/tmp/mnist.log", port=8123)
        assert (created.status, created.port, created.restarts, created.model_ref) == ("deploying", 8123, 0, None)
        assert repo.get("mnist") == created and repo.get(created.id) == created
        assert repo.find("nope") is None
        stop_at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
        updated = repo.update(created.id, status="running", model_name="mnist", model_version="2", worker_pid=42,
                              supervisor_started_at=1234.5, config={"options": {"max_batch_size": 8}},
                              stop_at=stop_at)
        assert updated.model_ref == "mnist:2" and updated.worker_pid == 42 and updated.stop_at == stop_at
        assert updated.config == {"options": {"max_batch_size": 8}} and updated.supervisor_started_at == 1234.5
        assert updated.updated_at >= created.updated_at and updated.created_at == created.created_at
        repo.create("服务-1", host="127.0.0.1", log_path="/tmp/x.log")
        assert [s.name for s in repo.list_all()] == sorted(["mnist", "服务-1"])
        assert [s.name for s in repo.list_all(status=["running"])] == ["mnist"]

    def test_latest_deployments_of_every_service_in_one_query(self, embedded: Embedded) -> None:
        from sqlalchemy import event

        repo = self.repo(embedded)
        services = [repo.create(f"s{i}", host="127.0.0.1", log_path=f"/tmp/s{i}.log") for i in range(4)]
        for i, svc in enumerate(services[:3]):  # s3 never deployed
            for v in range(1, 2 + 2 * i):  # s0: 1 deployment, s1: 3, s2: 5
                repo.add_deployment(svc.id, model_name="m", model_version=str(v))
        statements: list[str] = []
        engine = embedded.store.engine  # type: ignore[attr-defined]

        def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
            statements.append(statement)

        event.listen(engine, "before_cursor_execute", seen)
        try:
            latest = repo.latest_deployments(limit=2)
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        assert len([s for s in statements if "service_deployments" in s]) == 1, statements
        assert {repo.get(sid).name: [d.model_version for d in ds] for sid, ds in latest.items()} == \
            {"s0": ["1"], "s1": ["3", "2"], "s2": ["5", "4"]}
        for svc in services[:3]:  # the same as asking service by service
            assert latest[svc.id] == repo.list_deployments(svc.id, 2)

    def test_refusals(self, embedded: Embedded) -> None:
        repo = self.repo(embedded)
        created = repo.create("svc", host="127.0.0.1", log_path="/tmp/svc.log")
        with pytest.raises(ManagedServiceError, match="exists already"):
            repo.create("svc", host="127.0.0.1", log_path="/tmp/svc.log")
        with pytest.raises(ValueError, match="cannot set id"):
            repo.update(created.id, id="other")
        with pytest.raises(ValueError, match="unknown service status"):
            repo.update(created.id, status="sleeping")
        with pytest.raises(NotFoundError, match="no service named 'ghost'") as caught:
            repo.get("ghost")
        assert "known services: svc" in (caught.value.hint or "")
        assert repo.get("svc") == created  # nothing changed by the refused calls

    def test_deployments_newest_first_and_deleted_with_the_service(self, embedded: Embedded) -> None:
        repo = self.repo(embedded)
        svc = repo.create("svc", host="127.0.0.1", log_path="/tmp/svc.log")
        first = repo.add_deployment(svc.id, model_name="m", model_version="1", run_id="r1", step_name="deploy")
        second = repo.add_deployment(svc.id, model_name="m", model_version="2")
        done = repo.finish_deployment(first.id, "succeeded")
        failed = repo.finish_deployment(second.id, "failed", "cannot load")
        assert done.finished_at is not None and failed.message == "cannot load"
        assert [d.model_version for d in repo.list_deployments(svc.id)] == ["2", "1"]
        repo.delete(svc.id)
        assert repo.find("svc") is None and repo.list_deployments(svc.id) == []


@pytest.mark.parametrize("name", ["mnist", "service-1a2b", "a_b", "服务", "x" * 64])
def test_valid_service_names(name: str) -> None:
    assert check_service_name(name) == name


@pytest.mark.parametrize("name", ["", "has space", "a/b", "x" * 65, "dot.ted", "colon:1"])
def test_invalid_service_names(name: str) -> None:
    with pytest.raises(ManagedServiceError, match="invalid service name"):
        check_service_name(name)


STEP_ONLY = """
deploy = wf.steps.ServiceStep(
    name="deploy",
    inputs=wf.steps.ServiceInput(name="service_input", data=wf.data.ServiceInputPlaceholder(
        name="service_model", model_name="echo")),
    outputs=wf.steps.ServiceOutput(name="service_output", service_config=wf.steps.ServiceConfig(service_name="s")))
workflow = wf.Workflow(name="deploy-only", desc="", steps=[deploy])
"""


@pytest.mark.parametrize("value,message", [
    ([{"model_name": "echo", "model_version": "1", "weight": 60},
      {"model_name": "echo", "model_version": "2", "weight": 40}], "2 weighted model versions"),
    ([{"model_name": "other", "model_version": "1"}], "the placeholder only takes model 'echo'"),
    ([{"model_name": "echo"}], "needs model_name and model_version"),
])
def test_service_step_refuses_what_a_local_service_cannot_serve(tmp_path: Path, embedded: Embedded, value: object,
                                                                  message: str) -> None:
    finished = embedded.run(write_workflow(tmp_path, STEP_ONLY), {"service_model": value})
    assert finished.statuses() == {"deploy": "failed"}
    assert message in (finished.steps["deploy"].message or "")
    assert embedded.store.services.list_all() == []  # nothing was created
