"""A step name has at most 64 characters (this one has 65)."""
# expect: is 65 characters long; at most 64 are allowed
# problems: 1
from mloop import workflow as wf

train = wf.steps.JobStep(
    name="t" * 65,
    algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py"),
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
)

workflow = wf.Workflow(name="long-name", desc="65-character step name", steps=[train])
