"""MNIST continuous training: prepare data, train a CNN, gate on test accuracy.

Steps::

    prepare_data ──► train ──► accuracy_gate ──┬─ accuracy >= min_accuracy ─► accept   (writes summary.json)
                                               └─ otherwise ────────────────► reject   (exits 1: the run fails)

* ``prepare_data`` writes the four MNIST IDX files (built from scikit-learn's digits,
  since nothing can be downloaded; see README.md) into ``<run>/data/``;
* ``train`` trains the CNN of ``code/net.py`` and writes ``model.pt`` (TorchScript),
  ``model_state.pt``, ``net.py``, ``config.json`` and ``metrics.json`` into ``<run>/model/``;
  its ``metrics`` output points at that ``metrics.json``;
* ``accuracy_gate`` reads the ``accuracy`` float metric and compares it with the
  ``min_accuracy`` parameter; the losing branch is skipped.

Run it from the repository root (any working directory works: code paths are absolute)::

    mloop run examples/mnist/workflow.py -p epochs=5
    mloop run examples/mnist/workflow.py -p min_accuracy=0.99 -p lr=0.0005

Parameters: ``epochs`` (int, 8), ``lr`` (float, 0.001), ``batch_size`` (int, 32), ``seed``
(int, 0: data split and training), ``min_accuracy`` (float, 0.95). The scripts run
without mloop too; see README.md.
"""

from pathlib import Path

from mloop import workflow as wf

HERE = Path(__file__).resolve().parent
CODE = str(HERE / "code")

storage = wf.data.OutputStorage(name="mnist", description="per-run outputs")

seed = wf.Placeholder(name="seed", placeholder_type=wf.PlaceholderType.INT, default=0,
                      description="random seed of the data split and of training")
small = wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"}))

prepare = wf.steps.JobStep(
    name="prepare_data",
    title="prepare MNIST-format data",
    algorithm=wf.BaseAlgorithm(
        code_dir=CODE,
        boot_file="prepare_data.py",
        parameters=[wf.AlgorithmParameters(name="seed", value=seed)],
    ),
    outputs=wf.steps.JobOutput(name="output_url", obs_config=wf.data.OBSOutputConfig(obs_path=storage.join("data/"))),
    spec=small,
)

train = wf.steps.JobStep(
    name="train",
    title="train the CNN",
    algorithm=wf.BaseAlgorithm(
        code_dir=CODE,
        boot_file="train.py",
        parameters=[
            wf.AlgorithmParameters(
                name="epochs",
                value=wf.Placeholder(name="epochs", placeholder_type=wf.PlaceholderType.INT, default=8,
                                     description="passes over the training set"),
            ),
            wf.AlgorithmParameters(
                name="lr",
                value=wf.Placeholder(name="lr", placeholder_type=wf.PlaceholderType.FLOAT, default=0.001,
                                     description="Adam learning rate"),
            ),
            wf.AlgorithmParameters(
                name="batch_size",
                value=wf.Placeholder(name="batch_size", placeholder_type=wf.PlaceholderType.INT, default=32,
                                     description="training batch size"),
            ),
            wf.AlgorithmParameters(name="seed", value=seed),
        ],
    ),
    inputs=wf.steps.JobInput(name="data_url", data=prepare.outputs["output_url"].as_input()),
    outputs=[
        wf.steps.JobOutput(name="train_url", obs_config=wf.data.OBSOutputConfig(obs_path=storage.join("model/"))),
        wf.steps.JobOutput(
            name="metrics",
            metrics_config=wf.data.MetricsConfig(metric_files=storage.join("model/metrics.json", create_dir=False)),
        ),
    ],
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.medium"})),
    depend_steps=prepare,
)

min_accuracy = wf.Placeholder(name="min_accuracy", placeholder_type=wf.PlaceholderType.FLOAT, default=0.95,
                              description="lowest test accuracy that accepts the model")

gate = wf.steps.ConditionStep(
    name="accuracy_gate",
    title="accuracy >= min_accuracy?",
    conditions=wf.steps.Condition(
        condition_type=wf.steps.ConditionTypeEnum.GTE,
        left=wf.steps.MetricInfo(train.outputs["metrics"].as_input(), "accuracy"),
        right=min_accuracy,
    ),
    if_then_steps=["accept"],
    else_then_steps=["reject"],
    depend_steps=train,
)


def report_step(decision: str, **outputs: wf.steps.JobOutput) -> wf.steps.JobStep:
    """A job on one branch of the gate, running code/report.py with --decision."""
    return wf.steps.JobStep(
        name=decision,
        title=f"{decision} the model",
        algorithm=wf.BaseAlgorithm(
            code_dir=CODE,
            boot_file="report.py",
            parameters=[
                wf.AlgorithmParameters(name="decision", value=decision),
                wf.AlgorithmParameters(name="min_accuracy", value=min_accuracy),
            ],
        ),
        inputs=wf.steps.JobInput(name="model_url", data=train.outputs["train_url"].as_input()),
        outputs=list(outputs.values()) or None,
        spec=small,
        depend_steps=[gate, train],
    )


accept = report_step(
    "accept",
    output_url=wf.steps.JobOutput(name="output_url",
                                  obs_config=wf.data.OBSOutputConfig(obs_path=storage.join("report/"))),
)
reject = report_step("reject")

workflow = wf.Workflow(
    name="mnist-continuous-training",
    desc="prepare MNIST-format data, train a CNN, accept the model only if its test accuracy is high enough",
    steps=[prepare, train, gate, accept, reject],
    storages=[storage],
)
