"""required=False together with delay=True is refused (as in ModelArts 1.0.0)."""
# expect: parameters[note]: required=False together with delay=True is not allowed
# expect: drop one of the two
# problems: 1
# fields: placeholder=note
from mloop import workflow as wf

note = wf.Placeholder(name="note", placeholder_type=wf.PlaceholderType.STR, delay=True, required=False)
train = wf.steps.JobStep(
    name="train",
    algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py",
                               parameters=[wf.AlgorithmParameters(name="note", value=note)]),
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
)

workflow = wf.Workflow(name="optional-delayed", desc="required=False and delay=True", steps=[train])
