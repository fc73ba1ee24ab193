"""A ConditionStep branches to a step name that is not in the workflow."""
# expect: steps[gate].if_then_steps: 'deploy' is not a step of this workflow
# problems: 1
# fields: step=gate
from mloop import workflow as wf

go = wf.Placeholder(name="go", placeholder_type=wf.PlaceholderType.BOOL, default=True)
gate = wf.steps.ConditionStep(
    name="gate",
    conditions=wf.steps.Condition(condition_type=wf.steps.ConditionTypeEnum.EQ, left=go, right=True),
    if_then_steps=["deploy"],
    else_then_steps=["train"],
)
train = wf.steps.JobStep(
    name="train",
    algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py"),
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
    depend_steps=gate,
)

workflow = wf.Workflow(name="unknown-branch", desc="if_then_steps names a missing step", steps=[gate, train])
