"""Per-job environments: a job whose code folder holds a requirements.txt, first use and reuse,
against making a fresh venv by hand (``python -m venv`` + ``pip install -r``) and running it.

Per trial, each on a fresh home (``open_backend``, ``create_run``, ``execute_run`` with no
display; wall time of ``execute_run``, so the engine's own per-run cost is in every mloop
figure):

* ``mloop_no_env``: the same job with no requirements.txt (the floor: what a run costs today);
* ``mloop_first_cold``: first use, uv's cache empty (``UV_CACHE_DIR`` fresh): the environment is
  built with packages downloaded from the index;
* ``mloop_first_warm``: first use in another fresh home, uv's cache holding the packages (a
  machine that has built any environment with them before);
* ``mloop_reuse``: the same job again in that home: the environment is reused;
* ``venv_pip_cold``: ``python -m venv`` + ``pip install --no-cache-dir -r`` + run the job;
* ``venv_pip_warm``: the same with pip's cache (its default);
* ``bare_rerun``: the job run again in that venv by hand (the floor of a reuse).

The job imports its requirements and exits. The JSON under ``benchmarks/results/`` has every
trial, the medians and the versions.

Run: ``.venv/bin/python benchmarks/job_env.py --trials 3`` (about a minute on 2 cores; needs
the index: PyPI by default).
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
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _bench  # noqa: E402

from mloop import workflow as wf  # noqa: E402
from mloop.config import Settings  # noqa: E402
from mloop.runs import create_run, execute_run, open_backend  # noqa: E402

REQUIREMENTS = ["six==1.16.0", "tomli==2.0.1", "attrs==23.2.0", "idna==3.6"]


def job_source(requirements: list[str]) -> str:
    modules = {"six": "six", "tomli": "tomli", "attrs": "attrs", "idna": "idna"}
    names = [modules.get(r.split("==")[0], r.split("==")[0].replace("-", "_")) for r in requirements]
    return "".join(f"import {n}\n" for n in names)


def make_code(root: str, requirements: list[str] | None) -> str:
    code = os.path.join(root, "code")
    os.makedirs(code, exist_ok=True)
    with open(os.path.join(code, "job.py"), "w") as fh:
        fh.write(job_source(requirements or []))
    if requirements:
        with open(os.path.join(code, "requirements.txt"), "w") as fh:
            fh.write("\n".join(requirements) + "\n")
    return code


def spec(code: str) -> Any:
    step = wf.steps.JobStep(name="job", algorithm=wf.BaseAlgorithm(code_dir=code, boot_file="job.py"),
                            spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})))
    return wf.Workflow(name="job-env", desc="per-job environment benchmark", steps=[step]).compile()


def mloop_run(home: str, code: str) -> float:
    backend = open_backend(Settings(home=home, step_cache=False))
    try:
        run = create_run(backend, spec(code), {})
        t0 = time.perf_counter()
        execute_run(backend, run.id)
        wall = time.perf_counter() - t0
        status = backend.store.get_run(run.id).status
        if status != "succeeded":
            raise SystemExit(f"the run {status}: see {home}/runs/{run.id}/steps/job/job.log")
        return wall
    finally:
        backend.close()


def venv_pip(root: str, code: str, cache: bool) -> tuple[float, float]:
    """(make a venv, install, run the job), then (run the job again): wall seconds of each."""
    venv = os.path.join(root, f"venv-{'warm' if cache else 'cold'}")
    python = os.path.join(venv, "bin", "python")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", *([] if cache else ["--no-cache-dir"]),
                    "-r", os.path.join(code, "requirements.txt")], check=True, stdin=subprocess.DEVNULL)
    subprocess.run([python, "job.py"], cwd=code, check=True)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    subprocess.run([python, "job.py"], cwd=code, check=True)
    return first, time.perf_counter() - t0


def trial(requirements: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="mloop-jobenv-") as root:
        plain = make_code(os.path.join(root, "plain"), None)
        code = make_code(os.path.join(root, "env"), requirements)
        out["mloop_no_env"] = mloop_run(os.path.join(root, "home0"), plain)
        saved = os.environ.get("UV_CACHE_DIR")
        os.environ["UV_CACHE_DIR"] = os.path.join(root, "uv-cache")
        try:
            out["mloop_first_cold"] = mloop_run(os.path.join(root, "home1"), code)
            out["mloop_first_warm"] = mloop_run(os.path.join(root, "home2"), code)
            out["mloop_reuse"] = mloop_run(os.path.join(root, "home2"), code)
        finally:
            if saved is None:
                os.environ.pop("UV_CACHE_DIR", None)
            else:
                os.environ["UV_CACHE_DIR"] = saved
        out["venv_pip_cold"], _ = venv_pip(root, code, cache=False)
        out["venv_pip_warm"], out["bare_rerun"] = venv_pip(root, code, cache=True)
        shutil.rmtree(os.path.join(root, "uv-cache"), ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--requirements", nargs="+", default=REQUIREMENTS)
    args = parser.parse_args()
    trials = []
    for i in range(args.trials):
        print(f"trial {i + 1}/{args.trials} ...", file=sys.stderr, flush=True)
        trials.append(trial(args.requirements))
    medians = {k: statistics.median(t[k] for t in trials) for k in trials[0]}
    print(f"\n{len(args.requirements)} requirements: {' '.join(args.requirements)}")
    print(f"{'case':<20}{'median s':>10}{'min s':>10}")
    for key, value in medians.items():
        print(f"{key:<20}{value:>10.2f}{min(t[key] for t in trials):>10.2f}")
    path = _bench.write_json("job_env.json", {"benchmark": "job_env", "versions": _bench.versions(),
                                         "requirements": args.requirements, "trials": trials, "median": medians})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
