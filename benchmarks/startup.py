"""Start-up time of ``mloop`` commands: what every command pays before it does any work.

    .venv/bin/python benchmarks/startup.py [--runs 9] [--json] [--baseline-src DIR]

Runs each command ``--runs`` times in a fresh process (after one untimed warm-up run, so the
page cache holds the files) in a throw-away ``MLOOP_HOME`` holding one small dataset, and
prints the median and the minimum wall time and the median CPU time (user + system) of each.
On this shared 2-core machine wall time moves with other users' load; CPU time hardly does.

Commands: ``python -c pass`` (the interpreter's own floor), ``mloop --help``, ``mloop dataset
list``, a no-op ``mloop dataset import`` (the folder already is the latest version),
``mloop runs`` and ``mloop --version``.

``--baseline-src DIR`` also times every command with ``PYTHONPATH=DIR`` (the ``src`` folder of
another checkout, e.g. ``git worktree add /tmp/base <commit>``; it shares this venv),
interleaved with the current tree so both see the same load, and prints the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results" / "startup.json"
BIN = Path(sys.executable).parent
MLOOP = str(BIN / "mloop")


def _make_images(folder: Path, count: int = 12) -> None:
    """A tiny image-classification folder: ``count`` 16x16 PNGs in two class folders."""
    from PIL import Image

    for i in range(count):
        target = folder / ("cat" if i % 2 else "dog")
        target.mkdir(parents=True, exist_ok=True)
        Image.new("L", (16, 16), color=(i * 17) % 256).save(target / f"{i:03d}.png")


def _timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run ``cmd`` once; its wall and CPU (user + system) seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9, help="timed runs per command (default 9)")
    parser.add_argument("--json", action="store_true", help=f"also write {RESULTS.relative_to(REPO_DIR)}")
    parser.add_argument("--baseline-src", type=Path, help="also time the src folder of another checkout")
    args = parser.parse_args()
    trees: list[tuple[str, dict[str, str]]] = [("current", {})]
    if args.baseline_src:
        trees.append(("baseline", {"PYTHONPATH": str(args.baseline_src.resolve())}))

    work = Path(tempfile.mkdtemp(prefix="mloop-startup-"))
    try:
        env = {**os.environ}
        env.pop("MLOOP_CONFIG", None)
        env.pop("MLOOP_DATABASE_URL", None)
        data = work / "data"
        _make_images(data)
        for tree, extra in trees:
            # A home per tree: the two may be at different schema revisions.
            extra["MLOOP_HOME"] = str(work / f".mloop-{tree}")
            subprocess.run([MLOOP, "dataset", "create", "pets", "--from", str(data)], cwd=work,
                           env={**env, **extra}, check=True, capture_output=True)
        commands: list[tuple[str, list[str]]] = [
            ("python -c pass", [str(BIN / "python"), "-c", "pass"]),
            ("mloop --version", [MLOOP, "--version"]),
            ("mloop --help", [MLOOP, "--help"]),
            ("mloop dataset list", [MLOOP, "dataset", "list"]),
            ("mloop dataset import (no change)", [MLOOP, "dataset", "import", "pets", "--from", str(data)]),
            ("mloop runs", [MLOOP, "runs"]),
        ]
        results: dict[str, dict[str, Any]] = {tree: {} for tree, _ in trees}
        for tree, extra in trees:
            for name, cmd in commands:
                _timed(cmd, work, {**env, **extra})  # warm the page cache
        for _ in range(args.runs):  # interleaved, so a burst of load hits every command alike
            for name, cmd in commands:
                for tree, extra in trees:
                    wall, cpu = _timed(cmd, work, {**env, **extra})
                    entry = results[tree].setdefault(name, {"wall_s": [], "cpu_s": []})
                    entry["wall_s"].append(wall)
                    entry["cpu_s"].append(cpu)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    for tree, _ in trees:
        for entry in results[tree].values():
            entry["wall_median_s"] = statistics.median(entry["wall_s"])
            entry["wall_min_s"] = min(entry["wall_s"])
            entry["cpu_median_s"] = statistics.median(entry["cpu_s"])
    header = f"{'command':<34} {'wall median s':>14} {'wall min s':>11} {'CPU median s':>13}"
    if args.baseline_src:
        header += f" {'baseline wall med':>18} {'baseline CPU med':>17} {'CPU ratio':>10}"
    print(header)
    for name, entry in results["current"].items():
        line = f"{name:<34} {entry['wall_median_s']:>14.3f} {entry['wall_min_s']:>11.3f} {entry['cpu_median_s']:>13.3f}"
        if args.baseline_src:
            base = results["baseline"][name]
            line += (f" {base['wall_median_s']:>18.3f} {base['cpu_median_s']:>17.3f}"
                     f" {base['cpu_median_s'] / entry['cpu_median_s']:>9.2f}x")
        print(line)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"runs per command: {args.runs}; load average (1 min) at the end: {load:.2f}")
    if args.json:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        payload = {"runs": args.runs, "load_1min": load, "baseline_src": str(args.baseline_src or ""),
                   "results": results}
        RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
