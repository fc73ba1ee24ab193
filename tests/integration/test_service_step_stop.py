"""A stop reaches a ServiceStep in the middle of its deploy: the new worker (still loading its
model) is killed, the step and the run are stopped, and the version served before keeps
serving. Real supervisor and worker processes; the run executes in an engine thread while
the test stops it through the run service, as ``mloop stop`` does from another terminal."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator

import httpx
import psutil
import pytest
from helpers import Embedded, database_url, embedded, wait_until, write_job, write_workflow  # noqa: F401

from mloop.runs import execute_run, stop_run
from mloop.serving.manager import service_processes
from mloop.services import serving

pytestmark = pytest.mark.timeout(240)

#: A custom model answering its tag; with --slow=1 it loads until a file appears (it never does).
MAKE_MODEL = """
lines = ["import os, time", "from model_service.model_service import SingleNodeService", "", "",
         "class VersionService(SingleNodeService):",
         "    def __init__(self, model_name, model_path):",
         "        super().__init__(model_name, model_path)"]
if args.slow == "1":
    lines += ["        print('loading slowly', flush=True)",
              "        while not os.path.exists(os.path.join(model_path, 'never')):",
              "            time.sleep(0.1)"]
lines += ["", "    def _inference(self, data):", "        return {'version': '" + args.tag + "'}", ""]
os.makedirs(args.out, exist_ok=True)
with open(os.path.join(args.out, "customize_service.py"), "w") as fh:
    fh.write("\\n".join(lines))
with open(os.path.join(args.out, "config.json"), "w") as fh:
    json.dump({"model_type": "custom"}, fh)
"""

FLOW = """
tag = wf.Placeholder(name="tag", placeholder_type=wf.PlaceholderType.STR, default="v1")
slow = wf.Placeholder(name="slow", placeholder_type=wf.PlaceholderType.STR, default="0")
make = job("make", script="make.py", params={"tag": tag, "slow": slow})
register = wf.steps.ModelStep(
    name="register",
    inputs=wf.steps.ModelInput(name="model_input", data=make.outputs["out"].as_input()),
    outputs=wf.steps.ModelOutput(name="model_output", model_config=wf.steps.ModelConfig(
        model_name="slowecho", model_type="Custom")),
    depend_steps=make)
deploy = wf.steps.ServiceStep(
    name="deploy",
    inputs=wf.steps.ServiceInput(name="service_input", data=wf.data.ServiceInputPlaceholder(
        name="service_model", model_name="slowecho")),
    outputs=wf.steps.ServiceOutput(name="service_output", service_config=wf.steps.ServiceConfig(
        service_name="stop-svc")),
    depend_steps=register)
workflow = wf.Workflow(name="stopping", desc="", steps=[make, register, deploy])
"""


@pytest.fixture
def flow(tmp_path: Path, embedded: Embedded) -> Iterator[Path]:
    write_job(tmp_path / "code", MAKE_MODEL, args=("out", "tag", "slow"), name="make.py")
    yield write_workflow(tmp_path, FLOW)
    for rec in serving.list_services(embedded.backend):
        serving.stop_service(embedded.backend, rec.name, timeout=20)
        assert service_processes(embedded.settings.home_path, rec.name) == []


def _workers(home: Path, service: str) -> list[psutil.Process]:
    return [p for p in service_processes(home, service) if "mloop.serving.worker" in " ".join(p.cmdline())]


@pytest.mark.slow  # two deploys
def test_a_stop_during_a_deploy_stops_it_and_the_old_version_keeps_serving(flow: Path, embedded: Embedded) -> None:
    first = embedded.run(flow)
    assert first.run.status == "succeeded", first.why()
    service = serving.get_service(embedded.backend, "stop-svc")
    assert service.model_ref == "slowecho:1"
    home = embedded.settings.home_path
    serving_worker = {p.pid for p in _workers(home, "stop-svc")}

    run = embedded.create(flow, {"tag": "v2", "slow": "1"})
    engine = threading.Thread(target=execute_run, args=(embedded.backend, run.id), daemon=True)
    engine.start()
    wait_until(lambda: embedded.store.get_step(run.id, "deploy").status == "running"
               and len(_workers(home, "stop-svc")) == 2, 120,
               lambda: f"the slow worker never started: {embedded.store.list_steps(run.id)}")
    loading = {p.pid for p in _workers(home, "stop-svc")} - serving_worker

    stopped = stop_run(embedded.backend, run.id, wait_seconds=60)
    engine.join(60)
    assert not engine.is_alive()
    result = embedded.result(run.id)
    assert stopped.status == "stopped" and result.run.status == "stopped", result.why()
    assert result.steps["deploy"].status == "stopped", result.why()
    wait_until(lambda: all(not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
                           for pid in loading), 30, "the loading worker was not killed")
    after = serving.get_service(embedded.backend, "stop-svc")
    assert after.status == "running" and after.model_ref == "slowecho:1" and after.url == service.url
    assert httpx.post(f"{service.url}/predict", json={}, timeout=30).json()["version"] == "v1"
    last = serving.list_deployments(embedded.backend, "stop-svc")[0]
    assert (last.model_version, last.status) == ("2", "failed") and "stopped on request" in (last.message or "")
    assert "deploy stopped on request" in Path(result.steps["deploy"].log_path or "").read_text()
