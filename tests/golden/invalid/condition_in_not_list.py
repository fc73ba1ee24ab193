"""IN needs a list (or a reference to one) on the right."""
# expect: steps[gate].conditions[0].right: IN needs a list on the right
# problems: 1
# fields: step=gate
from mloop import workflow as wf

mode = wf.Placeholder(name="mode", placeholder_type=wf.PlaceholderType.STR, default="fast")
train = wf.steps.JobStep(
    name="train",
    algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py"),
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
)
gate = wf.steps.ConditionStep(
    name="gate",
    conditions=wf.steps.Condition(condition_type=wf.steps.ConditionTypeEnum.IN, left=mode, right="fast"),
    if_then_steps=[train],
)
train.depend_steps.append(gate)

workflow = wf.Workflow(name="in-not-list", desc="IN with a str on the right", steps=[gate, train])
