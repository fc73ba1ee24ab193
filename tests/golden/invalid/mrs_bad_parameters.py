"""MrsJobAlgorithm takes only run_args, app_args and properties, each once; properties is a
dict literal; the step needs a cluster_id (ModelArts rejects the same)."""
# expect: steps[wordcount].algorithm.parameters[master]: MrsJobAlgorithm parameter 'master' is not allowed
# expect: use only run_args, app_args, properties
# expect: MrsJobAlgorithm parameter 'app_args' is given twice
# expect: properties 'spark.ui.enabled=false' is not a dict literal
# expect: steps[wordcount].cluster_id: an MrsJobStep needs a cluster_id
# problems: 4
# fields: step=wordcount
from mloop import workflow as wf

wordcount = wf.steps.MrsJobStep(
    name="wordcount",
    inputs=[wf.steps.MrsJobInput(name="text", data=wf.data.OBSPath(obs_path="obs://bucket/text/"))],
    outputs=[wf.steps.MrsJobOutput(name="counts", obs_config=wf.data.OBSOutputConfig(obs_path="obs://bucket/counts/"))],
    mrs_algorithm=wf.steps.MrsJobAlgorithm(boot_file="wordcount.py", parameters=[
        wf.AlgorithmParameters(name="master", value="local[2]"),
        wf.AlgorithmParameters(name="app_args", value="--min=2"),
        wf.AlgorithmParameters(name="app_args", value="--min=3"),
        wf.AlgorithmParameters(name="properties", value="spark.ui.enabled=false"),
    ]),
    cluster_id="",
)

workflow = wf.Workflow(name="bad-mrs", desc="MrsJobAlgorithm parameters", steps=[wordcount])
