"""Uploading and downloading a large dataset version to an S3 server: mloop against boto3's
transfer manager, on the same files, in the same run.

What runs (a moto server on loopback, started and stopped here; ``--endpoint`` to use another
S3-compatible server, e.g. MinIO, with credentials from the AWS_* variables):

1. ``--files`` images (BMP, random pixels) totalling ``--size-mb`` (default 1024 MB), in one
   class folder each side, written once to a temporary folder (``--workdir``).
2. per trial, each into a fresh bucket, timed alone:

   * ``mloop create``: ``create_dataset`` of the folder on an ``s3://`` artifact root (hash,
     multipart upload of each object, manifest last, the version row): what ``mloop dataset
     create`` does;
   * ``mloop export``: ``export_version`` of that version into an empty folder from a fresh home
     (download, ranged and in parallel, each object checked);
   * ``mloop put_dir`` / ``get_dir``: ``ArtifactStore`` folder copies (no hashing), the
     staging path of job inputs and outputs;
   * ``boto3 upload`` / ``download``: ``upload_file`` / ``download_file`` of each file with the
     default ``TransferConfig`` (8 MB parts, 10 threads), one file after another as mloop does.

mloop runs with its defaults (``s3_part_size_mb=16``, ``s3_concurrency=8``). MB/s is the
folder's size over the wall time.

Run: ``.venv/bin/python benchmarks/s3_staging.py --size-mb 1024 --trials 1``.
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from _bench import versions, write_json  # noqa: E402

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _make_images(folder: Path, files: int, size_mb: int) -> int:
    from PIL import Image

    per_file = size_mb * (1 << 20) // files
    side = int((per_file // 3) ** 0.5)
    total = 0
    for i in range(files):
        label = ("cat", "dog")[i % 2]
        (folder / label).mkdir(parents=True, exist_ok=True)
        path = folder / label / f"{label}{i:03d}.bmp"
        Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(path)
        total += path.stat().st_size
    return total


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _trial(endpoint: str, client: Any, src: Path, work: Path) -> dict[str, float]:
    from boto3.s3.transfer import TransferConfig

    from mloop.artifacts import ArtifactStore
    from mloop.artifacts.filesystems import set_default_storage_options
    from mloop.config import Settings
    from mloop.context import open_context
    from mloop.services import datasets as ds

    out: dict[str, float] = {}
    tag = os.urandom(4).hex()
    buckets = {k: f"bench-{k}-{tag}" for k in ("mloop", "raw", "boto")}
    for b in buckets.values():
        client.create_bucket(Bucket=b)
    root = f"s3://{buckets['mloop']}/x"
    db = work / f"mloop-{tag}.db"

    def settings(home: str) -> Settings:
        return Settings(home=work / home, database_url=f"sqlite:///{db}", artifact_root=root,
                        s3_endpoint_url=endpoint)

    with open_context(settings(f"home-a-{tag}")) as ctx:
        out["mloop create"] = _timed(lambda: ds.create_dataset(ctx, "big", str(src)))
    with open_context(settings(f"home-b-{tag}")) as ctx:
        out["mloop export"] = _timed(lambda: ds.export_version(ctx, "big", "v1", work / f"export-{tag}"))
        store = ArtifactStore(f"s3://{buckets['raw']}/x")
        out["mloop put_dir"] = _timed(lambda: store.put_dir(str(src), "data"))
        out["mloop get_dir"] = _timed(lambda: store.get_dir("data", str(work / f"get-{tag}")))
    set_default_storage_options("s3", None)

    config = TransferConfig()
    files = _files(src)

    def upload() -> None:
        for p in files:
            client.upload_file(str(p), buckets["boto"], p.relative_to(src).as_posix(), Config=config)

    def download() -> None:
        dest = work / f"boto-{tag}"
        for p in files:
            target = dest / p.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(buckets["boto"], p.relative_to(src).as_posix(), str(target), Config=config)

    out["boto3 upload"] = _timed(upload)
    out["boto3 download"] = _timed(download)
    for name in (f"export-{tag}", f"get-{tag}", f"boto-{tag}"):
        shutil.rmtree(work / name, ignore_errors=True)
    for b in buckets.values():  # free the server's memory before the next trial
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=b)
        for page in pages:
            for obj in page.get("Contents", ()):
                client.delete_object(Bucket=b, Key=obj["Key"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="size of the dataset version (default 1024)")
    parser.add_argument("--files", type=int, default=16, help="number of images (default 16)")
    parser.add_argument("--trials", type=int, default=1)
    parser.add_argument("--endpoint", help="an S3 server to use instead of starting moto")
    parser.add_argument("--workdir", help="where the files go (default: a temporary folder)")
    args = parser.parse_args()
    for k, v in CREDENTIALS.items():
        os.environ.setdefault(k, v)
    for k in [k for k in os.environ if k.startswith("MLOOP_")]:
        del os.environ[k]

    import boto3

    server = None
    if args.endpoint is None:
        from s3_helpers import start_s3_server

        server = start_s3_server()
    endpoint = args.endpoint or server.endpoint  # type: ignore[union-attr]
    work = Path(tempfile.mkdtemp(prefix="mloop-s3-bench-", dir=args.workdir))
    try:
        client = boto3.client("s3", endpoint_url=endpoint)
        src = work / "src"
        total = _make_images(src, args.files, args.size_mb)
        mb = total / (1 << 20)
        print(f"{args.files} files, {mb:.0f} MB, endpoint {endpoint}{' (moto)' if server else ''}")
        trials = [_trial(endpoint, client, src, work) for _ in range(args.trials)]
        median = {k: statistics.median(t[k] for t in trials) for k in trials[0]}
        print(f"median of {len(trials)} trial(s)")
        print(f"{'operation':<16}{'seconds':>10}{'MB/s':>10}")
        for name, seconds in median.items():
            print(f"{name:<16}{seconds:>10.2f}{mb / seconds:>10.0f}")
        path = write_json("s3_staging.json", {"versions": versions(), "files": args.files, "bytes": total,
                                              "endpoint": "moto" if server else endpoint,
                                              "trials": trials, "median_s": median})
        print(f"results: {path}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
