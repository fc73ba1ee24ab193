"""ServiceStep in real workflow runs: a job writes a model folder, a ModelStep registers it, the
ServiceStep deploys it as a managed service (real supervisor and worker processes), and a later
job calls the service through the step's ``access_address`` output variable. The next run
switches the same service to the new version; a model that fails to load fails the step with
the loader's error and leaves the previous version serving."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import httpx
import pytest
from helpers import Embedded, database_url, embedded, write_job, write_workflow  # noqa: F401

from mloop.serving.manager import service_processes
from mloop.services import serving

pytestmark = pytest.mark.timeout(240)

#: Writes a customize_service.py model answering {"version": <tag>, "echo": <request>}.
MAKE_MODEL = """
lines = ["from model_service.model_service import SingleNodeService", "", "",
         "class VersionService(SingleNodeService):"]
if args.broken == "1":
    lines += ["    def __init__(self, model_name, model_path):",
              "        raise RuntimeError('the weights of " + args.tag + " are corrupt')", ""]
lines += ["    def _inference(self, data):", "        return {'version': '" + args.tag + "', 'echo': data}", ""]
os.makedirs(args.out, exist_ok=True)
with open(os.path.join(args.out, "customize_service.py"), "w") as fh:
    fh.write("\\n".join(lines))
with open(os.path.join(args.out, "config.json"), "w") as fh:
    json.dump({"model_type": "custom"}, fh)
"""

#: Calls the service at --address and writes what it answered.
CALL = """
import urllib.request
request = urllib.request.Request(args.address.rstrip("/") + "/predict", data=json.dumps({"from": "job"}).encode(),
                                 headers={"Content-Type": "application/json"})
answer = json.loads(urllib.request.urlopen(request, timeout=30).read())
os.makedirs(args.out, exist_ok=True)
with open(os.path.join(args.out, "answer.json"), "w") as fh:
    json.dump({"address": args.address, "answer": answer}, fh)
"""

FLOW = """
tag = wf.Placeholder(name="tag", placeholder_type=wf.PlaceholderType.STR, default="v1")
broken = wf.Placeholder(name="broken", placeholder_type=wf.PlaceholderType.STR, default="0")
model_name = wf.Placeholder(name="model_name", placeholder_type=wf.PlaceholderType.STR, default="echo")
make = job("make", script="make.py", params={"tag": tag, "broken": broken})
register = wf.steps.ModelStep(
    name="register",
    inputs=wf.steps.ModelInput(name="model_input", data=make.outputs["out"].as_input()),
    outputs=wf.steps.ModelOutput(name="model_output", model_config=wf.steps.ModelConfig(
        model_name=model_name, model_type="Custom")),
    depend_steps=make)
deploy = wf.steps.ServiceStep(
    name="deploy",
    inputs=wf.steps.ServiceInput(name="service_input", data=wf.data.ServiceInputPlaceholder(
        name="service_model", model_name=model_name)),
    outputs=wf.steps.ServiceOutput(name="service_output", service_config=wf.steps.ServiceConfig(
        service_name="flow-svc", envs={"SERVICE_ENV": "1"})),
    depend_steps=register)
call = job("call", script="call.py",
           params={"address": deploy.outputs["service_output"].get_output_variable("access_address")},
           depend=deploy)
workflow = wf.Workflow(name="deploying", desc="", steps=[make, register, deploy, call])
"""


@pytest.fixture
def flow(tmp_path: Path, embedded: Embedded) -> Iterator[Path]:
    write_job(tmp_path / "code", MAKE_MODEL, args=("out", "tag", "broken"), name="make.py")
    write_job(tmp_path / "code", CALL, args=("out", "address"), name="call.py")
    yield write_workflow(tmp_path, FLOW)
    for rec in serving.list_services(embedded.backend):
        serving.stop_service(embedded.backend, rec.name, timeout=20)
        assert service_processes(embedded.settings.home_path, rec.name) == []


@pytest.mark.slow  # three workflow runs, three deploys
def test_deploys_then_switches_then_keeps_serving_when_a_version_fails(flow: Path, embedded: Embedded,
                                                                       tmp_path: Path) -> None:
    import json

    first = embedded.run(flow)
    assert first.statuses() == {s: "succeeded" for s in ("make", "register", "deploy", "call")}, first.why()
    service = serving.get_service(embedded.backend, "flow-svc")
    assert service.status == "running" and service.model_ref == "echo:1"
    assert (service.run_id, service.step_name) == (first.run.id, "deploy")
    output = first.steps["deploy"].outputs["service_output"]
    assert output["service_id"] == service.id and output["service_name"] == "flow-svc"
    assert output["variables"] == {"access_address": service.url, "cluster_inner_access_address": service.url}
    assert first.run.params["service_model"][0]["model_version"] == "1"  # derived from the ModelStep
    called = json.loads((tmp_path / "out" / first.run.id / "call" / "out" / "answer.json").read_text())
    assert called == {"address": service.url, "answer": {"version": "v1", "echo": {"from": "job"}}}

    second = embedded.run(flow, {"tag": "v2"})
    assert second.statuses()["deploy"] == "succeeded", second.why()
    assert "echo:2 switched from echo:1" in (second.steps["deploy"].message or "")
    switched = serving.get_service(embedded.backend, "flow-svc")
    assert switched.model_ref == "echo:2" and switched.url == service.url
    assert httpx.post(f"{service.url}/predict", json={}, timeout=30).json()["version"] == "v2"

    third = embedded.run(flow, {"tag": "v3", "broken": "1"})
    assert third.run.status == "failed" and third.statuses()["register"] == "succeeded", third.why()
    assert third.statuses()["deploy"] == "failed" and third.statuses()["call"] != "succeeded"
    message = third.steps["deploy"].message or ""
    assert "the weights of v3 are corrupt" in message and "echo:2 keeps serving" in message
    assert serving.get_service(embedded.backend, "flow-svc").model_ref == "echo:2"
    assert httpx.post(f"{service.url}/predict", json={}, timeout=30).json()["version"] == "v2"
    assert "deploy failed" in Path(third.steps["deploy"].log_path or "").read_text()
