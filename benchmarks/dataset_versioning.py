"""Versioning a folder of 70,000 small PNGs: ``mloop dataset`` against ``dvc add``, side by side.

What runs, in one temporary folder (``--workdir`` to choose it):

1. ``repo/data/<digit>/<n>.png``: ``--images`` PNGs made from scikit-learn's ``load_digits``
   (8x8, upscaled to 16x16), each shifted by up to 2 pixels and given its own random noise, so
   every file's bytes differ. ``repo`` is a git + DVC repository (``dvc init``).
2. first version: ``mloop dataset create digits --from repo/data`` and ``dvc add data``;
3. ``--added`` more images written into the class folders, then ``mloop dataset import digits
   --from repo/data`` and ``dvc add data``;
4. nothing changed: both commands again.

Every figure is the wall time of the command as a user types it (a fresh process, start-up
included). The set-up of each tool is not timed: ``git init`` and ``dvc init`` for DVC, the
mloop home (its database and schema, made by ``mloop dataset list``) for mloop. mloop runs first in each pair; both read the same files, which were just written,
so both read from the page cache; ``sync`` runs before each timed command so that neither pays
for writing back what was written before it. Before the first version the script waits 1.5 s: mloop's
re-read cache does not trust a file modified less than 1 s before it was read (git's "racily
clean" rule), which a folder written a moment before would otherwise hit.

5. hashing throughput: a ``--big-gb`` GB file of random bytes, hashed with mloop's file hash
   (sha256, 4 MiB reads) and read by ``cat file > /dev/null``, each once with the page cache
   dropped (``/proc/sys/vm/drop_caches``, needs root; skipped otherwise) and once warm.

DVC is installed from PyPI into ``benchmarks/.venv-dvc`` on first use. mloop's modules are
byte-compiled first (``compileall``), as ``pip install`` does for an installed package and did
for DVC: a checkout run with ``PYTHONDONTWRITEBYTECODE`` set would otherwise compile ~60
modules from source in every command (~0.1 s each time).

Run: ``.venv/bin/python benchmarks/dataset_versioning.py`` (about 5 minutes with the defaults;
``--images 5000 --big-gb 0.2`` for a quick look).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results" / "dataset_versioning.json"
DVC_VENV = BENCH_DIR / ".venv-dvc"
DVC_REQUIREMENT = "dvc>=3,<4"
MLOOP = REPO_DIR / ".venv" / "bin" / "mloop"


# -- the data -------------------------------------------------------------------------------
def _write_images(args: tuple[str, int, int, int]) -> int:
    """Write images ``start .. start+count`` (run in worker processes)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    folder, start, count, seed = args
    digits = load_digits()
    rng = np.random.default_rng(seed + start)
    for i in range(start, start + count):
        k = i % len(digits.images)
        img = np.kron(digits.images[k], np.ones((2, 2))) * 15.0  # 16x16, 0..240
        img = np.roll(img, (int(rng.integers(-2, 3)), int(rng.integers(-2, 3))), axis=(0, 1))
        img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
        target = Path(folder) / str(digits.target[k])
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, mode="L").save(target / f"{i:06d}.png", optimize=False)
    return count


def make_images(folder: Path, start: int, count: int, seed: int = 0) -> None:
    chunk = 2000
    jobs = [(str(folder), s, min(chunk, start + count - s), seed) for s in range(start, start + count, chunk)]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(_write_images, jobs))


