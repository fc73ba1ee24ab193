"""Two different Placeholder objects share the name 'epochs' (INT 3 vs INT 5)."""
# expect: placeholder 'epochs' is declared twice with different definitions
# expect: they differ in: default
# expect: placeholder names are global
# problems: 1
# fields: placeholder=epochs step=train_b
from mloop import workflow as wf


def job(name: str, epochs_default: int) -> wf.steps.JobStep:
    epochs = wf.Placeholder(name="epochs", placeholder_type=wf.PlaceholderType.INT, default=epochs_default)
    return wf.steps.JobStep(
        name=name,
        algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py",
                                   parameters=[wf.AlgorithmParameters(name="epochs", value=epochs)]),
        spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
    )


workflow = wf.Workflow(name="redefined", desc="epochs declared twice", steps=[job("train_a", 3), job("train_b", 5)])
