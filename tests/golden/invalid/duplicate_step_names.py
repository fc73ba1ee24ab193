"""Two steps of one workflow share a name."""
# expect: steps[train]: two steps are named 'train'
# expect: step names must be unique in a workflow
# problems: 1
# fields: step=train
from mloop import workflow as wf


def train_step() -> wf.steps.JobStep:
    return wf.steps.JobStep(
        name="train",
        algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py"),
        spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
    )


workflow = wf.Workflow(name="dup-steps", desc="two steps named train", steps=[train_step(), train_step()])
