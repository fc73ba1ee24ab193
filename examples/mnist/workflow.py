"""MNIST continuous training: prepare data, version it as a dataset, release a train/eval split,
train a CNN on the release, gate on test accuracy, register the model and serve it online.

Steps::

    prepare_data ──► create_dataset ──► release ──► train ──► accuracy_gate
                                                                    │
      ┌─────────────────────────────────────────────────────────────┘
      ├─ accuracy >= min_accuracy ─► accept    (writes summary.json)
      │                            └► register ──► deploy
      └─ otherwise ────────────────► reject    (exits 1: the run fails)

* ``prepare_data`` writes 1,797 digit images (built from scikit-learn's digits, since
  nothing can be downloaded; see README.md) as ``<run>/data/<digit>/<n>.png``;
* ``create_dataset`` (a CreateDatasetStep) versions that folder as dataset ``dataset_name``
  (format "ModelArts imageNet 1.0": one sub-folder per class): the first run makes ``v1``,
  a later run with the same images makes no new version, changed images make the next one;
* ``release`` (a ReleaseDatasetStep) releases it with a deterministic train/eval split,
  stratified by digit (``train_ratio`` of each digit's images to train); an unchanged
  re-run reuses the release it made before;
* ``train`` gets the release as ``--data_url`` (``train/<digit>/*.png``, ``eval/<digit>/*.png``,
  ``manifest.json``), trains the CNN of ``code/net.py`` on ``train/`` and tests it on ``eval/``;
  it writes ``model.pt`` (TorchScript), ``model_state.pt``, ``net.py``, ``config.json`` and
  ``metrics.json`` into ``<run>/model/``; its ``metrics`` output points at that ``metrics.json``;
* ``accuracy_gate`` reads the ``accuracy`` float metric and compares it with the
  ``min_accuracy`` parameter; the losing branch is skipped;
* ``register`` (a ModelStep) registers the model folder as the next version of model
  ``model_name`` (with the run, the metrics, the dataset version it was trained on, e.g.
  ``mnist-digits:v2``, and a content hash);
* ``deploy`` (a ServiceStep) serves that version as the local service ``service_name``: the
  first run starts it on a free port, later runs switch it to their version with no failed
  requests (``mloop service list`` shows its URL; ``POST <url>/predict`` a PNG or JSON).

Run it from the repository root (any working directory works: code paths are absolute)::

    mloop run examples/mnist/workflow.py -p epochs=5
    mloop run examples/mnist/workflow.py -p min_accuracy=0.99 -p lr=0.0005
    mloop dataset versions mnist-digits      # v1 (the images), v2 (its release)
    mloop model show mnist                   # ... dataset mnist-digits:v2

Parameters: ``epochs`` (int, 8), ``lr`` (float, 0.001), ``batch_size`` (int, 32), ``seed``
(int, 0: training), ``dataset_name`` (str, "mnist-digits"), ``train_ratio`` (str, "0.8": the
release's train share), ``min_accuracy`` (float, 0.95), ``model_name`` (str, "mnist"),
``service_name`` (str, "mnist"). The scripts run without mloop too; see README.md.
"""

from pathlib import Path

from mloop import workflow as wf

HERE = Path(__file__).resolve().parent
CODE = str(HERE / "code")

storage = wf.data.OutputStorage(name="mnist", description="per-run outputs")

seed = wf.Placeholder(name="seed", placeholder_type=wf.PlaceholderType.INT, default=0,
                      description="random seed of training (weights, shuffling, dropout)")
small = wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"}))

prepare = wf.steps.JobStep(
    name="prepare_data",
    title="write the digit images, one folder per class",
    algorithm=wf.BaseAlgorithm(
        code_dir=CODE,
        boot_file="prepare_data.py",
        parameters=[wf.AlgorithmParameters(name="format", value="png")],
    ),
    outputs=wf.steps.JobOutput(name="output_url", obs_config=wf.data.OBSOutputConfig(obs_path=storage.join("data/"))),
    spec=small,
)

