"""BaseAlgorithm with both boot_file and command."""
# expect: algorithm: with code_dir give exactly one of boot_file and command
# problems: 1
# fields: step=train
from mloop import workflow as wf

train = wf.steps.JobStep(
    name="train",
    algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py", command="python train.py"),
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
)

workflow = wf.Workflow(name="boot-and-command", desc="boot_file and command", steps=[train])
