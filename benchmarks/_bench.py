"""Shared pieces of the overhead benchmarks: the trivial job, the bare baselines, statistics,
the printed table and the JSON file.

Standard library only: ``prefect_overhead.py`` imports this from the Prefect venv, where
mloop is not installed.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
REPO_DIR = BENCH_DIR.parent

#: The job every orchestrator runs: a Python interpreter that starts, imports nothing new and exits.
NOOP_SOURCE = "import sys\n"


def make_code_dir(root: str | os.PathLike[str]) -> str:
    """A tiny code folder holding ``noop.py``; returns its absolute path."""
    code = Path(root) / "noop_code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "noop.py").write_text(NOOP_SOURCE)
    return str(code)


def run_noop(python: str, code_dir: str) -> float:
    """Spawn the trivial job once, as ``subprocess.run`` does it; returns its wall time in seconds."""
    t0 = time.perf_counter()
    subprocess.run([python, "noop.py"], cwd=code_dir, stdin=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def bare_sequential(n: int, python: str, code_dir: str) -> dict[str, Any]:
    """``n`` spawns one after another: the chain's floor."""
    cpu = CpuMeter()
    t0 = time.perf_counter()
    each = [run_noop(python, code_dir) for _ in range(n)]
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "per_process_ms": median_ms(each), "parallel": 1, **cpu.per_step(n)}


def bare_fanout(n: int, python: str, code_dir: str, parallel: int) -> dict[str, Any]:
    """One spawn, then ``n - 1`` on a pool of ``parallel`` threads: the fan-out's floor."""
    cpu = CpuMeter()
    t0 = time.perf_counter()
    each = [run_noop(python, code_dir)]
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        each += list(pool.map(lambda _: run_noop(python, code_dir), range(n - 1)))
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "per_process_ms": median_ms(each), "parallel": parallel, **cpu.per_step(n)}


# -- CPU time ---------------------------------------------------------------------------------
def _live_children_cpu_s() -> float:
    """CPU seconds used so far by this process's live (not yet reaped) child processes, e.g.
    Prefect's temporary server; finished jobs are counted by RUSAGE_CHILDREN instead."""
    me, total, tick = os.getpid(), 0.0, os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] != "Z":  # ppid; zombies are about to be reaped
            total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return total


def wait_helpers_idle(window_s: float = 0.5, idle_ms: float = 25.0, limit_s: float = 120.0) -> float:
    """Wait until live child processes use less than ``idle_ms`` of CPU in ``window_s``;
    returns the seconds waited."""
    t0 = time.perf_counter()
    last = _live_children_cpu_s()
    while time.perf_counter() - t0 < limit_s:
        time.sleep(window_s)
        now = _live_children_cpu_s()
        if (now - last) * 1000 < idle_ms:
            break
        last = now
    return time.perf_counter() - t0


class CpuMeter:
    """CPU time spent from construction on: by this process (all threads), by the jobs it
    spawned and reaped, and by helper processes still alive. Unlike wall time, CPU time
    hardly moves when other users load the machine, so it is the steadier overhead figure."""

    def __init__(self) -> None:
        self.start = self._now()

    @staticmethod
    def _now() -> tuple[float, float, float]:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime, _live_children_cpu_s()

    def per_step(self, steps: int, settle: bool = False) -> dict[str, float]:
        """CPU ms per step so far. With ``settle``, first wait until helper processes are idle
        again: Prefect's server records a flow's events after the flow has returned, and that
        work belongs to the flow, not to whatever runs next."""
        if settle:
            wait_helpers_idle()
        end = self._now()
        own, jobs, helpers = ((b - a) / steps * 1000 for a, b in zip(self.start, end))
        return {"cpu_self_ms_per_step": own, "cpu_jobs_ms_per_step": jobs, "cpu_helpers_ms_per_step": helpers,
                "cpu_ms_per_step": own + jobs + helpers}


# -- statistics -------------------------------------------------------------------------------
def median_ms(seconds: Iterable[float]) -> float:
    return statistics.median(seconds) * 1000.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summarize(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """The median over trials of every numeric field the trials share."""
    keys = [k for k, v in trials[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return {k: statistics.median(t[k] for t in trials if k in t) for k in keys}


# -- reporting --------------------------------------------------------------------------------
def versions(extra: dict[str, str] | None = None) -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_DIR, capture_output=True,
                                text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"python": platform.python_version(), "mloop_commit": commit, "cpus": os.cpu_count(),
            "platform": platform.platform(), "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), **(extra or {})}


#: Columns of the printed table: (key in a summary, header, format).
COLUMNS = [
    ("bare_wall_s", "bare wall s", "{:.2f}"),
    ("bare_per_process_ms", "bare spawn ms", "{:.1f}"),
    ("wall_s", "wall s", "{:.2f}"),
    ("overhead_ms_per_step", "overhead ms/step", "{:.1f}"),
    ("step_overhead_median_ms", "median step ms", "{:.1f}"),
    ("step_overhead_p90_ms", "p90 step ms", "{:.1f}"),
    ("cpu_overhead_ms_per_step", "CPU overhead ms/step", "{:.1f}"),
]


def print_table(tool: str, results: dict[str, Any], file: Any = None) -> None:
    file = file or sys.stdout
    header = ["shape", *[h for _, h, _ in COLUMNS]]
    rows = []
    for shape, data in results.items():
        s = data["median"]
        rows.append([shape, *[(fmt.format(s[k]) if k in s else "-") for k, _, fmt in COLUMNS]])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"{tool}: median of {len(next(iter(results.values()))['trials'])} trials", file=file)
    for r in [header, *rows]:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)), file=file)


def write_json(name: str, payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / name
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def shapes_for(arg: str, parallel: int) -> list[tuple[str, str, int]]:
    """(label, shape, parallelism) for ``--shape chain|fanout|both``: a fan-out runs at the
    default parallelism and at 1, which is comparable with the chain."""
    out: list[tuple[str, str, int]] = []
    if arg in ("chain", "both"):
        out.append(("chain", "chain", 1))
    if arg in ("fanout", "both"):
        out.append((f"fanout_p{parallel}", "fanout", parallel))
        if parallel != 1:
            out.append(("fanout_p1", "fanout", 1))
    return out
