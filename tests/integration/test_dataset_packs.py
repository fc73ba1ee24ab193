"""Packed dataset objects and the parallel first read: dedupe, crashes, export, a remote (fsspec) root.

Small files (up to ``PACK_MAX``) are stored in packs with an index; these tests check that each
distinct content is still stored once across versions and datasets, that an interrupted import
leaves no version and no index entry for bytes that were not written, that export is byte for
byte, and that all of it works on an fsspec ``memory://`` root.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from mloop.datasets import reading
from mloop.datasets.objects import PACK_MAX, ObjectStore
from mloop.context import Context
from mloop.services import datasets as ds

from test_dataset_versions import PAST, image_folder, make_backend, write_png


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Context]:
    with make_backend(tmp_path, f"sqlite:///{tmp_path / 'db' / 'mloop.db'}") as b:
        yield b


def packs(backend: Context) -> list[Path]:
    return sorted((Path(backend.artifacts.root) / "datasets" / "packs").glob("*.pack"))


def stored_bytes(backend: Context) -> int:
    root = Path(backend.artifacts.root) / "datasets"
    return sum(p.stat().st_size for p in (root / "packs").glob("*.pack")) + sum(
        p.stat().st_size for p in (root / "objects").rglob("*") if p.is_file())


def test_each_content_is_stored_once_across_versions_and_datasets(local: Context, tmp_path: Path) -> None:
    src = image_folder(tmp_path / "src", {"a": 6, "b": 4})
    (src / "a" / "copy.png").write_bytes((src / "a" / "000.png").read_bytes())  # same bytes, another path
    v1 = ds.create_dataset(local, "one", src)
    distinct = {hashlib.sha256(p.read_bytes()).digest(): p.stat().st_size for p in src.rglob("*.png")}
    assert v1.stats["stored_objects"] == len(distinct) == 10 and v1.file_count == 11
    assert stored_bytes(local) == sum(distinct.values())  # the copy is not stored twice, even in one pack

    write_png(src / "b" / "new.png", seed=4242)
    v2 = ds.import_data(local, "one", src)
    other = ds.create_dataset(local, "two", src)  # another dataset with the same files
    assert (v2.stats["stored_objects"], other.stats["stored_objects"]) == (1, 0)
    assert ObjectStore(local.artifacts).count() == 11
    assert stored_bytes(local) == sum(distinct.values()) + (src / "b" / "new.png").stat().st_size
    assert len(packs(local)) == 2  # one pack per import that stored something


def test_export_is_byte_for_byte_with_packed_and_loose_objects(local: Context, tmp_path: Path) -> None:
    src = image_folder(tmp_path / "src", {"a": 5, "b": 5})
    write_png(src / "b" / "big.png", seed=9, size=300)
    (src / "notes.bin").write_bytes(os.urandom(PACK_MAX))  # exactly PACK_MAX: packed
    (src / "empty.txt").write_bytes(b"")
    assert (src / "b" / "big.png").stat().st_size > PACK_MAX
    ds.create_dataset(local, "mixed", src)
    out = ds.export_version(local, "mixed", "v1", tmp_path / "out")
    sources = sorted(p.relative_to(src) for p in src.rglob("*") if p.is_file())
    assert sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file()) == sources
    for rel in sources:
        assert (out / rel).read_bytes() == (src / rel).read_bytes(), rel
    store = ObjectStore(local.artifacts)
    assert store.read(hashlib.sha256((src / "notes.bin").read_bytes()).hexdigest()) == (src / "notes.bin").read_bytes()
    assert store.read(hashlib.sha256(b"").hexdigest()) == b""


def test_a_pack_without_its_index_is_ignored_and_nothing_partial_is_visible(local: Context, tmp_path: Path) -> None:
    src = image_folder(tmp_path / "src", {"a": 3})
    ds.create_dataset(local, "crash", src)
    for i in range(40):
        write_png(src / "b" / f"{i:03d}.png", seed=500 + i)

    # Killed after writing a pack, before its index: the pack's objects don't exist for the store.
    store = ObjectStore(local.artifacts)
    data = (src / "b" / "000.png").read_bytes()
    orphan = Path(local.artifacts.root) / "datasets" / "packs" / f"{'0' * 64}.pack"
    orphan.write_bytes(data)
    assert not store.has(hashlib.sha256(data).hexdigest())

    # Interrupted while the new files are read: no version, no pack, no index entry.
    def stop(phase: str, done: int, total: int) -> None:
        if phase == "checking" and done:
            raise KeyboardInterrupt("simulated interruption")

    before = ObjectStore(local.artifacts).count()
    with pytest.raises(KeyboardInterrupt):
        ds.import_data(local, "crash", src, progress=stop)
    assert [v.version for v in ds.list_versions(local, "crash")] == ["v1"]
    assert ObjectStore(local.artifacts).count() == before
    v2 = ds.import_data(local, "crash", src)
    assert (v2.version, v2.sample_count, v2.stats["stored_objects"]) == ("v2", 43, 40)
    out = ds.export_version(local, "crash", "v2", tmp_path / "out")
    assert all((out / p.relative_to(src)).read_bytes() == p.read_bytes() for p in src.rglob("*.png"))


def test_the_parallel_read_finds_what_the_serial_one_does(local: Context, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    src = image_folder(tmp_path / "src", {"a": 30, "b": 30})
    (src / "b" / "005.png").write_bytes((src / "b" / "005.png").read_bytes()[:-20])  # truncated
    (src / "a" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    for p in (src / "b" / "005.png", src / "a" / "bad.png"):
        os.utime(p, (PAST, PAST))
    monkeypatch.setattr(reading, "PARALLEL_MIN", 10)
    monkeypatch.setattr(reading, "CHUNK_MIN", 7)
    files = [(p.relative_to(src).as_posix(), str(p)) for p in sorted(src.rglob("*.png"))]
    parallel = reading.read_sources(files, workers=2)
    serial = reading.read_sources(files, workers=1)
    assert parallel == serial
    assert sorted(r for r, why in parallel.verified.items() if why) == ["a/bad.png", "b/005.png"]
    size, digest, data = parallel.files["a/000.png"]
    assert data == (src / "a" / "000.png").read_bytes() and digest == hashlib.sha256(data).hexdigest()

    monkeypatch.setenv("MLOOP_DATASET_WORKERS", "2")
    v1 = ds.create_dataset(local, "par", src, clean=True)
    assert v1.sample_count == 59 and v1.stats["problem_count"] == 2
    assert {p["path"] for p in v1.stats["problems"]} == {"a/bad.png", "b/005.png"}


def test_packs_on_a_remote_fsspec_root(tmp_path: Path) -> None:
    root = f"memory://mloop-packs-{uuid.uuid4().hex[:8]}"
    src = image_folder(tmp_path / "src", {"a": 8, "b": 8})
    write_png(src / "b" / "big.png", seed=11, size=300)
    with make_backend(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", artifact_root=root) as backend:
        v1 = ds.create_dataset(backend, "remote", src)
        # 16 small files in one pack + its index, the large file loose, the manifest.
        written = [u for u in backend.artifacts.list(root, recursive=True) if "/datasets/" in u]
        assert sum(u.endswith(".pack") for u in written) == 1 and sum(u.endswith(".idx") for u in written) == 1
        assert len(written) == 4 and v1.stats["stored_objects"] == 17
        write_png(src / "a" / "new.png", seed=12)
        v2 = ds.import_data(backend, "remote", src)
        assert v2.stats["stored_objects"] == 1 and ObjectStore(backend.artifacts).count() == 18
        out = ds.export_version(backend, "remote", "v2", tmp_path / "out")
        assert all((out / p.relative_to(src)).read_bytes() == p.read_bytes() for p in src.rglob("*.png"))
        job = ds.materialize(backend, "remote", "v2", tmp_path / "job")
        assert (job / "train" / "a" / "new.png").read_bytes() == (src / "a" / "new.png").read_bytes()
        backend.artifacts.rm(root, recursive=True)
