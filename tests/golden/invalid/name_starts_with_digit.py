"""A step name must start with a letter."""
# expect: steps[1train]: step name '1train' is not allowed
# expect: start with a letter
# problems: 1
# fields: step=1train
from mloop import workflow as wf

train = wf.steps.JobStep(
    name="1train",
    algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py"),
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
)

workflow = wf.Workflow(name="bad-name", desc="step name starts with a digit", steps=[train])
