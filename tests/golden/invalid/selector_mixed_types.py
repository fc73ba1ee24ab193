"""DataConsumptionSelector over outputs of different data types (obs and metrics)."""
# expect: steps[register].inputs[model_input].data_list[1]: all outputs must have the same data type
# expect: 'metrics' differs from 'obs'
# problems: 1
# fields: step=register input=model_input
from mloop import workflow as wf

train = wf.steps.JobStep(
    name="train",
    algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py"),
    outputs=[
        wf.steps.JobOutput(name="train_url", obs_config=wf.data.OBSOutputConfig(obs_path="/bucket/model/")),
        wf.steps.JobOutput(name="metrics",
                           metrics_config=wf.data.MetricsConfig(metric_files="/bucket/model/metrics.json")),
    ],
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
)
register = wf.steps.ModelStep(
    name="register",
    inputs=wf.steps.ModelInput(name="model_input", data=wf.data.DataConsumptionSelector(
        data_list=[train.outputs["train_url"].as_input(), train.outputs["metrics"].as_input()])),
    outputs=wf.steps.ModelOutput(name="model_output", model_config=wf.steps.ModelConfig(model_name="digits")),
    depend_steps=train,
)

workflow = wf.Workflow(name="mixed-selector", desc="obs and metrics in one selector", steps=[train, register])
