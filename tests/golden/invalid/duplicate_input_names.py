"""Two inputs of one step share a name."""
# expect: steps[train].inputs[data_url]: input name 'data_url' is used twice in step 'train'
# problems: 1
# fields: step=train input=data_url
from mloop import workflow as wf

train = wf.steps.JobStep(
    name="train",
    algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py"),
    inputs=[
        wf.steps.JobInput(name="data_url", data=wf.data.OBSPath(obs_path="/bucket/a/")),
        wf.steps.JobInput(name="data_url", data=wf.data.OBSPath(obs_path="/bucket/b/")),
    ],
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
)

workflow = wf.Workflow(name="dup-inputs", desc="two inputs named data_url", steps=[train])
