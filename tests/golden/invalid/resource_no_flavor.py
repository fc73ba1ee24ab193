"""JobResource with neither flavor nor flavor_id."""
# expect: spec.resource: no resource flavor given
# problems: 1
# fields: step=train
from mloop import workflow as wf

train = wf.steps.JobStep(
    name="train",
    algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py"),
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource()),
)

workflow = wf.Workflow(name="no-flavor", desc="no flavor at all", steps=[train])
