"""GT compares numbers; a string literal operand is refused."""
# expect: steps[train].policy.skip_conditions[0].right: operator '>' compares numbers; got 'high'
# problems: 1
# fields: step=train
from mloop import workflow as wf

level = wf.Placeholder(name="level", placeholder_type=wf.PlaceholderType.INT, default=1)
train = wf.steps.JobStep(
    name="train",
    algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py"),
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
    policy=wf.steps.StepPolicy(skip_conditions=wf.steps.Condition(
        condition_type=wf.steps.ConditionTypeEnum.GT, left=level, right="high")),
)

workflow = wf.Workflow(name="gt-string", desc="GT with a string literal", steps=[train])
