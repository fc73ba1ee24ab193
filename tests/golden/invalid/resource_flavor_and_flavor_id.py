"""JobResource with both flavor and flavor_id."""
# expect: spec.resource: give exactly one of flavor and flavor_id
# problems: 1
# fields: step=train
from mloop import workflow as wf

train = wf.steps.JobStep(
    name="train",
    algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py"),
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(
        flavor_id=wf.Placeholder(name="flavor_id", placeholder_type=wf.PlaceholderType.STR, default="cpu.small"),
        flavor=wf.Placeholder(name="flavor", placeholder_type=wf.PlaceholderType.JSON,
                              default={"flavor_id": "cpu.small"}),
    )),
)

workflow = wf.Workflow(name="two-flavors", desc="flavor and flavor_id", steps=[train])
