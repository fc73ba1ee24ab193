"""CreateDatasetStep takes OBS data only; a dataset placeholder is refused."""
# expect: steps[create].inputs[images]: a create_dataset step cannot take 'dataset' data
# expect: accepted: obs
# problems: 1
# fields: step=create input=images
from mloop import workflow as wf

create = wf.steps.CreateDatasetStep(
    name="create",
    inputs=wf.steps.CreateDatasetInput(name="images", data=wf.data.DatasetPlaceholder(name="existing")),
    outputs=wf.steps.CreateDatasetOutput(name="dataset", config=wf.data.OBSOutputConfig(obs_path="/bucket/ds/")),
    properties=wf.steps.DatasetProperties(dataset_name="digits"),
)

workflow = wf.Workflow(name="wrong-type", desc="dataset into create_dataset", steps=[create])
