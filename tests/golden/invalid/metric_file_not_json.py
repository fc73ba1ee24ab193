"""OBSOutputConfig.metric_file must name a .json file."""
# expect: steps[train].outputs[train_url]: metric_file 'metrics.txt' must end in .json
# problems: 1
# fields: step=train input=train_url
from mloop import workflow as wf

train = wf.steps.JobStep(
    name="train",
    algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py"),
    outputs=wf.steps.JobOutput(name="train_url", obs_config=wf.data.OBSOutputConfig(
        obs_path="/bucket/model/", metric_file="metrics.txt")),
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
)

workflow = wf.Workflow(name="metric-txt", desc="metric_file is not json", steps=[train])
