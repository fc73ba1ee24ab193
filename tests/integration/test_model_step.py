"""ModelStep in real workflow runs: a JobStep (a real process) writes a model folder and its
metrics, the ModelStep registers it, and the version records the run, the step and the
metrics; the next run adds the next version of the same model."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import BOTH_DATABASES, Embedded, database_url, embedded, write_job, write_workflow  # noqa: F401
from mloop.services import models as registry

pytestmark = pytest.mark.timeout(120)

#: A job that writes a real TorchScript model, its class, config.json and a metrics file.
TRAIN = """
import torch, warnings

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(x)

torch.manual_seed(int(args.seed or 0))
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    torch.jit.script(Net()).save(os.path.join(args.out, "model.pt"))
with open(os.path.join(args.out, "config.json"), "w") as fh:
    json.dump({"model_type": "PyTorch", "runtime": "python3.11"}, fh)
write_metrics(args.out, accuracy=float(args.accuracy), loss=0.25)
"""

FLOW = """
model_name = wf.Placeholder(name="model_name", placeholder_type=wf.PlaceholderType.STR, default="digits")
train = job("train", params={"accuracy": wf.Placeholder(name="accuracy", placeholder_type=wf.PlaceholderType.FLOAT,
                                                          default=0.9),
                             "seed": wf.Placeholder(name="seed", placeholder_type=wf.PlaceholderType.INT, default=0)},
            metrics_files=["train/out/metrics.json"])
register = wf.steps.ModelStep(
    name="register",
    inputs=wf.steps.ModelInput(name="model_input", data=train.outputs["out"].as_input()),
    outputs=wf.steps.ModelOutput(name="model_output", model_config=wf.steps.ModelConfig(
        model_name=model_name, model_type="PyTorch", description="nightly", model_metrics='{"f1": 0.8}')),
    policy=wf.steps.StepPolicy(skip_conditions=wf.steps.Condition(
        wf.steps.ConditionTypeEnum.LT, wf.steps.MetricInfo(train.outputs["metrics"].as_input(), "accuracy"), 0.5)),
    depend_steps=train)
workflow = wf.Workflow(name="registering", desc="", steps=[train, register])
"""


@BOTH_DATABASES
class TestModelStep:
    def test_registers_the_job_output_with_run_step_and_metrics(self, tmp_path: Path, embedded: Embedded) -> None:
        write_job(tmp_path / "code", TRAIN, args=("out", "accuracy", "seed"))
        flow = write_workflow(tmp_path, FLOW)

        first = embedded.run(flow)

        assert first.statuses() == {"train": "succeeded", "register": "succeeded"}, first.why()
        rec = registry.get_model_version(embedded.backend, "digits")
        assert (rec.name, rec.version, rec.model_type) == ("digits", "1", "torchscript")
        assert (rec.run_id, rec.step_name) == (first.run.id, "register")
        assert rec.metrics == {"accuracy": 0.9, "loss": 0.25, "f1": 0.8}
        assert rec.description == "nightly" and rec.runtime == "python3.11"
        assert rec.dataset is None  # the job read no dataset
        output = first.steps["register"].outputs["model_output"]
        assert output == {"type": "model", "name": "digits", "version": "1", "model_id": rec.model_id,
                          "model_type": "torchscript", "content_hash": rec.content_hash, "uri": rec.uri}
        assert first.steps["register"].inputs["source_step"] == "train"
        assert registry.get_model_version_by_id(embedded.backend, output["model_id"]) == rec
        assert registry.versions_registered_by_run(embedded.backend, first.run.id) == [rec]
        assert "registered digits:1" in (first.steps["register"].message or "")
        artifacts = embedded.store.list_artifacts(first.run.id, "register")
        assert [(a.kind, a.digest) for a in artifacts] == [("model", rec.content_hash)]

        second = embedded.run(flow, {"accuracy": 0.95, "seed": 1})

        assert second.statuses() == {"train": "succeeded", "register": "succeeded"}, second.why()
        latest = registry.get_model_version(embedded.backend, "digits")
        assert (latest.version, latest.run_id, latest.metrics["accuracy"]) == ("2", second.run.id, 0.95)
        assert latest.content_hash != rec.content_hash  # another seed, other weights



def test_a_failed_gate_skips_registration(tmp_path: Path, embedded: Embedded) -> None:
    write_job(tmp_path / "code", TRAIN, args=("out", "accuracy", "seed"))
    flow = write_workflow(tmp_path, FLOW)

    done = embedded.run(flow, {"accuracy": 0.1})

    assert done.statuses() == {"train": "succeeded", "register": "skipped"}, done.why()
    assert registry.list_models(embedded.backend) == []


def test_obs_path_input_and_default_name(tmp_path: Path, embedded: Embedded) -> None:
    folder = tmp_path / "ready-model"
    folder.mkdir()
    (folder / "customize_service.py").write_text("class Service:\n    def _inference(self, data):\n"
                                                 "        return data\n")
    flow = write_workflow(tmp_path, f"""
        register = wf.steps.ModelStep(
            name="register",
            inputs=wf.steps.ModelInput(name="model_input", data=wf.data.OBSPath(obs_path={str(folder)!r})),
            outputs=wf.steps.ModelOutput(name="model_output", model_config=wf.steps.ModelConfig(
                model_type="Custom", model_version="0.0.1")))
        workflow = wf.Workflow(name="byhand", desc="", steps=[register])
    """)

    done = embedded.run(flow)

    assert done.statuses() == {"register": "succeeded"}, done.why()
    rec = registry.get_model_version(embedded.backend, "byhand-register")
    assert (rec.version, rec.model_type, rec.metrics) == ("0.0.1", "custom", {})

    again = embedded.run(flow)  # the explicit version is taken now: the step fails and says so

    assert again.statuses() == {"register": "failed"}
    assert "already has version '0.0.1'" in (again.steps["register"].message or "")


def test_a_tensorflow_declaration_fails_the_step_with_the_fix(tmp_path: Path, embedded: Embedded) -> None:
    write_job(tmp_path / "code", TRAIN, args=("out", "accuracy", "seed"))
    flow = write_workflow(tmp_path, FLOW.replace('model_type="PyTorch"', 'model_type="TensorFlow"'))

    done = embedded.run(flow)

    assert done.statuses() == {"train": "succeeded", "register": "failed"}, done.why()
    message = done.steps["register"].message or ""
    assert "'TensorFlow' is not supported" in message and "model_type='PyTorch'" in message
    assert registry.list_models(embedded.backend) == []
