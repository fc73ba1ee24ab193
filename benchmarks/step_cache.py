"""Step caching: a 10-step pipeline re-run with nothing changed, with caching and without.

The pipeline is a chain of ``--steps`` jobs; each reads the previous one's output, works
``--work-ms`` of CPU (a stand-in for training) and writes ``--output-kb`` of bytes derived
from its input. Per trial, on a fresh SQLite home (``open_backend``, ``create_run``,
``execute_run`` with no display; wall time of ``execute_run``):

* ``first_nocache_setting``: the first run with ``step_cache=False`` (no key is computed: what
  a run cost before step caching);
* ``first``: the first run with caching on, in a second fresh home (computes every key and
  hashes every output: what caching adds to a run that can reuse nothing);
* ``rerun_cached``: the same pipeline again, nothing changed: every job reuses ``first``'s;
* ``rerun_no_cache``: again with ``--no-cache`` (``create_run(cache=False)``): every job runs.

The JSON under ``benchmarks/results/`` has every trial, the medians and the versions.

Run: ``.venv/bin/python benchmarks/step_cache.py --trials 3`` (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _bench  # noqa: E402

from mloop import workflow as wf  # noqa: E402
from mloop.config import Settings  # noqa: E402
from mloop.runs import create_run, execute_run, open_backend  # noqa: E402
from mloop.spec.models import WorkflowSpec  # noqa: E402

JOB = '''\
import argparse, hashlib, os, time
parser = argparse.ArgumentParser()
for name in ("data", "out", "work_ms", "kb"):
    parser.add_argument("--" + name)
args, _ = parser.parse_known_args()
data = open(os.path.join(args.data, "blob.bin"), "rb").read() if args.data else b"root"
seed = hashlib.sha256(data).digest()  # the output depends on the input only
spin, end = seed, time.process_time() + float(args.work_ms) / 1000
while time.process_time() < end:  # the "training"
    spin = hashlib.sha256(spin).digest()
size = int(args.kb) * 1024
with open(os.path.join(args.out, "blob.bin"), "wb") as fh:
    fh.write((seed * (size // len(seed) + 1))[:size])
'''


def build_spec(steps: int, code_dir: str, out_root: str, work_ms: int, kb: int) -> WorkflowSpec:
    """A chain of ``steps`` jobs, each reading the one before's output folder."""
    storage = wf.data.OutputStorage(name="work", default=out_root + "/")
    built: list[Any] = []
    for i in range(steps):
        params = [wf.AlgorithmParameters(name="work_ms", value=work_ms), wf.AlgorithmParameters(name="kb", value=kb)]
        inputs = [wf.steps.JobInput(name="data", data=built[-1].outputs["out"].as_input())] if built else None
        built.append(wf.steps.JobStep(
            name=f"s{i:02d}",
            algorithm=wf.BaseAlgorithm(code_dir=code_dir, boot_file="job.py", parameters=params),
            spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
            inputs=inputs,
            outputs=[wf.steps.JobOutput(name="out", obs_config=wf.data.OBSOutputConfig(
                obs_path=storage.join(f"s{i:02d}/")))],
        ))
    return wf.Workflow(name="bench-cache", desc=f"{steps} chained jobs", steps=built).compile()


def timed_run(backend: Any, spec: WorkflowSpec, *, cache: bool = True) -> tuple[float, list[Any]]:
    run = create_run(backend, spec, {}, cache=cache)
    t0 = time.perf_counter()
    run = execute_run(backend, run.id)
    wall = time.perf_counter() - t0
    if run.status != "succeeded":
        raise SystemExit(f"benchmark run {run.id} {run.status}: {run.message}")
    return wall, backend.store.list_steps(run.id)


def trial(spec: WorkflowSpec, steps: int) -> dict[str, Any]:
    homes = [tempfile.mkdtemp(prefix="mloop-bench-cache-") for _ in range(2)]
    try:
        with open_backend(Settings(home=homes[0], step_cache=False)) as backend:
            off_wall, _ = timed_run(backend, spec)
        with open_backend(Settings(home=homes[1])) as backend:
            first_wall, _ = timed_run(backend, spec)
            cached_wall, cached = timed_run(backend, spec)
            forced_wall, forced = timed_run(backend, spec, cache=False)
        hits = sum(1 for s in cached if s.cached_from)
        if hits != steps or any(s.cached_from for s in forced):
            raise SystemExit(f"expected {steps} hits and no hit with --no-cache, got {hits}")
    finally:
        for home in homes:
            shutil.rmtree(home, ignore_errors=True)
    return {"first_nocache_setting_s": off_wall, "first_s": first_wall, "rerun_cached_s": cached_wall,
            "rerun_no_cache_s": forced_wall,
            "key_cost_ms_per_step": (first_wall - off_wall) / steps * 1000,
            "cached_ms_per_step": cached_wall / steps * 1000,
            "speedup": forced_wall / cached_wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--work-ms", type=int, default=300, help="CPU each job works, ms")
    parser.add_argument("--output-kb", type=int, default=1024, help="bytes each job writes, KB")
    parser.add_argument("--output", default="step_cache.json", help="file name under benchmarks/results/")
    args = parser.parse_args(argv)
    for key in [k for k in os.environ if k.startswith("MLOOP_")]:
        del os.environ[key]  # the benchmark's settings are explicit

    work = tempfile.mkdtemp(prefix="mloop-bench-cache-code-")
    os.chdir(work)  # no stray ./mloop.toml
    trials = []
    try:
        code_dir = os.path.join(work, "code")
        os.makedirs(code_dir)
        with open(os.path.join(code_dir, "job.py"), "w") as fh:
            fh.write(JOB)
        spec = build_spec(args.steps, code_dir, os.path.join(work, "out"), args.work_ms, args.output_kb)
        for n in range(args.trials):
            data = trial(spec, args.steps)
            trials.append(data)
            print(f"trial {n + 1}/{args.trials}: first {data['first_s']:.2f} s (caching off "
                  f"{data['first_nocache_setting_s']:.2f} s), re-run cached {data['rerun_cached_s']:.2f} s, "
                  f"--no-cache {data['rerun_no_cache_s']:.2f} s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    median = {k: statistics.median(t[k] for t in trials) for k in trials[0]}
    payload = {"steps": args.steps, "trials": args.trials, "work_ms": args.work_ms, "output_kb": args.output_kb,
               "versions": _bench.versions(), "results": {"trials": trials, "median": median}}
    path = _bench.write_json(args.output, payload)
    print(f"{args.steps}-step chain, {args.work_ms} ms CPU and {args.output_kb} KB out per job; "
          f"medians of {args.trials} trials:")
    rows = [("first run, step_cache off", median["first_nocache_setting_s"]),
            ("first run, caching on (keys, output digests)", median["first_s"]),
            ("re-run, nothing changed, cached", median["rerun_cached_s"]),
            ("re-run, --no-cache", median["rerun_no_cache_s"])]
    for label, seconds in rows:
        print(f"  {label:<46} {seconds:7.2f} s  {seconds / args.steps * 1000:7.1f} ms/step")
    print(f"  caching adds {median['key_cost_ms_per_step']:.1f} ms/step to a run that reuses nothing; a cached "
          f"re-run is {median['speedup']:.1f}x faster than --no-cache")
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
