"""A step consumes an output of a step that is not part of the workflow.

The consumption implies a dependency on that step, so both the edge and the data
reference are reported.
"""
# expect: steps[train].inputs[data_url]: uses an output of step 'prepare', which is not in this workflow
# expect: add the producing step to Workflow(steps=...)
# expect: steps[train].depend_steps: depends on 'prepare', which is not a step of this workflow
# problems: 2
# fields: step=train input=data_url
from mloop import workflow as wf

prepare = wf.steps.JobStep(
    name="prepare",
    algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="prepare.py"),
    outputs=wf.steps.JobOutput(name="prepared", obs_config=wf.data.OBSOutputConfig(obs_path="/bucket/prepared/")),
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
)
train = wf.steps.JobStep(
    name="train",
    algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py"),
    inputs=wf.steps.JobInput(name="data_url", data=prepare.outputs["prepared"].as_input()),
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
    depend_steps=prepare,
)

workflow = wf.Workflow(name="missing-producer", desc="prepare is not in steps", steps=[train])
