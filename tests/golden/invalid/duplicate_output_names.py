"""Two outputs of one step share a name."""
# expect: steps[train].outputs[train_url]: output name 'train_url' is used twice in step 'train'
# problems: 1
# fields: step=train input=train_url
from mloop import workflow as wf

train = wf.steps.JobStep(
    name="train",
    algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py"),
    outputs=[
        wf.steps.JobOutput(name="train_url", obs_config=wf.data.OBSOutputConfig(obs_path="/bucket/a/")),
        wf.steps.JobOutput(name="train_url", obs_config=wf.data.OBSOutputConfig(obs_path="/bucket/b/")),
    ],
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
)

workflow = wf.Workflow(name="dup-outputs", desc="two outputs named train_url", steps=[train])
