"""A ConditionStep may not list itself as a branch."""
# expect: steps[gate].else_then_steps: a condition step cannot branch to itself
# problems: 1
# fields: step=gate
from mloop import workflow as wf

go = wf.Placeholder(name="go", placeholder_type=wf.PlaceholderType.BOOL, default=True)
train = wf.steps.JobStep(
    name="train",
    algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py"),
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
)
gate = wf.steps.ConditionStep(
    name="gate",
    conditions=[wf.steps.Condition(condition_type=wf.steps.ConditionTypeEnum.EQ, left=go, right=True)],
    if_then_steps=train,
    else_then_steps="gate",
)
train.depend_steps.append(gate)

workflow = wf.Workflow(name="self-branch", desc="gate branches to gate", steps=[gate, train])