dataset_name = wf.Placeholder(name="dataset_name", placeholder_type=wf.PlaceholderType.STR, default="mnist-digits",
                              description="dataset the images are versioned in: a new version only when they change")

create_dataset = wf.steps.CreateDatasetStep(
    name="create_dataset",
    title="version the images as a dataset",
    inputs=wf.steps.CreateDatasetInput(name="images", data=prepare.outputs["output_url"].as_input()),
    outputs=wf.steps.CreateDatasetOutput(name="dataset",
                                         config=wf.data.OBSOutputConfig(obs_path=storage.join("dataset/"))),
    properties=wf.steps.DatasetProperties(
        dataset_name=dataset_name,
        data_type=wf.data.DataTypeEnum.IMAGE,
        import_config=wf.steps.ImportConfig(annotation_format_config=[
            wf.steps.AnnotationFormatConfig(format_name=wf.steps.AnnotationFormatEnum.MA_IMAGENET_V1,  # class folders
                                            scene=wf.data.LabelTaskTypeEnum.IMAGE_CLASSIFICATION),
        ]),
    ),
    depend_steps=prepare,
)

release = wf.steps.ReleaseDatasetStep(
    name="release",
    title="release a train/eval split",
    inputs=wf.steps.ReleaseDatasetInput(name="dataset", data=create_dataset.outputs["dataset"].as_input()),
    outputs=wf.steps.ReleaseDatasetOutput(
        name="release",
        dataset_version_config=wf.data.DatasetVersionConfig(
            train_evaluate_sample_ratio=wf.Placeholder(
                name="train_ratio", placeholder_type=wf.PlaceholderType.STR, default="0.8",
                description="share of each digit's images in the train split; the rest is the test set"),
            label_task_type=wf.data.LabelTaskTypeEnum.IMAGE_CLASSIFICATION,
        ),
    ),
    depend_steps=create_dataset,
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
    # The release, materialised for the job as train/<digit>/*.png, eval/<digit>/*.png and manifest.json.
    inputs=wf.steps.JobInput(name="data_url", data=release.outputs["release"].as_input()),
    outputs=[
        wf.steps.JobOutput(name="train_url", obs_config=wf.data.OBSOutputConfig(obs_path=storage.join("model/"))),
        wf.steps.JobOutput(
            name="metrics",
            metrics_config=wf.data.MetricsConfig(metric_files=storage.join("model/metrics.json", create_dir=False)),
        ),
    ],
    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.medium"})),
    depend_steps=release,
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
    if_then_steps=["accept", "register"],
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

model_name = wf.Placeholder(name="model_name", placeholder_type=wf.PlaceholderType.STR, default="mnist",
                            description="registered model: every accepted run adds a version")
service_name = wf.Placeholder(name="service_name", placeholder_type=wf.PlaceholderType.STR, default="mnist",
                              description="online service: later runs switch it to their model version")

register = wf.steps.ModelStep(
    name="register",
    title="register the accepted model",
    inputs=wf.steps.ModelInput(name="model_input", data=train.outputs["train_url"].as_input()),
    outputs=wf.steps.ModelOutput(name="model_output",
                                 model_config=wf.steps.ModelConfig(model_name=model_name, model_type="PyTorch")),
    depend_steps=[gate, train],
)

deploy = wf.steps.ServiceStep(
    name="deploy",
    title="serve the model online",
    # The version to serve is filled in from `register` (a delayed placeholder no one has to give).
    inputs=wf.steps.ServiceInput(name="service_input",
                                 data=wf.data.ServiceInputPlaceholder(name="service_model", model_name=model_name)),
    outputs=wf.steps.ServiceOutput(name="service_output",
                                   service_config=wf.steps.ServiceConfig(service_name=service_name)),
    depend_steps=register,
)

workflow = wf.Workflow(
    name="mnist-continuous-training",
    desc="prepare digit images, version and release them as a dataset, train a CNN on the release, accept the "
         "model only if its test accuracy is high enough, register it and serve it online",
    steps=[prepare, create_dataset, release, train, gate, accept, reject, register, deploy],
    storages=[storage],
)
