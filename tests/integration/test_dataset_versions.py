"""Versioned datasets on real files, real SQLite and PostgreSQL, a real (local or in-memory) artifact store.

Every behaviour here goes through :mod:`mloop.services.datasets`, the functions the CLI, the
dataset steps and the REST API call.
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

from mloop.config import Settings
from mloop.datasets.objects import PACK_MAX, ObjectStore
from mloop.errors import DatasetConflictError, DatasetError, DatasetFormatError, NotFoundError
from mloop.context import Context
from mloop.runs import open_backend
from mloop.services import datasets as ds

PAST = 1_600_000_000  # a modification time well outside the re-read cache's racy window


def write_png(path: Path, seed: int, size: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)
    Image.fromarray(pixels, mode="L").save(path)
    os.utime(path, (PAST, PAST))


def image_folder(root: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    """``root/<class>/<n>.png`` with every image's bytes different."""
    for label, n in per_class.items():
        for i in range(n):
            write_png(root / label / f"{i:03d}.png", seed=hash((seed, label, i)) & 0xFFFFFFF)
    return root


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'mloop.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


def make_backend(tmp_path: Path, database_url: str, machine: str = "a", artifact_root: str | None = None) -> Context:
    settings = Settings(home=tmp_path / f"home-{machine}", database_url=database_url,
                        artifact_root=artifact_root or str(tmp_path / "artifacts"))
    return open_backend(settings, reconcile=False)


@pytest.fixture
def backend(tmp_path: Path, database_url: str) -> Iterator[Context]:
    """On SQLite and PostgreSQL: for behaviour that involves the metadata store."""
    with make_backend(tmp_path, database_url) as b:
        yield b


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Context]:
    """On SQLite only: for behaviour of the files and the artifact store."""
    with make_backend(tmp_path, f"sqlite:///{tmp_path / 'db' / 'mloop.db'}") as b:
        yield b


def object_count(backend: Context) -> int:
    return ObjectStore(backend.artifacts).count()


# -- the round trip ----------------------------------------------------------------------------------
def test_create_import_diff_export_round_trip_byte_for_byte(backend: Context, tmp_path: Path) -> None:
    src = image_folder(tmp_path / "src", {"cat": 4, "dog": 3})
    (src / "README.txt").write_text("not a sample, still versioned\n")
    v1 = ds.create_dataset(backend, "pets", src, description="cats and dogs")
    assert (v1.version, v1.number, v1.sample_count, v1.file_count, v1.classes) == ("v1", 1, 7, 8, ["cat", "dog"])

    # v2: one image added, one changed in place, one moved to another class.
    write_png(src / "cat" / "100.png", seed=999)
    write_png(src / "dog" / "000.png", seed=1234)
    os.utime(src / "dog" / "000.png", (PAST + 60, PAST + 60))  # edited later than it was first versioned
    (src / "cat" / "002.png").rename(src / "dog" / "010.png")
    v2 = ds.import_data(backend, "pets", src, replace=True)
    assert (v2.version, v2.parent, v2.sample_count) == ("v2", "v1", 8)

    diff = ds.diff_versions(backend, "pets", "v1", "v2")
    assert diff.added == ["cat/100.png", "dog/010.png"]
    assert diff.removed == ["cat/002.png"]
    assert diff.changed == ["dog/000.png"]
    assert (diff.files_added, diff.files_removed, diff.files_changed) == (2, 1, 1)

    for version in ("v1", "v2"):
        out = ds.export_version(backend, "pets", version, tmp_path / f"export-{version}")
        manifest = ds.load_manifest(backend, ds.get_version(backend, "pets", version))
        exported = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
        assert exported == [f.path for f in manifest.files]
        for f in manifest.files:
            data = (out / f.path).read_bytes()
            assert hashlib.sha256(data).hexdigest() == f.hash and len(data) == f.size
    # v2's export equals the source folder as it is now, byte for byte.
    cmp = filecmp.dircmp(src, tmp_path / "export-v2")
    assert not cmp.left_only and not cmp.right_only and not cmp.diff_files
    for sub in cmp.subdirs.values():
        assert not sub.left_only and not sub.right_only
        assert filecmp.cmpfiles(sub.left, sub.right, sub.common_files, shallow=False)[1:] == ([], [])

    assert [v.version for v in ds.list_versions(backend, "pets")] == ["v1", "v2"]
    [listed] = ds.list_datasets(backend)
    assert (listed.name, listed.latest_version, listed.version_count, listed.description) == (
        "pets", "v2", 2, "cats and dogs")


