"""Per-step overhead of the Ray executor against the local executor, on the same fan-out.

A workflow of ``--steps`` independent trivial jobs (``noop.py``: ``import sys``) on a
0.1-CPU flavor, run through the service functions (``open_backend`` on a fresh SQLite home,
``create_run``, ``execute_run``), once with the local executor and once with the Ray
executor on a local cluster this script starts (a head on a free port, stopped by PID).
Figure: ``ray_overhead_ms_per_step`` = (Ray wall - local wall) / steps; the issue's target
is <= 15 ms.

Run: ``.venv/bin/python benchmarks/ray_fanout.py --steps 200``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))

FLOW = '''
from pathlib import Path
from mloop import workflow as wf
HERE = Path(__file__).resolve().parent
algo = wf.BaseAlgorithm(code_dir=str(HERE / "code"), boot_file="noop.py")
spec = wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={{"flavor_id": "tiny"}}))
workflow = wf.Workflow(name="fanout", desc="", steps=[
    wf.steps.JobStep(name=f"s{{i}}", algorithm=algo, spec=spec) for i in range({n})])
'''


def run_once(executor: str, steps: int, parallel: int) -> float:
    from mloop.cli import load_workflow
    from mloop.config import Settings
    from mloop.runs import create_run, execute_run, open_backend

    folder = Path(tempfile.mkdtemp(prefix=f"fanout-{executor}-"))
    (folder / "code").mkdir()
    (folder / "code" / "noop.py").write_text("import sys\n")
    (folder / "flow.py").write_text(FLOW.format(n=steps))
    settings = Settings(home=folder / "home", executor=executor, max_parallel=parallel, step_cache=False,
                        flavors={"tiny": {"cpu": 0.1, "memory_gb": 0.01}})
    backend = open_backend(settings)
    try:
        run = create_run(backend, load_workflow(str(folder / "flow.py")), {})
        start = time.perf_counter()
        execute_run(backend, run.id)
        wall = time.perf_counter() - start
        status = backend.store.get_run(run.id).status
        assert status == "succeeded", status
        return wall
    finally:
        backend.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=4)
    args = parser.parse_args()
    from ray_helpers import AUTH_ENV, start_cluster

    os.environ.update(AUTH_ENV)
    cluster = start_cluster(head_cpus=2)
    try:
        os.environ["MLOOP_RAY_ADDRESS"] = cluster.address
        run_once("ray", 4, args.parallel)  # warm: connect, workers started
        local = run_once("local", args.steps, args.parallel)
        ray_wall = run_once("ray", args.steps, args.parallel)
    finally:
        import ray

        ray.shutdown()
        cluster.stop()
    print(f"steps={args.steps} max_parallel={args.parallel}")
    print(f"local: {local:.2f} s ({local / args.steps * 1000:.1f} ms/step)")
    print(f"ray:   {ray_wall:.2f} s ({ray_wall / args.steps * 1000:.1f} ms/step)")
    print(f"ray_overhead_ms_per_step={(ray_wall - local) / args.steps * 1000:.1f}")


if __name__ == "__main__":
    main()
