"""wf.Algorithm(None): a registered algorithm without an id (ModelArts raises ValueError)."""
# expect: algorithm: an algorithm needs exactly one of: id; subscription_id + item_version_id; code_dir with boot_file or command
# problems: 1
# fields: step=train
from mloop import workflow as wf

train = wf.steps.JobStep(
    name="train",
    algorithm=wf.Algorithm(None),
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
)

workflow = wf.Workflow(name="no-algorithm-id", desc="Algorithm(None)", steps=[train])