def test_import_adds_to_the_latest_version_and_keeps_the_rest(local: Context, tmp_path: Path) -> None:
    ds.create_dataset(local, "digits", image_folder(tmp_path / "a", {"0": 3, "1": 3}))
    more = image_folder(tmp_path / "b", {"1": 2, "2": 2}, seed=7)
    v2 = ds.import_data(local, "digits", more)
    assert (v2.sample_count, v2.classes) == (6 + 2, ["0", "1", "2"])  # b/1/000.png replaced a's, 1 new, 2 new
    diff = ds.diff_versions(local, "digits", "v1", "v2")
    assert diff.added == ["2/000.png", "2/001.png"] and diff.changed == ["1/000.png", "1/001.png"]
    assert diff.removed == []


def test_unchanged_folder_makes_no_new_version(local: Context, tmp_path: Path) -> None:
    src = image_folder(tmp_path / "src", {"a": 3})
    v1 = ds.create_dataset(local, "same", src)
    again = ds.import_data(local, "same", src)
    assert again.version == "v1" and again.stats["unchanged"] is True and again.stats["read"] == 0
    assert [v.version for v in ds.list_versions(local, "same")] == [v1.version]


# -- content addressing ------------------------------------------------------------------------------
def test_files_shared_by_versions_are_stored_once(backend: Context, tmp_path: Path) -> None:
    src = image_folder(tmp_path / "src", {"a": 5, "b": 5})
    ds.create_dataset(backend, "dedupe", src)
    assert object_count(backend) == 10
    write_png(src / "a" / "new.png", seed=4242)
    v2 = ds.import_data(backend, "dedupe", src)
    assert v2.stats["stored_objects"] == 1
    assert object_count(backend) == 11  # 10 shared + 1 new, not 21

    # The same bytes under another name, in another dataset: no new object either.
    copy = tmp_path / "copy"
    (copy / "x").mkdir(parents=True)
    (copy / "x" / "same-bytes.png").write_bytes((src / "a" / "000.png").read_bytes())
    other = ds.create_dataset(backend, "other", copy)
    assert other.stats["stored_objects"] == 0 and object_count(backend) == 11

    # A release and a relabel store a manifest and nothing else.
    ds.release_version(backend, "dedupe", ratio=0.6)
    ds.relabel(backend, "dedupe", None, {"a/000.png": ["b"]})
    assert object_count(backend) == 11


def test_objects_are_named_by_their_sha256_and_read_only(local: Context, tmp_path: Path) -> None:
    src = image_folder(tmp_path / "src", {"a": 1})
    write_png(src / "a" / "big.png", seed=3, size=300)  # ~90 KB of noise: over PACK_MAX, a loose object
    ds.create_dataset(local, "named", src)
    big = (src / "a" / "big.png").read_bytes()
    assert len(big) > PACK_MAX
    obj = Path(local.artifacts.root) / "datasets" / "objects" / hashlib.sha256(big).hexdigest()[:2]
    obj = obj / hashlib.sha256(big).hexdigest()[2:]
    assert obj.read_bytes() == big
    assert obj.stat().st_mode & 0o222 == 0
    # A small file is packed: the pack is named by its own sha256, and its index says where the bytes are.
    small = (src / "a" / "000.png").read_bytes()
    pack_name, offset, size = ObjectStore(local.artifacts).pack_index()[hashlib.sha256(small).hexdigest()]
    pack = Path(local.artifacts.root) / "datasets" / "packs" / f"{pack_name}.pack"
    assert hashlib.sha256(pack.read_bytes()).hexdigest() == pack_name
    assert pack.read_bytes()[offset:offset + size] == small
    assert pack.stat().st_mode & 0o222 == 0


