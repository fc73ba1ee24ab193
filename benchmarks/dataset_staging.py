"""Staging a dataset version for a job: hard links (the old, unsafe way) against reflink-or-copy
(what mloop does since issue 9), and what the integrity checks cost.

What runs, in one temporary folder (``--workdir`` to choose it; it must be on the file system
being measured):

1. ``--files`` files of ``--size-kb`` KB of random bytes (default 1,000 x 200 KB = 200 MB; over
   ``PACK_MAX``, so every one is a loose object, the case hard links were used for), ingested
   into a local object store (``ObjectStore.ingest``, which seals each object).
2. per trial, into a fresh folder, each timed alone (``sync`` before each, so no timing pays
   for writing back the previous one's pages):

   * ``hardlink``: ``os.link`` of every object (what staging did before; on a second store,
     since a link moves the object's ctime and so unseals it);
   * ``clone``: ``ObjectStore.copy_out_many(link=True)``: a reflink (``FICLONE``) per file where
     the file system has them, else an in-kernel copy (``copy_file_range``);
   * ``runner``: the job runner's ``_lay_out`` of the same file list (the path a JobStep takes);
   * ``copyfile``: ``shutil.copyfile`` per file, for reference;
   * ``check``: the cheap check a staging or export does first (``ObjectStore.check``: a stat
     per object against its seal, a fresh ``ObjectStore`` so the seal file is read too);
   * ``verify``: ``mloop dataset verify``'s full sha256 of every object (warm page cache).

Run: ``.venv/bin/python benchmarks/dataset_staging.py`` (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import versions, write_json  # noqa: E402

from mloop.artifacts import ArtifactStore  # noqa: E402
from mloop.datasets.objects import ObjectStore  # noqa: E402


def _timed(fn) -> float:  # noqa: ANN001
    os.sync()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--size-kb", type=int, default=200)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()

    from mloop.runner import _lay_out

    work = Path(tempfile.mkdtemp(prefix="mloop-staging-", dir=args.workdir))
    try:
        src = work / "src"
        src.mkdir()
        paths = []
        for i in range(args.files):
            p = src / f"{i:05d}.bin"
            p.write_bytes(os.urandom(args.size_kb * 1000))
            paths.append(str(p))
        store = ObjectStore(ArtifactStore(str(work / "artifacts")))
        t0 = time.perf_counter()
        ingested = store.ingest(paths)
        ingest_s = time.perf_counter() - t0
        # Hard links move the objects' ctime (the link count), which unseals them: the hard-link
        # trials use a store of their own, so the checks below see the store as staging leaves it.
        linked_store = ObjectStore(ArtifactStore(str(work / "artifacts-linked")))
        linked_store.ingest(paths)
        items = [(f.hash, f.size) for f in ingested]
        files = [{"path": f"train/x/{i:05d}.bin", "url": store.object_url(f.hash), "size": f.size}
                 for i, f in enumerate(ingested)]
        total = sum(f.size for f in ingested)

        def dest(kind: str, trial: int) -> Path:
            d = work / f"{kind}-{trial}"
            (d / "train" / "x").mkdir(parents=True)
            return d

        trials: dict[str, list[float]] = {k: [] for k in ("hardlink", "clone", "runner", "copyfile", "check",
                                                           "verify")}
        reflinked = 0
        for t in range(args.trials):
            d = dest("hardlink", t)
            trials["hardlink"].append(_timed(lambda: [os.link(linked_store.object_path(h), d / x["path"])
                                                      for (h, _), x in zip(items, files)]))
            d2 = dest("clone", t)

            def clone() -> None:
                nonlocal reflinked
                reflinked = ObjectStore(store.artifacts).copy_out_many(
                    [(h, str(d2 / x["path"])) for (h, _), x in zip(items, files)], link=True)

            trials["clone"].append(_timed(clone))
            d3 = work / f"runner-{t}"
            trials["runner"].append(_timed(lambda: _lay_out(files, str(d3))))
            d4 = dest("copyfile", t)
            trials["copyfile"].append(_timed(lambda: [shutil.copyfile(store.object_path(h), d4 / x["path"])
                                                      for (h, _), x in zip(items, files)]))
            damaged: dict[str, str] = {}
            trials["check"].append(_timed(lambda: damaged.update(ObjectStore(store.artifacts).check(items))))
            trials["verify"].append(_timed(lambda: damaged.update(ObjectStore(store.artifacts).check(items,
                                                                                                     full=True))))
            assert not damaged, damaged
            for kind in ("hardlink", "clone", "runner", "copyfile"):
                shutil.rmtree(work / f"{kind}-{t}")

        medians = {k: statistics.median(v) for k, v in trials.items()}
        print(f"{args.files} files, {total / 1e6:.0f} MB, ingest {ingest_s:.2f} s; "
              f"reflinked {reflinked} of {args.files} (0: the file system has no reflinks, copies)")
        print(f"{'what':<10} {'median ms':>10} {'min ms':>8}  trials")
        for k, v in trials.items():
            print(f"{k:<10} {medians[k] * 1e3:>10.1f} {min(v) * 1e3:>8.1f}  "
                  + " ".join(f"{x * 1e3:.1f}" for x in v))
        out = write_json("dataset_staging.json", {"files": args.files, "bytes": total, "ingest_s": ingest_s,
                                              "reflinked": reflinked, "trials": trials, "medians": medians,
                                              "versions": versions()})
        print(f"wrote {out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
