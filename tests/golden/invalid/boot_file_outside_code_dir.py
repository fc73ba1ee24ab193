"""boot_file climbs out of code_dir with '..'."""
# expect: algorithm.boot_file: boot_file '../train.py' must lie inside code_dir
# problems: 1
# fields: step=train
from mloop import workflow as wf

train = wf.steps.JobStep(
    name="train",
    algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="../train.py"),
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
)

workflow = wf.Workflow(name="boot-outside", desc="boot_file outside code_dir", steps=[train])