# -- releases and labels -----------------------------------------------------------------------------
def test_release_split_is_deterministic_and_stratified(backend: Context, tmp_path: Path) -> None:
    src = image_folder(tmp_path / "src", {"a": 20, "b": 10, "c": 5})
    ds.create_dataset(backend, "strat", src)
    r1 = ds.release_version(backend, "strat", ratio=0.8, seed=3)
    r2 = ds.release_version(backend, "strat", "v1", ratio=0.8, seed=3)
    r3 = ds.release_version(backend, "strat", "v1", ratio=0.8, seed=4, version_name="seed-four")
    assert (r1.version, r2.version, r3.version) == ("v2", "v3", "seed-four")
    assert r1.release == {"ratio": 0.8, "seed": 3, "train": 28, "eval": 7, "of": "v1"}

    def splits(version: str) -> dict[str, str]:
        manifest = ds.load_manifest(backend, ds.get_version(backend, "strat", version))
        return {s.id: s.split or "" for s in manifest.samples}

    s1, s2, s3 = splits("v2"), splits("v3"), splits("seed-four")
    assert s1 == s2 != s3
    per_label = Counter((sid.split("/")[0], split) for sid, split in s1.items())
    assert per_label == {("a", "train"): 16, ("a", "eval"): 4, ("b", "train"): 8, ("b", "eval"): 2,
                         ("c", "train"): 4, ("c", "eval"): 1}
    # The release shares every file with v1: same file list, a manifest of its own.
    v1 = ds.get_version(backend, "strat", "v1")
    assert r1.manifest_hash != v1.manifest_hash
    assert ds.load_manifest(backend, r1).files == ds.load_manifest(backend, v1).files


def test_release_refuses_a_ratio_outside_0_1_and_unknown_versions(backend: Context, tmp_path: Path) -> None:
    ds.create_dataset(backend, "ratio", image_folder(tmp_path / "src", {"a": 2}))
    for bad in (0, 1, 1.5, -0.2, "x"):
        with pytest.raises(DatasetError, match="not between 0 and 1") as info:
            ds.release_version(backend, "ratio", ratio=bad)  # type: ignore[arg-type]
        assert info.value.hint
    with pytest.raises(NotFoundError, match="no version v7") as missing:
        ds.release_version(backend, "ratio", "v7")
    assert "v1" in (missing.value.hint or "")
    with pytest.raises(DatasetError, match="already taken"):
        ds.release_version(backend, "ratio", version_name="r1")
        ds.release_version(backend, "ratio", version_name="r1")
    assert [v.version for v in ds.list_versions(backend, "ratio")] == ["v1", "r1"]


def test_relabel_makes_a_version_with_the_same_files_and_new_labels(backend: Context, tmp_path: Path) -> None:
    ds.create_dataset(backend, "lab", image_folder(tmp_path / "src", {"cat": 2, "dog": 2}))
    v2 = ds.relabel(backend, "lab", "v1", {"cat/000.png": ["dog"], "dog/001.png": ["bird", "dog"]},
                    description="fixed two labels")
    assert (v2.version, v2.parent, v2.classes, v2.description) == ("v2", "v1", ["bird", "cat", "dog"],
                                                                   "fixed two labels")
    diff = ds.diff_versions(backend, "lab", "v1", "v2")
    assert [(c.id, c.before, c.after) for c in diff.label_changes] == [
        ("cat/000.png", ("cat",), ("dog",)), ("dog/001.png", ("dog",), ("bird", "dog"))]
    assert diff.added == diff.removed == diff.changed == []
    with pytest.raises(DatasetError, match="not in lab:v2"):
        ds.relabel(backend, "lab", "v2", {"nope.png": ["cat"]})


