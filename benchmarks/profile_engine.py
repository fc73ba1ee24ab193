"""Where the engine's CPU time per step goes, on the benchmark's workflow of trivial jobs.

Wraps the engine's main functions with counters of the calling thread's CPU time
(``time.thread_time``: unlike wall time it does not grow when other users load the
machine, and unlike cProfile it does not slow every call down), runs one workflow, and
prints the inclusive CPU ms per step of each function next to the process's total.
Functions that have moved or been renamed are skipped with a note.

Run: ``.venv/bin/python benchmarks/profile_engine.py --steps 200 --shape chain``

For a sampled view of the same run: ``py-spy record -r 500 -f raw -o spy.txt --
.venv/bin/python benchmarks/profile_engine.py``.
"""

from __future__ import annotations

import argparse
import collections
import functools
import importlib
import os
import resource
import shutil
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _bench  # noqa: E402
import engine_overhead  # noqa: E402

from mloop.config import Settings  # noqa: E402
from mloop.runs import create_run, execute_run, open_backend  # noqa: E402

#: (module, attribute path, label), outermost first. Inclusive: a row contains the rows it calls.
TARGETS = [
    ("mloop.engine.engine", "Engine.execute", "Engine.execute (the whole run, main thread)"),
    ("mloop.engine.engine", "_Execution._start", "  _start: one step started"),
    ("mloop.steps.job", "JobHandler.start", "    JobHandler.start"),
    ("mloop.steps.job", "snapshot_dir", "      snapshot_dir (copy + hash code_dir)"),
    ("mloop.executors.local", "LocalExecutor.launch", "      LocalExecutor.launch"),
    ("subprocess", "Popen.__init__", "        Popen (fork/exec)"),
    ("threading", "Thread.start", "        Thread.start (exit waiter)"),
    ("mloop.engine.engine", "_Execution._finished", "  _finished: one exit handled"),
    ("mloop.steps.job", "JobHandler.finish", "    JobHandler.finish"),
    ("mloop.store.sql", "SQLStore.transition_step", "  SQLStore.transition_step (in both)"),
    ("mloop.engine.engine", "_Execution._ready", "  _ready (scan for runnable steps)"),
    ("mloop.engine.engine", "_Execution._check_stop", "  _check_stop"),
    ("mloop.store.sql", "SQLStore.get_run", "  SQLStore.get_run"),
]

cpu: dict[str, float] = collections.defaultdict(float)
calls: collections.Counter[str] = collections.Counter()


def instrument() -> list[str]:
    missing = []
    for module_name, path, label in TARGETS:
        owner: Any = importlib.import_module(module_name)
        *parents, name = path.split(".")
        try:
            for part in parents:
                owner = getattr(owner, part)
            original = getattr(owner, name)
        except AttributeError:
            missing.append(f"{module_name}.{path}")
            continue

        def wrapper(*args: Any, __f: Any = original, __label: str = label, **kwargs: Any) -> Any:
            t0 = time.thread_time()
            try:
                return __f(*args, **kwargs)
            finally:
                cpu[__label] += time.thread_time() - t0
                calls[__label] += 1

        setattr(owner, name, functools.wraps(original)(wrapper))
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--shape", choices=["chain", "fanout"], default="chain")
    args = parser.parse_args(argv)
    work = tempfile.mkdtemp(prefix="mloop-profile-")
    try:
        code_dir = _bench.make_code_dir(work)
        spec = engine_overhead.build_spec(args.shape, args.steps, code_dir)
        missing = instrument()
        with open_backend(Settings(home=os.path.join(work, "home"))) as backend:
            run = create_run(backend, spec, {})
            cpu.clear()
            calls.clear()
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            t0 = time.perf_counter()
            run = execute_run(backend, run.id)
            wall = time.perf_counter() - t0
            r1 = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n = args.steps
    process = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / n * 1000
    print(f"{args.shape} of {n} trivial jobs: {run.status}, wall {wall / n * 1000:.1f} ms/step, "
          f"engine process CPU {process:.2f} ms/step (all threads)")
    print(f"{'function (inclusive, calling thread CPU)':<48} {'calls':>6} {'ms/step':>8} {'ms/call':>8}")
    for _, _, label in TARGETS:
        if calls[label]:
            per_call = cpu[label] / calls[label] * 1000
            print(f"{label:<48} {calls[label]:>6} {cpu[label] / n * 1000:>8.2f} {per_call:>8.3f}")
    for name in missing:
        print(f"(not found, skipped: {name})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
