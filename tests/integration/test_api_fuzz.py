"""The server's OpenAPI schema, fuzzed with schemathesis: every operation is sent generated
requests (valid and invalid ones) with an admin token, against a store holding a released
workflow and a finished run. No request may answer 5xx, and every answer must fit the schema
(errors included: they are declared as :class:`mloop.server.api._errors.ErrorOut`).

The event streams (``/events``, ``/runs/{id}/events``) never end and are left out; the git
webhook is fuzzed too (its signature check refuses everything generated).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

from helpers import write_job, write_workflow  # noqa: E402
from mloop.cli import load_workflow  # noqa: E402
from mloop.config import Settings  # noqa: E402
from mloop.runs.service import create_run, execute_run, release_spec  # noqa: E402
from mloop.server.app import create_app  # noqa: E402
from mloop.services.schedules import create_schedule  # noqa: E402
from mloop.triggers.service import create_trigger  # noqa: E402

pytestmark = pytest.mark.timeout(300)

#: Examples per operation: enough to hit the edges, few enough to keep the test under a minute.
EXAMPLES = int(os.environ.get("MLOOP_FUZZ_EXAMPLES", "25"))
#: Operations that never answer (server-sent events until the client goes away).
STREAMS = {("GET", "/api/v1/events"), ("GET", "/api/v1/runs/{run_id}/events"),
           ("GET", "/api/v1/runs/{run_id}/metrics/stream")}
#: Routes that answer errors in another API's shape (MLflow's ``{"error_code", "message"}``) and do
#: not declare it yet: only "no 5xx" is checked for them.
FOREIGN_ERRORS = ("/api/v1/tracking/",)

FLOW = """
    tick = job("tick")
    workflow = wf.Workflow(name="fuzzed", desc="", steps=[tick])
"""


@pytest.fixture
def fuzzed(tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, dict[str, Any], dict[str, str]]]:
    monkeypatch.chdir(tmp_path)
    write_job(tmp_path / "code", "print('tick')")
    flow = write_workflow(tmp_path, FLOW)
    app = create_app(Settings(home=tmp_path / ".mloop"), background=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        backend = app.state.backend
        token = backend.store.tokens.create("fuzz", "admin")[1]
        spec = load_workflow(str(flow))
        release_spec(backend, spec)
        run = create_run(backend, spec, {})
        execute_run(backend, run.id)
        # Things named like the fuzzer's fixed path parameter, so named routes get past "not found".
        create_schedule(backend, "fuzzed", "0 3 * * *", name="fuzzed")
        create_trigger(backend, "fuzzed", repo_url=str(tmp_path / "repo"), workflow_path="flow.py")
        if hasattr(backend.store, "users"):
            from argon2 import PasswordHasher

            backend.store.users.hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # cheap
            backend.store.users.add("fuzzed", "a fuzzed password", "read")
        client.headers["Authorization"] = f"Bearer {token}"
        yield client, app.openapi(), {"run_id": run.id, "name": "fuzzed"}


def _cases(operation: Any, known: dict[str, str]) -> Any:
    """Valid requests, invalid ones, and valid ones aimed at things that exist (the seeded run,
    the released workflow), so the fuzzer gets past "not found"."""
    from hypothesis import strategies as st
    from schemathesis.generation.modes import GenerationMode

    strategies = [operation.as_strategy(GenerationMode.POSITIVE)]
    try:
        strategies.append(operation.as_strategy(GenerationMode.NEGATIVE))
    except Exception:  # noqa: BLE001 - an operation with nothing to get wrong has no negative cases
        pass
    names = {p.name for p in operation.path_parameters}
    fixed = {k: v for k, v in known.items() if k in names}
    if fixed:
        strategies.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed))
    return st.one_of(strategies)


def test_no_request_answers_5xx_or_off_schema(fuzzed: tuple[TestClient, dict[str, Any], dict[str, str]]) -> None:
    client, raw, known = fuzzed
    schema = schemathesis.openapi.from_dict(raw)
    failures: list[str] = []
    seen: dict[str, set[int]] = {}
    started = time.monotonic()
    # Deletes last: one that removes the seeded run or workflow would leave later operations only 404s.
    operations = sorted((r.ok() for r in schema.get_all_operations()), key=lambda op: op.method.upper() == "DELETE")
    assert len(operations) > 20, [op.label for op in operations]
    for operation in operations:
        if (operation.method.upper(), operation.path) in STREAMS:
            continue

        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=_cases(operation, known))
        def fuzz(case: Any) -> None:
            kwargs = case.as_transport_kwargs(base_url="http://testserver")
            kwargs.pop("cookies", None)
            if isinstance(kwargs.get("data"), (bytes, str)):
                kwargs["content"] = kwargs.pop("data")
            response = client.request(**kwargs)
            seen.setdefault(operation.label, set()).add(response.status_code)
            checks = [not_a_server_error]
            if not operation.path.startswith(FOREIGN_ERRORS):
                checks.append(response_schema_conformance)
            case.validate_response(response, checks=checks)

        try:
            fuzz()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - all operations run; all failures reported
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    elapsed = time.monotonic() - started
    print("\n".join(f"{label}: {sorted(codes)}" for label, codes in seen.items()))
    assert not failures, "\n\n".join(failures)
    assert elapsed < 240, f"fuzzing took {elapsed:.0f}s"
