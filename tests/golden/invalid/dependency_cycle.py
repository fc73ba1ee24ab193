"""a depends on b and b depends on a (through depend_steps only)."""
# expect: dependency cycle: a -> b -> a
# expect: remove one of these depend_steps
# problems: 1
# fields: step=a
from mloop import workflow as wf


def job(name: str, depend_steps=None) -> wf.steps.JobStep:
    return wf.steps.JobStep(
        name=name,
        algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py"),
        spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
        depend_steps=depend_steps,
    )


a = job("a")
b = job("b", depend_steps=[a])
a.depend_steps.append(b)  # closes the loop a -> b -> a

workflow = wf.Workflow(name="cycle", desc="a and b depend on each other", steps=[a, b])