# -- the tools ------------------------------------------------------------------------------
def ensure_dvc() -> Path:
    dvc = DVC_VENV / "bin" / "dvc"
    if not dvc.exists():
        print(f"installing {DVC_REQUIREMENT} into {DVC_VENV}", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(DVC_VENV)], check=True)
        subprocess.run([str(DVC_VENV / "bin" / "pip"), "install", "-q", DVC_REQUIREMENT], check=True)
    return dvc


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    # Flush what the previous step wrote first: otherwise the kernel writes it back while this
    # command runs, and the command that follows a big write pays for it.
    subprocess.run(["sync"], check=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return wall, (proc.stdout + proc.stderr).strip()


def drop_caches() -> bool:
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# -- the measurements -----------------------------------------------------------------------
def versioning(work: Path, n_images: int, n_added: int, dvc: Path) -> dict[str, Any]:
    repo = work / "repo"
    data = repo / "data"
    data.mkdir(parents=True)
    t0 = time.perf_counter()
    make_images(data, 0, n_images)
    print(f"wrote {n_images} images in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)

    dvc_env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b",
               "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}
    for cmd in (["git", "init", "-q"], [str(dvc), "init", "-q"], [str(dvc), "config", "core.analytics", "false"]):
        subprocess.run(cmd, cwd=repo, env=dvc_env, check=True, capture_output=True)
    mloop_env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_")}
    mloop_env["MLOOP_HOME"] = str(work / "mloop-home")
    # As `dvc init` made DVC's repository before its timed commands, the mloop home (its
    # metadata database and schema) is made before mloop's: `mloop dataset list` creates it.
    subprocess.run([str(MLOOP), "dataset", "list"], cwd=repo, env=mloop_env, check=True, capture_output=True)
    time.sleep(1.5)  # see the module docstring: files written < 1 s before a read are re-read next time

    rows: dict[str, Any] = {}

    def pair(label: str, mloop_cmd: list[str]) -> None:
        m, m_out = timed([str(MLOOP), *mloop_cmd], repo, mloop_env)
        d, _ = timed([str(dvc), "add", "-q", "data"], repo, dvc_env)
        rows[label] = {"mloop_s": round(m, 3), "dvc_s": round(d, 3), "ratio": round(d / m, 2), "mloop_output": m_out}
        print(f"{label:<12} mloop {m:7.2f} s   dvc add {d:7.2f} s   dvc/mloop {d / m:5.1f}x", file=sys.stderr,
              flush=True)

    pair("first", ["dataset", "create", "digits", "--from", "data"])
    make_images(data, n_images, n_added, seed=1)
    time.sleep(1.5)
    pair("incremental", ["dataset", "import", "digits", "--from", "data"])
    pair("no-change", ["dataset", "import", "digits", "--from", "data"])

    versions = json.loads(subprocess.run([str(MLOOP), "dataset", "versions", "digits", "--json"], cwd=repo,
                                         env=mloop_env, capture_output=True, text=True, check=True).stdout)
    store = work / "mloop-home" / "artifacts" / "datasets"
    return {
        "images": n_images, "added": n_added, "results": rows,
        "versions": [{"version": v["version"], "files": v["file_count"], "stats": v["stats"]} for v in versions],
        "mloop_store_bytes": dir_size(store), "dvc_cache_bytes": dir_size(repo / ".dvc" / "cache"),
        "data_bytes": dir_size(data),
    }


def throughput(work: Path, gigabytes: float) -> dict[str, Any]:
    sys.path.insert(0, str(REPO_DIR / "src"))
    from mloop.datasets.objects import hash_path

    big = work / "big.bin"
    size = int(gigabytes * (1 << 30))
    with open(big, "wb") as fh:
        block = os.urandom(64 << 20)
        written = 0
        while written < size:
            fh.write(block[: size - written])
            written += min(len(block), size - written)
    out: dict[str, Any] = {"bytes": size}

    def cat() -> float:
        t0 = time.perf_counter()
        subprocess.run(f"cat '{big}' > /dev/null", shell=True, check=True)
        return time.perf_counter() - t0

    def hashing() -> float:
        t0 = time.perf_counter()
        hash_path(str(big))
        return time.perf_counter() - t0

    for state in ("cold", "warm"):
        if state == "cold" and not drop_caches():
            out["cold"] = None
            continue
        t_cat = cat()
        if state == "cold":
            drop_caches()
        else:
            cat()
        t_hash = hashing()
        out[state] = {"cat_MBps": round(size / t_cat / 1e6), "hash_MBps": round(size / t_hash / 1e6),
                      "cat_s": round(t_cat, 3), "hash_s": round(t_hash, 3),
                      "read_over_hash": round(t_hash / t_cat, 2)}
        print(f"{state:<5} cat {size / t_cat / 1e6:6.0f} MB/s   sha256 {size / t_hash / 1e6:6.0f} MB/s   "
              f"hash time / read time {t_hash / t_cat:4.2f}", file=sys.stderr, flush=True)
    big.unlink()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=70_000)
    parser.add_argument("--added", type=int, default=700)
    parser.add_argument("--big-gb", type=float, default=2.0)
    parser.add_argument("--workdir", type=Path, default=None, help="where to work (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    parser.add_argument("--no-save", action="store_true", help="don't write results/dataset_versioning.json")
    args = parser.parse_args(argv)

    dvc = ensure_dvc()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO_DIR / "src" / "mloop")], check=True)
    dvc_version = subprocess.run([str(dvc), "--version"], capture_output=True, text=True, check=True).stdout.strip()
    mloop_version = subprocess.run([str(MLOOP), "--version"], capture_output=True, text=True).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="mloop-dsbench-", dir=args.workdir))
    try:
        report = {
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
            "dvc_version": dvc_version, "mloop_version": mloop_version,
            "versioning": versioning(work, args.images, args.added, dvc),
            "throughput": throughput(work, args.big_gb) if args.big_gb > 0 else None,
        }
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    if not args.no_save:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
