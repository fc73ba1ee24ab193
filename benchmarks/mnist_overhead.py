"""``mloop run examples/mnist/workflow.py`` against running the same scripts by hand.

The mloop side is the whole command a user types, timed from outside: the CLI starting,
loading the workflow file, creating a fresh store (a new ``MLOOP_HOME`` each time),
then every step as a job. The direct side runs, one after another, the same scripts with
the same arguments: those the run's jobs received, read from the store of an untimed
warm-up run (which also fills the page cache with torch), with the run's folders replaced
by a fresh folder. It runs the jobs the workflow runs: ``prepare_data.py``, ``train.py``
and, on the branch the accuracy gate takes, ``report.py``; ``train.py`` reads the dataset
release the warm-up run staged (copied into the fresh folder, untimed), since the dataset,
model and service steps have no script to run by hand. Every mloop run deploys service
``mnist`` in its own home; it is stopped after the run, untimed. Both sides get the interpreter,
``CUDA_VISIBLE_DEVICES`` and ``PYTHONUNBUFFERED`` the engine gives a CPU job.

Trials run in the order direct, mloop, mloop, direct, ... so a drift in the load of the
machine hits both sides alike. Overhead = mloop - direct, and in % of direct. Target:
mloop <= direct * 1.03 + 1 s. Training time itself varies by several seconds between runs
on a shared machine, more than the overhead, so the script also reports the time spent
outside the jobs (mloop's wall minus its steps' ``started_at``..``finished_at``, less the
same for the direct side): the orchestration's own cost.

Run: ``.venv/bin/python benchmarks/mnist_overhead.py --trials 2`` (``-p epochs=2`` for a
quicker look; the figures in README.md use the workflow's defaults).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _bench  # noqa: E402

from mloop.config import Settings  # noqa: E402
from mloop.runs import open_backend  # noqa: E402

EXAMPLE = _bench.REPO_DIR / "examples" / "mnist"
WORKFLOW = EXAMPLE / "workflow.py"
MLOOP_CLI = Path(sys.executable).parent / "mloop"


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_")}


def run_mloop(home: str, params: list[str], log: Path) -> dict[str, Any]:
    """One ``mloop run``; returns its wall time and the jobs it ran, from its store."""
    argv = [str(MLOOP_CLI), "run", str(WORKFLOW), *[a for p in params for a in ("-p", p)]]
    env = {**clean_env(), "MLOOP_HOME": home}
    with open(log, "ab") as out:
        t0 = time.perf_counter()
        done = subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              cwd=_bench.REPO_DIR)
        wall = time.perf_counter() - t0
    # The run deployed service "mnist" in this home: stop it (untimed) so no server is left behind.
    subprocess.run([str(MLOOP_CLI), "service", "stop", "mnist"], env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, cwd=_bench.REPO_DIR)
    if done.returncode != 0:
        raise SystemExit(f"mloop run failed (exit {done.returncode}); see {log}")
    with open_backend(Settings(home=home), reconcile=False) as backend:
        runs = backend.store.list_runs()
        if len(runs) != 1:
            raise SystemExit(f"expected one run in {home}, found {len(runs)}")
        run_id = runs[0].id
        steps = [s for s in backend.store.list_steps(run_id) if s.started_at and s.finished_at]
    steps.sort(key=lambda s: s.started_at)  # type: ignore[arg-type, return-value]
    jobs = [{"name": s.name, "status": s.status, "argv": (s.inputs or {}).get("argv"),
             "seconds": (s.finished_at - s.started_at).total_seconds()}  # type: ignore[operator]
            for s in steps]
    return {"wall_s": wall, "run_id": run_id, "steps": jobs}


def direct_commands(reference: dict[str, Any], home: str) -> tuple[list[list[str]], list[str]]:
    """The reference run's job command lines, pointed at the original scripts and with the
    run's folders (under ``home``) as ``{ROOT}``; and the staged input folders (a dataset
    release) the direct side must be given, relative to ``home``."""
    commands, staged = [], []
    for step in reference["steps"]:
        argv = step["argv"]
        if not argv:  # a condition, dataset, model or service step: no process
            continue
        script = EXAMPLE / "code" / Path(argv[1]).name
        args = [a.replace(home, "{ROOT}") for a in argv[2:]]
        for arg in argv[2:]:
            value = arg.split("=", 1)[-1]
            if value.startswith(home) and f"{os.sep}inputs{os.sep}" in value and os.path.isdir(value):
                staged.append(os.path.relpath(value, home))
        commands.append([argv[0], str(script), *args])
    return commands, staged


def run_direct(commands: list[list[str]], root: str, log: Path, staged: list[str],
               reference_home: str) -> dict[str, Any]:
    env = {**clean_env(), "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    for rel in staged:  # what mloop staged for a job (the release layout), given by hand, untimed
        shutil.copytree(os.path.join(reference_home, rel), os.path.join(root, rel))
    resolved = [[a.replace("{ROOT}", root) for a in cmd] for cmd in commands]
    for cmd in resolved:  # the engine creates output folders before a job starts
        for arg in cmd[2:]:
            value = arg.split("=", 1)[-1]
            if value.startswith(root) and value.endswith(os.sep):
                os.makedirs(value, exist_ok=True)
    each = []
    with open(log, "ab") as out:
        t0 = time.perf_counter()
        for cmd in resolved:
            t = time.perf_counter()
            done = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  cwd=EXAMPLE / "code")
            each.append(time.perf_counter() - t)
            if done.returncode != 0:
                raise SystemExit(f"{' '.join(cmd)} failed (exit {done.returncode}); see {log}")
        wall = time.perf_counter() - t0
    return {"wall_s": wall, "steps": [{"script": Path(c[1]).name, "seconds": s} for c, s in zip(resolved, each)]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=2, help="timed runs of each side")
    parser.add_argument("-p", "--param", action="append", default=[], help="NAME=VALUE for both sides")
    parser.add_argument("--output", default="mnist_overhead.json", help="file name under benchmarks/results/")
    args = parser.parse_args(argv)
    _bench.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    log = _bench.RESULTS_DIR / "mnist_overhead.log"
    log.write_text("")
    work = tempfile.mkdtemp(prefix="mnist-bench-")
    try:
        print("warm-up mloop run (untimed; gives the jobs' command lines)", file=sys.stderr, flush=True)
        home = os.path.join(work, "warmup")
        reference = run_mloop(home, args.param, log)
        commands, staged = direct_commands(reference, home)
        print("direct commands:\n  " + "\n  ".join(" ".join(c) for c in commands), file=sys.stderr, flush=True)
        order = [side for i in range(args.trials) for side in (("direct", "mloop") if i % 2 == 0
                                                                else ("mloop", "direct"))]
        trials: dict[str, list[dict[str, Any]]] = {"direct": [], "mloop": []}
        for i, side in enumerate(order):
            if side == "mloop":
                data = run_mloop(os.path.join(work, f"home-{i}"), args.param, log)
            else:
                data = run_direct(commands, os.path.join(work, f"direct-{i}"), log, staged, home)
            trials[side].append(data)
            print(f"{side}: {data['wall_s']:.2f} s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    for side in trials.values():
        for t in side:  # time not spent inside a job: the orchestration, free of the jobs' noise
            t["outside_jobs_s"] = t["wall_s"] - sum(x["seconds"] for x in t["steps"])
    pairs = []
    for d, m in zip(trials["direct"], trials["mloop"]):
        over = m["wall_s"] - d["wall_s"]
        pairs.append({"direct_s": d["wall_s"], "mloop_s": m["wall_s"], "overhead_s": over,
                      "overhead_pct": over / d["wall_s"] * 100,
                      "outside_jobs_s": m["outside_jobs_s"] - d["outside_jobs_s"],
                      "target_s": d["wall_s"] * 1.03 + 1.0, "met": m["wall_s"] <= d["wall_s"] * 1.03 + 1.0})
    direct = statistics.median(t["wall_s"] for t in trials["direct"])
    mloop = statistics.median(t["wall_s"] for t in trials["mloop"])
    outside = statistics.median(p["outside_jobs_s"] for p in pairs)
    summary = {"direct_s": direct, "mloop_s": mloop, "overhead_s": mloop - direct,
               "overhead_pct": (mloop - direct) / direct * 100, "outside_jobs_s": outside,
               "target_s": direct * 1.03 + 1.0, "met": mloop <= direct * 1.03 + 1.0,
               "met_by_outside_jobs": outside <= direct * 0.03 + 1.0}
    payload = {"tool": "mloop", "benchmark": "mnist", "params": args.param, "commands": commands,
               "versions": _bench.versions(), "trials": trials, "pairs": pairs, "median": summary}
    path = _bench.write_json(args.output, payload)
    print(f"MNIST ({', '.join(args.param) or 'workflow defaults'}): {len(pairs)} pairs")
    print(f"{'pair':>4} {'direct s':>9} {'mloop s':>9} {'overhead s':>11} {'overhead %':>11} {'outside jobs s':>15}"
          f" {'target s':>9}  met")
    for i, p in enumerate(pairs, 1):
        print(f"{i:>4} {p['direct_s']:>9.2f} {p['mloop_s']:>9.2f} {p['overhead_s']:>11.2f} {p['overhead_pct']:>10.1f}%"
              f" {p['outside_jobs_s']:>15.2f} {p['target_s']:>9.2f}  {'yes' if p['met'] else 'NO'}")
    s = summary
    print(f"{'med':>4} {s['direct_s']:>9.2f} {s['mloop_s']:>9.2f} {s['overhead_s']:>11.2f} {s['overhead_pct']:>10.1f}%"
          f" {s['outside_jobs_s']:>15.2f} {s['target_s']:>9.2f}  {'yes' if s['met'] else 'NO'}")
    print("outside jobs = (mloop wall - time inside its steps) - (direct wall - time inside the scripts): "
          "the orchestration alone, without the noise of the training's own time")
    for side in ("direct", "mloop"):
        for t in trials[side]:
            parts = ", ".join(f"{x.get('name') or x.get('script')} {x['seconds']:.2f}" for x in t["steps"])
            print(f"  {side:<6} {t['wall_s']:.2f} s: {parts}")
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