def test_materialize_writes_the_job_layout(local: Context, tmp_path: Path) -> None:
    src = image_folder(tmp_path / "src", {"cat": 5, "dog": 5})
    write_png(src / "loose.png", seed=77)  # no class folder: an unlabeled sample
    write_png(src / "cat" / "big.png", seed=78, size=300)  # over PACK_MAX: a loose object
    ds.create_dataset(local, "layout", src)
    unreleased = ds.materialize(local, "layout", "v1", tmp_path / "job-v1")
    assert sorted(p.name for p in unreleased.iterdir()) == ["manifest.json", "train", "unlabeled"]
    assert (unreleased / "train" / "cat" / "000.png").read_bytes() == (src / "cat" / "000.png").read_bytes()
    release = ds.release_version(local, "layout", ratio=0.6, seed=1)
    out = ds.materialize(local, "layout", release.version, tmp_path / "job")
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["version"] == "v2" and doc["splits"] == ["train", "eval"]
    for sample in doc["samples"]:
        placed = out / sample["path"]
        assert placed.read_bytes() == (src / sample["file"]).read_bytes()
        if sample["labels"]:
            assert sample["path"] == f"{sample['split']}/{sample['labels'][0]}/{Path(sample['file']).name}"
    assert len(list((out / "train" / "cat").iterdir())) == 4 and len(list((out / "eval" / "dog").iterdir())) == 2
    # Loose objects are files of their own (reflinks or copies), never the store's inode: a job
    # writing to its input can't change the store (issue 9: root ignores the objects' 0o444).
    digest = hashlib.sha256((src / "cat" / "big.png").read_bytes()).hexdigest()
    obj = Path(local.artifacts.root) / "datasets" / "objects" / digest[:2] / digest[2:]
    placed = next(out.glob("*/cat/big.png"))
    assert placed.stat().st_ino != obj.stat().st_ino and obj.stat().st_nlink == 1
    assert next(out.glob("*/cat/000.png")).stat().st_nlink == 1
    with pytest.raises(DatasetError, match="not an empty folder"):
        ds.materialize(local, "layout", release.version, out)


# -- the re-read cache ---------------------------------------------------------------------------------
def test_reversioning_reads_only_changed_files(local: Context, tmp_path: Path) -> None:
    src = image_folder(tmp_path / "src", {"a": 10, "b": 10})
    v1 = ds.create_dataset(local, "cache", src)
    assert (v1.stats["read"], v1.stats["cache_hits"]) == (20, 0)
    write_png(src / "a" / "003.png", seed=31337)  # changed (new bytes, old mtime set by write_png)
    os.utime(src / "a" / "003.png", (PAST + 5, PAST + 5))
    write_png(src / "b" / "new.png", seed=4)
    v2 = ds.import_data(local, "cache", src)
    assert (v2.stats["read"], v2.stats["cache_hits"], v2.stats["files"]) == (2, 19, 21)
    assert ds.diff_versions(local, "cache", "v1", "v2").changed == ["a/003.png"]
    # Same size and mtime but another inode (a file replaced by a copy, renamed over it) is read again.
    tmp = src / "b" / ".000.png.tmp"
    tmp.write_bytes((src / "b" / "000.png").read_bytes())
    os.utime(tmp, (PAST, PAST))
    os.replace(tmp, src / "b" / "000.png")
    v3 = ds.import_data(local, "cache", src)
    assert v3.stats["unchanged"] is True and v3.stats["read"] == 1


def test_files_modified_just_before_reading_are_read_again(local: Context, tmp_path: Path) -> None:
    src = tmp_path / "src" / "a"
    src.mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8), mode="L").save(src / "fresh.png")  # mtime: now
    ds.create_dataset(local, "racy", src.parent)
    again = ds.import_data(local, "racy", src.parent)
    assert again.stats["read"] == 1  # not trusted: it could change within the same clock tick


