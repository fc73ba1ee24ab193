"""An ENUM placeholder whose default is not one of its enum_list values."""
# expect: parameters[data_format]: default 'NCWH' is not in enum_list ['NCHW', 'NHWC']
# expect: pick a default from enum_list
# problems: 1
# fields: placeholder=data_format
from mloop import workflow as wf

data_format = wf.Placeholder(name="data_format", placeholder_type=wf.PlaceholderType.ENUM, default="NCWH",
                             enum_list=["NCHW", "NHWC"])
train = wf.steps.JobStep(
    name="train",
    algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py",
                               parameters=[wf.AlgorithmParameters(name="data_format", value=data_format)]),
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
)

workflow = wf.Workflow(name="enum-default", desc="default outside enum_list", steps=[train])
