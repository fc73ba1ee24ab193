"""Spark word count: an MrsJobStep (ModelArts' MapReduce Spark job) run by mloop.

``wordcount`` runs ``wordcount.py`` with ``spark-submit``: in ``local[*]`` on this machine
(cluster ``mrs-demo`` is not configured), or on the Spark master ``spark_clusters`` gives
that id in ``mloop.toml``::

    [mloop.spark_clusters.mrs-demo]
    master = "spark://spark-master:7077"
    conf = { "spark.executor.memory" = "2g" }

Its input is the ``text`` folder (``data/`` here), its output ``counts`` goes to the artifact
store (``obs://spark-wordcount/<run id>/counts/``, under ``obs_root``) with the word counts
and ``metrics.json`` (``words``, ``distinct_words``: the step's metrics). Needs
``pip install 'mloop[spark]'`` and Java 17::

    mloop run examples/spark_wordcount/workflow.py
    mloop run examples/spark_wordcount/workflow.py -p app_args=--min_count=2
    mloop logs RUN wordcount
"""

from pathlib import Path

from mloop import workflow as wf

HERE = Path(__file__).resolve().parent

output = wf.data.OutputStorage(name="output", default="obs://spark-wordcount/", description="per-run outputs")

wordcount = wf.steps.MrsJobStep(
    name="wordcount",
    title="count the words of the text files with Spark",
    inputs=[wf.steps.MrsJobInput(name="text", data=wf.data.OBSPath(obs_path=str(HERE / "data") + "/"))],
    outputs=[wf.steps.MrsJobOutput(name="counts", obs_config=wf.data.OBSOutputConfig(
        obs_path=output.join("counts/"), metric_file="metrics.json"))],
    mrs_algorithm=wf.steps.MrsJobAlgorithm(
        boot_file=str(HERE / "wordcount.py"),
        parameters=[
            wf.AlgorithmParameters(name="run_args", value="--driver-memory=1g"),
            wf.AlgorithmParameters(name="app_args", value=wf.Placeholder(
                name="app_args", placeholder_type=wf.PlaceholderType.STR, default="--min_count=1",
                description="arguments of wordcount.py, comma-separated")),
            wf.AlgorithmParameters(name="properties", value="{'spark.sql.shuffle.partitions': '4'}"),
        ],
    ),
    cluster_id="mrs-demo",
)

workflow = wf.Workflow(name="spark-wordcount", desc="word count as a PySpark MrsJobStep",
                       steps=[wordcount], storages=[output])
