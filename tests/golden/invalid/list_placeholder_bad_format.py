"""A LIST placeholder's placeholder_format names its element type: str, int, float or bool."""
# expect: parameters[layers]: a LIST placeholder needs placeholder_format str, int, float or bool, not 'dict'
# problems: 1
# fields: placeholder=layers
from mloop import workflow as wf

layers = wf.Placeholder(name="layers", placeholder_type=wf.PlaceholderType.LIST, placeholder_format="dict")
train = wf.steps.JobStep(
    name="train",
    algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py",
                               parameters=[wf.AlgorithmParameters(name="layers", value=layers)]),
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
)

workflow = wf.Workflow(name="list-format", desc="LIST of dict", steps=[train])
