"""OBSPlaceholder object_type must be 'file' or 'directory', not 'folder'."""
# expect: data_requirements[raw_data]: object_type must be 'file' or 'directory', not 'folder'
# problems: 1
# fields: placeholder=raw_data
from mloop import workflow as wf

train = wf.steps.JobStep(
    name="train",
    algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py"),
    inputs=wf.steps.JobInput(name="data_url", data=wf.data.OBSPlaceholder(name="raw_data", object_type="folder")),
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
)

workflow = wf.Workflow(name="obs-folder", desc="object_type folder", steps=[train])
