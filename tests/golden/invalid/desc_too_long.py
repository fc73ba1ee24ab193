"""A workflow description has at most 500 characters (this one has 501)."""
# expect: workflow.desc: description is 501 characters; at most 500
# problems: 1
from mloop import workflow as wf

train = wf.steps.JobStep(
    name="train",
    algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py"),
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
)

workflow = wf.Workflow(name="long-desc", desc="d" * 501, steps=[train])
