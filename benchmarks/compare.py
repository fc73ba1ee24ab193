"""mloop against Prefect 3 on the same trivial jobs, in one go, and the ratio of their overheads.

Creates the Prefect venv (``benchmarks/.venv-prefect``) if it is missing, then alternates
trials: one trial of ``engine_overhead.py`` (mloop venv), one of ``prefect_overhead.py``
(Prefect venv), and so on, so a change in the load of a shared machine hits both sides
alike. Each side's trials are merged into ``results/engine_overhead.json`` and
``results/prefect_overhead.json``; the ratios go to ``results/compare.json``.

Ratio = Prefect overhead per step / mloop overhead per step (higher is better for mloop),
for each shape, from the medians over trials, and the median of the per-trial ratios.

Run: ``.venv/bin/python benchmarks/compare.py --steps 200 --trials 3``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _bench  # noqa: E402

PREFECT_VENV = _bench.BENCH_DIR / ".venv-prefect"
PREFECT_REQUIREMENTS = ["prefect>=3.8,<3.9", "fastapi==0.154.0"]  # the combination that installs and runs here
MLOOP_PYTHON = _bench.REPO_DIR / ".venv" / "bin" / "python"

#: (key in a summary, label, format) of the figures compared.
FIGURES = [
    ("overhead_ms_per_step", "wall overhead ms/step", "{:.1f}"),
    ("step_overhead_median_ms", "median step overhead ms", "{:.1f}"),
    ("cpu_overhead_ms_per_step", "CPU overhead ms/step", "{:.1f}"),
]


def ensure_prefect_venv() -> Path:
    python = PREFECT_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {PREFECT_VENV} ({' '.join(PREFECT_REQUIREMENTS)})", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PREFECT_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PREFECT_REQUIREMENTS], check=True)
    return python


def prefect_env(home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"PREFECT_HOME": home, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    return env  # PREFECT_API_URL unset: Prefect starts its temporary local server


def merge(paths: list[Path]) -> dict[str, Any]:
    """One results file from several one-trial files of the same tool."""
    runs = [json.loads(p.read_text()) for p in paths]
    merged = dict(runs[0])
    merged["trials"] = len(runs)
    merged["results"] = {}
    for label in runs[0]["results"]:
        trials = [t for r in runs for t in r["results"][label]["trials"]]
        merged["results"][label] = {"trials": trials, "median": _bench.summarize(trials)}
    if "warmup" in runs[0]:
        merged["warmup_trials"] = [r["warmup"] for r in runs]
        merged["warmup"] = _bench.summarize([r["warmup"] for r in runs])
    return merged


def ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("inf")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--shape", choices=["chain", "fanout", "both"], default="both")
    parser.add_argument("--prefect-quiet-logs", action="store_true",
                        help="run Prefect with PREFECT_LOGGING_LEVEL=WARNING (default: its INFO logging)")
    args = parser.parse_args(argv)

    mloop_python = str(MLOOP_PYTHON if MLOOP_PYTHON.exists() else sys.executable)
    prefect_python = str(ensure_prefect_venv())
    common = ["--steps", str(args.steps), "--trials", "1", "--shape", args.shape]
    _bench.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    log = _bench.RESULTS_DIR / "prefect_overhead.log"
    parts: dict[str, list[Path]] = {"mloop": [], "prefect": []}
    with open(log, "w") as log_file:
        for trial in range(args.trials):
            print(f"== trial {trial + 1}/{args.trials}: mloop", file=sys.stderr, flush=True)
            out = f"engine_overhead.trial{trial}.json"
            subprocess.run([mloop_python, str(_bench.BENCH_DIR / "engine_overhead.py"), *common, "--output", out],
                           check=True, stdout=subprocess.DEVNULL)
            parts["mloop"].append(_bench.RESULTS_DIR / out)
            print(f"== trial {trial + 1}/{args.trials}: prefect (its log: {log})", file=sys.stderr, flush=True)
            out = f"prefect_overhead.trial{trial}.json"
            home = tempfile.mkdtemp(prefix="prefect-home-")
            try:
                subprocess.run([prefect_python, str(_bench.BENCH_DIR / "prefect_overhead.py"), *common,
                                "--job-python", mloop_python, "--output", out,
                                *(["--quiet-logs"] if args.prefect_quiet_logs else [])],
                               check=True, env=prefect_env(home), stdout=subprocess.DEVNULL, stderr=log_file)
            finally:
                shutil.rmtree(home, ignore_errors=True)
            parts["prefect"].append(_bench.RESULTS_DIR / out)

    mloop = merge(parts["mloop"])
    prefect = merge(parts["prefect"])
    _bench.write_json("engine_overhead.json", mloop)
    _bench.write_json("prefect_overhead.json", prefect)
    for path in parts["mloop"] + parts["prefect"]:
        path.unlink()

    _bench.print_table("mloop", mloop["results"])
    print()
    _bench.print_table(f"prefect {prefect['versions'].get('prefect', '')}", prefect["results"])
    print()
    table: dict[str, Any] = {}
    print("ratio prefect / mloop (median over trials; in brackets, median of per-trial ratios)")
    for label in mloop["results"]:
        m, p = mloop["results"][label], prefect["results"][label]
        row = {}
        for key, name, fmt in FIGURES:
            if key not in m["median"] or key not in p["median"]:
                continue
            per_trial = [ratio(pt[key], mt[key]) for mt, pt in zip(m["trials"], p["trials"])]
            row[key] = {"mloop": m["median"][key], "prefect": p["median"][key],
                        "ratio": ratio(p["median"][key], m["median"][key]),
                        "ratio_median_of_trials": statistics.median(per_trial)}
            r = row[key]
            print(f"  {label:<10} {name:<26} mloop {fmt.format(r['mloop']):>6}  "
                  f"prefect {fmt.format(r['prefect']):>6}  ratio {r['ratio']:.2f} [{r['ratio_median_of_trials']:.2f}]")
        table[label] = row
    warm = prefect["warmup"]
    first = next(iter(mloop["results"].values()))["median"]
    print(f"one-time costs, not in the figures above: prefect import {warm['import_s']:.2f} s, temporary server "
          f"start-up {warm['server_startup_s']:.2f} s, a one-task flow {warm['steady_one_task_flow_s']:.2f} s; "
          f"mloop store creation {first['open_backend_s'] * 1000:.0f} ms, "
          f"create_run {first['create_run_s'] * 1000:.0f} ms")
    _bench.write_json("compare.json", {"steps": args.steps, "trials": args.trials, "ratios": table,
                                       "prefect_warmup": warm, "versions": {**mloop["versions"],
                                                                            **prefect["versions"]}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
