"""An INT placeholder whose default is the string "3"."""
# expect: parameters[epochs]: default '3' (str) is not of type INT
# problems: 1
# fields: placeholder=epochs
from mloop import workflow as wf

epochs = wf.Placeholder(name="epochs", placeholder_type=wf.PlaceholderType.INT, default="3")
train = wf.steps.JobStep(
    name="train",
    algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py",
                               parameters=[wf.AlgorithmParameters(name="epochs", value=epochs)]),
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
)

workflow = wf.Workflow(name="int-default", desc="INT default given as a string", steps=[train])
