"""Per-task overhead of Prefect 3 on the same trivial jobs as ``engine_overhead.py``.

Runs INSIDE the Prefect venv (``benchmarks/.venv-prefect``; ``compare.py`` creates it).
Each task is ``subprocess.run([python, "noop.py"])`` in the same tiny code folder, with the
interpreter mloop's jobs use (``--job-python``, default the project's ``.venv``), so the
bare spawn cost is the same on both sides.

* ``chain``: a flow calls 200 tasks one after another, each taking the previous result;
* ``fanout``: a flow calls one root task, then ``.submit()``s the others with the root's
  future as their argument and waits on them all, on ``ThreadPoolTaskRunner(max_workers=P)``
  with P = mloop's default ``max_parallel`` and P = 1 (Prefect's own default is unbounded,
  which on 2 cores would measure contention, not orchestration).

Prefect runs as it does by default on a machine with nothing configured: ``PREFECT_API_URL``
unset, so the first flow starts a temporary local server (SQLite under ``PREFECT_HOME``) in a
subprocess and talks to it over HTTP. Its start-up is measured once, apart from the per-task
figures. Logging stays at Prefect's default (INFO to the console) unless ``--quiet-logs``.

Figures, as for mloop: ``overhead_ms_per_step`` = (flow wall - bare wall) / steps; for the
chain, ``step_overhead_median_ms`` = median over tasks of (time of the task call seen by the
flow - median bare spawn of the trial); ``exit_median_ms`` = median of (the call - the
subprocess's own time measured inside the task); ``cpu_overhead_ms_per_step`` = CPU time of
this process, its jobs and the temporary server per task (counted until the server is idle
again after the flow), minus the same for the bare run.

Run: ``benchmarks/.venv-prefect/bin/python benchmarks/prefect_overhead.py --steps 200 --trials 3``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _bench  # noqa: E402

DEFAULT_JOB_PYTHON = _bench.REPO_DIR / ".venv" / "bin" / "python"
DEFAULT_PARALLEL = 4  # mloop's Settings.max_parallel default; this venv cannot import mloop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--shape", choices=["chain", "fanout", "both"], default="both")
    parser.add_argument("--parallel", type=int, default=DEFAULT_PARALLEL, help="fan-out threads (mloop's default)")
    parser.add_argument("--job-python", default=str(DEFAULT_JOB_PYTHON) if DEFAULT_JOB_PYTHON.exists()
                        else sys.executable, help="interpreter that runs noop.py")
    parser.add_argument("--quiet-logs", action="store_true", help="PREFECT_LOGGING_LEVEL=WARNING")
    parser.add_argument("--output", default="prefect_overhead.json", help="file name under benchmarks/results/")
    args = parser.parse_args(argv)

    work = tempfile.mkdtemp(prefix="prefect-bench-")
    # Settings Prefect reads at import: set before importing it.
    if os.environ.get("PREFECT_API_URL"):
        raise SystemExit("unset PREFECT_API_URL: the benchmark measures Prefect's default local mode")
    os.environ.setdefault("PREFECT_HOME", os.path.join(work, "prefect-home"))
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    # The default (20 s) is too short for a loaded 2-core machine, where start-up took 16-25 s.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    if args.quiet_logs:
        os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"

    t0 = time.perf_counter()
    import prefect
    from prefect import flow, task
    from prefect.task_runners import ThreadPoolTaskRunner
    import_s = time.perf_counter() - t0

    python = args.job_python
    code_dir = _bench.make_code_dir(work)
    _bench.run_noop(python, code_dir)

    @task
    def job(previous: Any = None) -> float:
        t = time.perf_counter()
        subprocess.run([python, "noop.py"], cwd=code_dir, stdin=subprocess.DEVNULL, check=True)
        return time.perf_counter() - t

    @flow
    def chain(n: int) -> list[tuple[float, float]]:
        calls: list[tuple[float, float]] = []
        previous = None
        for _ in range(n):
            t = time.perf_counter()
            previous = job(previous)
            calls.append((time.perf_counter() - t, previous))
        return calls

    @flow
    def fanout(n: int) -> list[float]:
        root = job.submit()
        rest = [job.submit(root) for _ in range(n - 1)]
        return [root.result(), *(f.result() for f in rest)]

    # Warm-up: the first flow starts the temporary server; the second is a steady-state flow.
    # Settle between phases so the server's deferred work is charged to the flow that caused it.
    t0 = time.perf_counter()
    chain(1)
    first_flow_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    chain(1)
    second_flow_s = time.perf_counter() - t0
    _bench.wait_helpers_idle()
    warmup = {"import_s": import_s, "first_flow_s": first_flow_s, "steady_one_task_flow_s": second_flow_s,
              "server_startup_s": first_flow_s - second_flow_s}
    print(f"warm-up: import {import_s:.2f} s, first 1-task flow {first_flow_s:.2f} s (starts the server), "
          f"next 1-task flow {second_flow_s:.2f} s", file=sys.stderr, flush=True)

    plan = _bench.shapes_for(args.shape, args.parallel)
    results: dict[str, Any] = {label: {"trials": []} for label, _, _ in plan}
    for trial in range(args.trials):
        for label, shape, parallel in plan:
            if shape == "chain":
                bare = _bench.bare_sequential(args.steps, python, code_dir)
                cpu = _bench.CpuMeter()
                t0 = time.perf_counter()
                calls = chain(args.steps)
                wall = time.perf_counter() - t0
                used = cpu.per_step(args.steps, settle=True)
                bare_s = bare["per_process_ms"] / 1000
                per = {"step_overhead_median_ms": statistics.median((c - bare_s) * 1000 for c, _ in calls),
                       "step_overhead_p90_ms": _bench.percentile([(c - bare_s) * 1000 for c, _ in calls], 0.9),
                       "exit_median_ms": statistics.median((c - own) * 1000 for c, own in calls)}
            else:
                bare = _bench.bare_fanout(args.steps, python, code_dir, parallel)
                runner = fanout.with_options(task_runner=ThreadPoolTaskRunner(max_workers=parallel))
                cpu = _bench.CpuMeter()
                t0 = time.perf_counter()
                runner(args.steps)
                wall = time.perf_counter() - t0
                used = cpu.per_step(args.steps, settle=True)
                per = {}
            data = {"bare_wall_s": bare["wall_s"], "bare_per_process_ms": bare["per_process_ms"], "wall_s": wall,
                    "overhead_ms_per_step": (wall - bare["wall_s"]) / args.steps * 1000, **per,
                    **used, **{f"bare_{k}": v for k, v in bare.items() if k.startswith("cpu_")},
                    "cpu_overhead_ms_per_step": used["cpu_ms_per_step"] - bare["cpu_ms_per_step"],
                    "max_parallel": parallel}
            results[label]["trials"].append(data)
            print(f"trial {trial + 1}/{args.trials} {label}: {data['overhead_ms_per_step']:.1f} ms/step over bare "
                  f"({wall:.2f} s vs {bare['wall_s']:.2f} s)", file=sys.stderr, flush=True)
    for data in results.values():
        data["median"] = _bench.summarize(data["trials"])
    payload = {"tool": "prefect", "steps": args.steps, "trials": args.trials,
               "setup": {"api": "temporary local server started by Prefect (PREFECT_API_URL unset)",
                         "task_runner": "ThreadPoolTaskRunner", "job_python": python,
                         "logging": "WARNING" if args.quiet_logs else "default (INFO)"},
               "warmup": warmup, "versions": _bench.versions({"prefect": prefect.__version__}),
               "results": results}
    path = _bench.write_json(args.output, payload)
    _bench.print_table(f"prefect {prefect.__version__}", results)
    print(f"one-time: import {import_s:.2f} s, temporary server start-up {warmup['server_startup_s']:.2f} s; "
          f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
