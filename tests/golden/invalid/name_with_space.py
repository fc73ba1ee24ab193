"""A step name may not contain a space."""
# expect: steps[my train]: step name 'my train' is not allowed
# problems: 1
# fields: step=my train
from mloop import workflow as wf

train = wf.steps.JobStep(
    name="my train",
    algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py"),
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
)

workflow = wf.Workflow(name="bad-name", desc="step name has a space", steps=[train])