# -- a second machine ----------------------------------------------------------------------------------
def test_a_second_machine_exports_every_version(tmp_path: Path, database_url: str) -> None:
    src = image_folder(tmp_path / "src", {"x": 3, "y": 3})
    with make_backend(tmp_path, database_url, "one") as first:
        ds.create_dataset(first, "shared", src)
        write_png(src / "x" / "more.png", seed=5)
        ds.import_data(first, "shared", src)
    for p in src.rglob("*.png"):
        p.unlink()  # the source is gone: only the store and the database are left
    with make_backend(tmp_path, database_url, "two") as second:
        for version, count in (("v1", 6), ("v2", 7)):
            out = ds.export_version(second, "shared", version, tmp_path / f"two-{version}")
            assert len(list(out.rglob("*.png"))) == count
        assert ds.diff_versions(second, "shared", "v1", "v2").added == ["x/more.png"]


def test_a_remote_artifact_store_works_through_fsspec(tmp_path: Path) -> None:
    root = f"memory://mloop-test-{uuid.uuid4().hex[:8]}"
    src = image_folder(tmp_path / "src", {"a": 3, "b": 2})
    with make_backend(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", artifact_root=root) as backend:
        assert ObjectStore(backend.artifacts).local_root is None
        ds.create_dataset(backend, "remote", src)
        write_png(src / "b" / "new.png", seed=8)
        v2 = ds.import_data(backend, "remote", src)
        assert v2.stats["stored_objects"] == 1 and object_count(backend) == 6
        out = ds.materialize(backend, "remote", "v2", tmp_path / "job")
        assert (out / "train" / "b" / "new.png").read_bytes() == (src / "b" / "new.png").read_bytes()
        backend.artifacts.rm(root, recursive=True)


# -- interruption and concurrency ----------------------------------------------------------------------
def test_a_failed_import_leaves_no_version_and_the_retry_reuses_stored_files(backend: Context, tmp_path: Path) -> None:
    src = image_folder(tmp_path / "src", {"a": 3})
    ds.create_dataset(backend, "crash", src)
    for i in range(300):
        write_png(src / "b" / f"{i:03d}.png", seed=10_000 + i)

    def explode(phase: str, done: int, total: int) -> None:
        if phase == "storing" and done >= 256:
            raise KeyboardInterrupt("simulated interruption")

    with pytest.raises(KeyboardInterrupt):
        ds.import_data(backend, "crash", src, progress=explode)
    assert [v.version for v in ds.list_versions(backend, "crash")] == ["v1"]
    assert ds.export_version(backend, "crash", "v1", tmp_path / "still-v1").joinpath("a", "000.png").exists()
    stored_before_retry = object_count(backend)
    assert stored_before_retry > 3
    v2 = ds.import_data(backend, "crash", src)
    assert v2.version == "v2" and v2.sample_count == 303
    assert v2.stats["stored_objects"] == 303 - stored_before_retry


@pytest.mark.slow
def test_a_killed_import_process_leaves_no_partial_version(tmp_path: Path, database_url: str) -> None:
    src = image_folder(tmp_path / "src", {"a": 2})
    with make_backend(tmp_path, database_url) as backend:
        ds.create_dataset(backend, "killed", src)
    for i in range(600):
        write_png(src / "b" / f"{i:04d}.png", seed=20_000 + i)
    marker = tmp_path / "storing"
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from mloop.config import Settings
        from mloop.runs import open_backend
        from mloop.services import datasets as ds
        backend = open_backend(Settings(home={str(tmp_path / 'home-a')!r}, database_url={database_url!r},
                                        artifact_root={str(tmp_path / 'artifacts')!r}), reconcile=False)
        def slow(phase, done, total):
            if phase == "storing" and done:
                Path({str(marker)!r}).touch()
                time.sleep(0.2)
        ds.import_data(backend, "killed", {str(src)!r}, progress=slow)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the import never started storing"
            time.sleep(0.02)
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    with make_backend(tmp_path, database_url) as backend:
        assert [v.version for v in ds.list_versions(backend, "killed")] == ["v1"]
        v2 = ds.import_data(backend, "killed", src)
        assert v2.sample_count == 602
        out = ds.export_version(backend, "killed", "v2", tmp_path / "out")
        assert all((out / p.relative_to(src)).read_bytes() == p.read_bytes() for p in src.rglob("*.png"))


def test_an_import_refuses_to_commit_over_a_version_made_meanwhile(backend: Context, tmp_path: Path) -> None:
    src = image_folder(tmp_path / "src", {"a": 2})
    v1 = ds.create_dataset(backend, "race", src)
    repo = backend.store.datasets  # type: ignore[attr-defined]
    repo.add_version("race", manifest_hash=v1.manifest_hash, format=v1.format, parent="v1", file_count=2,
                     sample_count=2, total_bytes=v1.total_bytes, classes=v1.classes)
    with pytest.raises(DatasetConflictError, match="changed while") as info:
        repo.add_version("race", manifest_hash=v1.manifest_hash, format=v1.format, parent="v1", file_count=2,
                         sample_count=2, total_bytes=v1.total_bytes, classes=v1.classes, expect_latest=True)
    assert "again" in (info.value.hint or "")


# -- bad input -----------------------------------------------------------------------------------------
def test_bad_inputs_get_clear_errors_and_change_nothing(backend: Context, tmp_path: Path) -> None:
    src = image_folder(tmp_path / "src", {"a": 2})
    for bad_name in ("", "has space", "x" * 101, "a:b", "a/b"):
        with pytest.raises(DatasetError, match="is not allowed") as info:
            ds.create_dataset(backend, bad_name, src)
        assert "1 to 100" in (info.value.hint or "")
    assert ds.create_dataset(backend, "数据集_1", src).version == "v1"  # Chinese characters are allowed
    with pytest.raises(DatasetError, match="does not exist"):
        ds.create_dataset(backend, "missing", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="is empty"):
        ds.create_dataset(backend, "empty", tmp_path / "empty")
    with pytest.raises(DatasetError, match="already exists") as exists:
        ds.create_dataset(backend, "数据集_1", src)
    assert "mloop dataset import" in (exists.value.hint or "")
    with pytest.raises(NotFoundError, match="no dataset named 'ghost'"):
        ds.import_data(backend, "ghost", src)
    with pytest.raises(NotFoundError):
        ds.get_version(backend, "数据集_1", "v9")
    with pytest.raises(DatasetFormatError, match="unsupported dataset format"):
        ds.create_dataset(backend, "fmt", src, format="bogus")
    with pytest.raises(DatasetError, match="not an empty folder"):
        (tmp_path / "full").mkdir()
        (tmp_path / "full" / "keep.txt").write_text("mine")
        ds.export_version(backend, "数据集_1", "v1", tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert [d.name for d in ds.list_datasets(backend)] == ["数据集_1"]


def test_corrupt_images_fail_or_are_left_out_with_a_report(local: Context, tmp_path: Path) -> None:
    src = image_folder(tmp_path / "src", {"a": 3, "b": 2})
    good = (src / "a" / "001.png").read_bytes()
    (src / "a" / "001.png").write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(DatasetFormatError, match="a/001.png"):
        ds.create_dataset(local, "corrupt", src)
    assert ds.list_datasets(local) == []
    v1 = ds.create_dataset(local, "corrupt", src, clean=True)
    assert (v1.sample_count, v1.file_count, v1.stats["problem_count"]) == (4, 4, 1)
    assert v1.stats["problems"][0]["path"] == "a/001.png"
    assert object_count(local) == 4  # the left-out file is not part of any version
    # Fixed later: the next import reads it again (left-out files are never cached as verified).
    (src / "a" / "001.png").write_bytes(good)
    v2 = ds.import_data(local, "corrupt", src)
    assert v2.sample_count == 5 and ds.diff_versions(local, "corrupt", "v1", "v2").added == ["a/001.png"]


def test_an_artifact_store_object_missing_is_reported(local: Context, tmp_path: Path) -> None:
    src = image_folder(tmp_path / "src", {"a": 1})
    ds.create_dataset(local, "lost", src)
    for obj in (Path(local.artifacts.root) / "datasets" / "packs").rglob("*.pack"):
        obj.unlink()  # the index says where the object is, the pack is gone
    from mloop.errors import ArtifactError

    with pytest.raises(ArtifactError, match="missing from the artifact store"):
        ds.export_version(local, "lost", "v1", tmp_path / "out")
