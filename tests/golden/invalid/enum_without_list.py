"""An ENUM placeholder without enum_list."""
# expect: parameters[data_format]: an ENUM placeholder needs a non-empty enum_list
# problems: 1
# fields: placeholder=data_format
from mloop import workflow as wf

data_format = wf.Placeholder(name="data_format", placeholder_type=wf.PlaceholderType.ENUM, default="NCHW")
train = wf.steps.JobStep(
    name="train",
    algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py",
                               parameters=[wf.AlgorithmParameters(name="data_format", value=data_format)]),
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
)

workflow = wf.Workflow(name="enum-no-list", desc="ENUM without enum_list", steps=[train])
