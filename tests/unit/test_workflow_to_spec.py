"""Workflow.to_spec() is a JSON-serialisable dict; compile() is the model; both round-trip."""

from __future__ import annotations

import json

from mloop import workflow as wf
from mloop.spec import load_spec
from mloop.spec.models import SCHEMA_VERSION, WorkflowSpec


def build() -> wf.Workflow:
    out = wf.data.OutputStorage(name="out")
    train = wf.steps.JobStep(
        name="train",
        algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py", parameters=[
            wf.AlgorithmParameters(name="epochs", value=wf.Placeholder(name="epochs",
                                                                       placeholder_type=wf.PlaceholderType.INT,
                                                                       default=2))]),
        outputs=wf.steps.JobOutput(name="model", obs_config=wf.data.OBSOutputConfig(obs_path=out.join("m/"))),
        spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
    )
    return wf.Workflow(name="w", desc="d", steps=[train])


def test_to_spec_is_a_json_serialisable_dict_with_version_and_steps() -> None:
    spec = build().to_spec()
    assert isinstance(spec, dict)
    assert spec["schema_version"] == SCHEMA_VERSION
    assert [s["name"] for s in spec["steps"]] == ["train"]
    assert json.loads(json.dumps(spec)) == spec


def test_loading_the_dict_gives_the_compiled_model_back() -> None:
    w = build()
    model = load_spec(w.to_spec())
    assert isinstance(model, WorkflowSpec)
    assert model == w.compile()
    assert load_spec(json.dumps(w.to_spec())).model_dump(mode="json") == w.to_spec()


def test_seed_name_wf_workflow_is_the_workflow_class() -> None:
    assert wf.workflow is wf.Workflow
