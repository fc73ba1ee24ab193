"""Per-step overhead of the mloop engine on a workflow of trivial jobs, against spawning the
same processes bare.

Each step is ``BaseAlgorithm(code_dir=<tiny folder>, boot_file="noop.py")`` on the
``cpu.small`` flavor; ``noop.py`` is ``import sys``. Two shapes:

* ``chain``: every step depends on the one before;
* ``fanout``: one root, then every other step depends on the root only. It runs at the
  default ``max_parallel`` and at ``max_parallel=1``.

In every trial, first the bare baseline of the same shape (``subprocess.run`` of the same
argv, one after another, or on a thread pool as wide as ``max_parallel``), then the engine
through the service functions (``open_backend`` on a fresh SQLite home, ``create_run``,
``execute_run`` with no display). Figures:

* ``overhead_ms_per_step`` = (``execute_run`` wall - bare wall) / steps;
* ``step_overhead_median_ms``: per step, from the store's records, the time from the moment
  the step could start (its upstream steps finished and, when the run is at
  ``max_parallel``, a slot freed) to its ``finished_at``, minus the median bare spawn time of
  the same trial and parallelism. ``launch_median_ms`` (ready to ``started_at``) and
  ``exit_median_ms`` (``started_at`` to ``finished_at`` minus the bare spawn) split it;
* ``cpu_overhead_ms_per_step``: CPU time (the engine process, its jobs) per step minus the
  same for the bare baseline; steadier than wall time on a loaded machine;
* ``open_backend_s`` (store creation, excluded from the per-step figures) and
  ``create_run_s`` (release and run rows) are one-time costs, reported apart.

Run: ``.venv/bin/python benchmarks/engine_overhead.py --steps 200 --trials 3 --shape both``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _bench  # noqa: E402

from mloop import workflow as wf  # noqa: E402
from mloop.config import Settings  # noqa: E402
from mloop.runs import create_run, execute_run, open_backend  # noqa: E402
from mloop.spec.models import WorkflowSpec  # noqa: E402
from mloop.store.base import StepRecord  # noqa: E402


def build_spec(shape: str, steps: int, code_dir: str) -> WorkflowSpec:
    """A workflow of ``steps`` trivial jobs, chained or fanned out from one root."""
    built: list[Any] = []
    for i in range(steps):
        if shape == "chain":
            upstream = [built[-1]] if built else None
        else:
            upstream = [built[0]] if built else None
        built.append(wf.steps.JobStep(
            name=f"s{i:04d}",
            algorithm=wf.BaseAlgorithm(code_dir=code_dir, boot_file="noop.py"),
            spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
            depend_steps=upstream,
        ))
    return wf.Workflow(name=f"bench-{shape}", desc=f"{steps} trivial jobs, {shape}", steps=built).compile()


def _ts(value: datetime | None) -> float:
    assert value is not None, "a finished step has started_at and finished_at"
    return value.timestamp()


def per_step(records: list[StepRecord], deps: dict[str, list[str]], run_started: float, parallel: int,
             bare_s: float) -> dict[str, list[float]]:
    """Per-step engine time, in ms, from the store's timestamps.

    A step is ready when its upstream steps have finished and, the ``parallel``-th step
    onwards, when the step that freed its slot finished (the ``j``-th step to start takes
    the slot of the ``(j - parallel)``-th to finish).
    """
    by_name = {r.name: r for r in records}
    started = sorted(records, key=lambda r: _ts(r.started_at))
    finishes = sorted(_ts(r.finished_at) for r in records)
    total, launch, exit_ = [], [], []
    for j, rec in enumerate(started):
        ready = max([run_started, *(_ts(by_name[d].finished_at) for d in deps[rec.name])])
        if j >= parallel:
            ready = max(ready, finishes[j - parallel])
        s, f = _ts(rec.started_at), _ts(rec.finished_at)
        total.append((f - ready - bare_s) * 1000)
        launch.append((s - ready) * 1000)
        exit_.append((f - s - bare_s) * 1000)
    return {"total": total, "launch": launch, "exit": exit_}


def mloop_trial(spec: WorkflowSpec, steps: int, parallel: int | None, bare: dict[str, Any]) -> dict[str, Any]:
    home = tempfile.mkdtemp(prefix="mloop-bench-")
    try:
        settings = Settings(home=home, **({"max_parallel": parallel} if parallel else {}))
        t0 = time.perf_counter()
        backend = open_backend(settings)
        t1 = time.perf_counter()
        with backend:
            run = create_run(backend, spec, {})
            cpu = _bench.CpuMeter()
            t2 = time.perf_counter()
            run = execute_run(backend, run.id)
            t3 = time.perf_counter()
            used = cpu.per_step(steps)
            if run.status != "succeeded":
                raise SystemExit(f"benchmark run {run.id} {run.status}: {run.message}")
            records = backend.store.list_steps(run.id)
        deps = {s.name: list(s.depend_steps or []) for s in spec.steps}
        dist = per_step(records, deps, _ts(run.started_at), settings.max_parallel, bare["per_process_ms"] / 1000)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    wall = t3 - t2
    return {
        "bare_wall_s": bare["wall_s"], "bare_per_process_ms": bare["per_process_ms"],
        "open_backend_s": t1 - t0, "create_run_s": t2 - t1, "wall_s": wall,
        "overhead_ms_per_step": (wall - bare["wall_s"]) / steps * 1000,
        "overhead_incl_create_ms_per_step": (t3 - t1 - bare["wall_s"]) / steps * 1000,
        "step_overhead_median_ms": statistics.median(dist["total"]),
        "step_overhead_p90_ms": _bench.percentile(dist["total"], 0.9),
        "launch_median_ms": statistics.median(dist["launch"]),
        "exit_median_ms": statistics.median(dist["exit"]),
        **used, **{f"bare_{k}": v for k, v in bare.items() if k.startswith("cpu_")},
        "cpu_overhead_ms_per_step": used["cpu_ms_per_step"] - bare["cpu_ms_per_step"],
        "max_parallel": settings.max_parallel,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--shape", choices=["chain", "fanout", "both"], default="both")
    parser.add_argument("--output", default="engine_overhead.json", help="file name under benchmarks/results/")
    args = parser.parse_args(argv)
    for key in [k for k in os.environ if k.startswith("MLOOP_")]:
        del os.environ[key]  # the benchmark's settings are explicit

    default_parallel = Settings.model_fields["max_parallel"].default
    work = tempfile.mkdtemp(prefix="mloop-bench-code-")
    os.chdir(work)  # no stray ./mloop.toml
    try:
        code_dir = _bench.make_code_dir(work)
        _bench.run_noop(sys.executable, code_dir)  # page in the interpreter once
        plan = _bench.shapes_for(args.shape, default_parallel)
        specs = {shape: build_spec(shape, args.steps, code_dir) for _, shape, _ in plan}
        results: dict[str, Any] = {label: {"trials": []} for label, _, _ in plan}
        for trial in range(args.trials):
            for label, shape, parallel in plan:
                if shape == "chain":
                    bare = _bench.bare_sequential(args.steps, sys.executable, code_dir)
                    data = mloop_trial(specs[shape], args.steps, None, bare)
                else:
                    bare = _bench.bare_fanout(args.steps, sys.executable, code_dir, parallel)
                    data = mloop_trial(specs[shape], args.steps, parallel, bare)
                results[label]["trials"].append(data)
                print(f"trial {trial + 1}/{args.trials} {label}: {data['overhead_ms_per_step']:.1f} ms/step over "
                      f"bare ({data['wall_s']:.2f} s vs {data['bare_wall_s']:.2f} s), median step "
                      f"{data['step_overhead_median_ms']:.1f} ms", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for data in results.values():
        data["median"] = _bench.summarize(data["trials"])
    payload = {"tool": "mloop", "steps": args.steps, "trials": args.trials,
               "versions": _bench.versions(), "results": results}
    path = _bench.write_json(args.output, payload)
    _bench.print_table("mloop", results)
    first = results[next(iter(results))]["median"]
    print(f"one-time: open_backend (store creation) {first['open_backend_s'] * 1000:.0f} ms, "
          f"create_run {first['create_run_s'] * 1000:.0f} ms; written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
