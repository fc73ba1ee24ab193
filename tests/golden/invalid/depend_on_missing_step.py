"""A step depends on a step that is not part of the workflow."""
# expect: steps[train].depend_steps: depends on 'prepare', which is not a step of this workflow
# expect: add that step to Workflow(steps=...)
# problems: 1
# fields: step=train
from mloop import workflow as wf


def job(name: str, depend_steps=None) -> wf.steps.JobStep:
    return wf.steps.JobStep(
        name=name,
        algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py"),
        spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
        depend_steps=depend_steps,
    )


prepare = job("prepare")
train = job("train", depend_steps=prepare)

workflow = wf.Workflow(name="missing-dep", desc="prepare is not in steps", steps=[train])
