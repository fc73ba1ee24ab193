"""Several independent mistakes: every one of them is reported, in one error."""
# expect: steps[2prepare]: step name '2prepare' is not allowed
# expect: parameters[epochs]: default '3' (str) is not of type INT
# expect: parameters[mode]: an ENUM placeholder needs a non-empty enum_list
# expect: spec.resource: no resource flavor given
# expect: algorithm: with code_dir give exactly one of boot_file and command
# expect: steps[train].depend_steps: depends on 'ghost', which is not a step of this workflow
# expect: data_requirements[raw]: object_type must be 'file' or 'directory', not 'folder'
# expect: workflow.desc: description is 600 characters; at most 500
# problems: 8
# fields: step=2prepare
# fields: placeholder=epochs
# fields: placeholder=mode
# fields: step=train
# fields: placeholder=raw
from mloop import workflow as wf

prepare = wf.steps.JobStep(
    name="2prepare",
    algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="prepare.py"),
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
)
ghost = wf.steps.JobStep(
    name="ghost",
    algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="ghost.py"),
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
)
train = wf.steps.JobStep(
    name="train",
    algorithm=wf.BaseAlgorithm(
        code_dir="./code", boot_file="train.py", command="python train.py",
        parameters=[
            wf.AlgorithmParameters(name="epochs", value=wf.Placeholder(
                name="epochs", placeholder_type=wf.PlaceholderType.INT, default="3")),
            wf.AlgorithmParameters(name="mode", value=wf.Placeholder(
                name="mode", placeholder_type=wf.PlaceholderType.ENUM)),
        ],
    ),
    inputs=wf.steps.JobInput(name="data_url", data=wf.data.OBSPlaceholder(name="raw", object_type="folder")),
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource()),
    depend_steps=[prepare, ghost],
)

workflow = wf.Workflow(name="many-problems", desc="x" * 600, steps=[prepare, train])
