"""The fast paths of re-versioning a folder, on real files, SQLite and a local artifact store.

An increment must be exactly the version a full scan of the folder would make, a file whose
bytes changed is read and checked again, "nothing changed" may be known from the re-read cache
and a version's remembered file fingerprint without reading its manifest, and versions whose
manifests were written in schema 1 keep working.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path
from typing import Iterator

import pytest

from mloop.context import Context
from mloop.datasets.manifest import Manifest
from mloop.datasets.objects import ObjectStore
from mloop.errors import ArtifactError, DatasetFormatError
from mloop.services import datasets as ds

from test_dataset_versions import PAST, image_folder, make_backend, write_png


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Context]:
    with make_backend(tmp_path, f"sqlite:///{tmp_path / 'db' / 'mloop.db'}") as b:
        yield b


def content(backend: Context, name: str, version: str | None = None) -> tuple[object, ...]:
    """What a version holds, whatever its name and parent: files, samples, classes."""
    m = ds.load_manifest(backend, ds.get_version(backend, name, version))
    return m.files, m.samples, m.classes


def manifest_file(backend: Context, name: str, version: str) -> Path:
    digest = ds.get_version(backend, name, version).manifest_hash
    return Path(backend.artifacts.root) / "datasets" / "manifests" / digest[:2] / (digest[2:] + ".json.gz")


def touch_later(path: Path, seconds: int = 5) -> None:
    os.utime(path, (PAST + seconds, PAST + seconds))


class TestIncrementEqualsAFullScan:
    def test_added_images_and_a_new_class(self, local: Context, tmp_path: Path) -> None:
        src = image_folder(tmp_path / "src", {"a": 6, "b": 4})
        ds.create_dataset(local, "inc", src)
        image_folder(src, {"b": 7, "c": 3}, seed=5)  # b/000..003 rewritten, b/004..006 and c/ new
        for rel in ("b/000.png", "b/001.png", "b/002.png", "b/003.png"):
            touch_later(src / rel)
        v2 = ds.import_data(local, "inc", src)
        assert (v2.version, v2.stats["read"], v2.stats["cache_hits"]) == ("v2", 10, 6)
        ds.create_dataset(local, "full", src)  # a first version: every file read and scanned
        assert content(local, "inc", "v2") == content(local, "full")

    def test_on_top_of_a_release_and_a_relabel(self, local: Context, tmp_path: Path) -> None:
        src = image_folder(tmp_path / "src", {"a": 6, "b": 6})
        ds.create_dataset(local, "rel", src)
        ds.release_version(local, "rel", ratio=0.5)
        ds.relabel(local, "rel", None, {"a/000.png": ["b"]})
        write_png(src / "a" / "new.png", seed=99)
        new = ds.import_data(local, "rel", src)
        ds.create_dataset(local, "full", src)
        # The folder says a/000.png is "a": the import takes the folder's label, and no split.
        assert content(local, "rel", new.version) == content(local, "full")

    def test_files_gone_from_the_folder_are_kept_unless_replace(self, local: Context, tmp_path: Path) -> None:
        src = image_folder(tmp_path / "src", {"a": 3, "b": 3})
        ds.create_dataset(local, "kept", src)
        v1_files, v1_samples, _ = content(local, "kept", "v1")
        (src / "b" / "002.png").unlink()
        write_png(src / "b" / "new.png", seed=3)
        v2 = ds.import_data(local, "kept", src)
        files, samples, _ = content(local, "kept", v2.version)
        assert [f.path for f in files] == sorted([f.path for f in v1_files] + ["b/new.png"])  # type: ignore[union-attr]
        assert "b/002.png" in {s.id for s in samples}  # type: ignore[attr-defined]
        v3 = ds.import_data(local, "kept", src, replace=True)
        ds.create_dataset(local, "full", src)
        assert content(local, "kept", v3.version) == content(local, "full")


class TestChangedBytes:
    def test_a_file_rewritten_with_new_bytes_is_read_and_versioned(self, local: Context, tmp_path: Path) -> None:
        src = image_folder(tmp_path / "src", {"a": 4})
        ds.create_dataset(local, "chg", src)
        write_png(src / "a" / "002.png", seed=4242)
        touch_later(src / "a" / "002.png")
        v2 = ds.import_data(local, "chg", src)
        assert v2.stats["read"] == 1 and ds.diff_versions(local, "chg", "v1", "v2").changed == ["a/002.png"]
        expect = hashlib.sha256((src / "a" / "002.png").read_bytes()).hexdigest()
        files = content(local, "chg", "v2")[0]
        assert {f.path: f.hash for f in files}["a/002.png"] == expect  # type: ignore[attr-defined]

    def test_a_file_corrupted_in_place_is_checked_again_and_refused(self, local: Context, tmp_path: Path) -> None:
        src = image_folder(tmp_path / "src", {"a": 4})
        ds.create_dataset(local, "bad", src)
        ds.import_data(local, "bad", src)  # unchanged: the fingerprint of v1 is now in use
        path = src / "a" / "001.png"
        good = path.read_bytes()
        path.write_bytes(good[:20] + bytes(len(good) - 20))  # same size, bytes zeroed: CRCs fail
        touch_later(path)
        with pytest.raises(DatasetFormatError, match="a/001.png"):
            ds.import_data(local, "bad", src)
        assert [v.version for v in ds.list_versions(local, "bad")] == ["v1"]


class TestNothingChanged:
    def test_known_from_the_fingerprint_without_reading_the_manifest(self, local: Context, tmp_path: Path) -> None:
        src = image_folder(tmp_path / "src", {"a": 3, "b": 2})
        ds.create_dataset(local, "fp", src)
        manifest_file(local, "fp", "v1").unlink()  # the fast path must not need it
        again = ds.import_data(local, "fp", src)
        assert again.version == "v1" and again.stats["unchanged"] is True and again.stats["read"] == 0

    def test_a_changed_folder_is_not_mistaken_for_the_remembered_one(self, local: Context, tmp_path: Path) -> None:
        src = image_folder(tmp_path / "src", {"a": 3, "b": 2})
        ds.create_dataset(local, "fp", src)
        (src / "b" / "001.png").unlink()
        # Every remaining file is unchanged, but the file list differs: the manifest is read.
        kept = ds.import_data(local, "fp", src)  # not replace: base still holds every file
        assert kept.version == "v1" and kept.stats["unchanged"] is True
        replaced = ds.import_data(local, "fp", src, replace=True)
        assert replaced.version == "v2" and replaced.file_count == 4
        manifest_file(local, "fp", "v1").unlink()
        with pytest.raises(ArtifactError):  # v2 is latest now; v1's manifest is what diff needs
            ds.diff_versions(local, "fp", "v1", "v2")
        # The folder equals v2, remembered at its commit: unchanged without reading a manifest.
        manifest_file(local, "fp", "v2").unlink()
        assert ds.import_data(local, "fp", src, replace=True).stats["unchanged"] is True

    def test_a_version_made_from_a_version_is_remembered_after_one_full_check(self, local: Context,
                                                                              tmp_path: Path) -> None:
        src = image_folder(tmp_path / "src", {"a": 3, "b": 2})
        ds.create_dataset(local, "rl", src)
        ds.relabel(local, "rl", None, {"a/000.png": ["b"]})  # v2: the same files, not remembered yet
        first = ds.import_data(local, "rl", src)
        # The folder's labels differ from v2's (a/000.png is "a" in the folder), but a folder whose
        # files v2 holds already is "unchanged", as before: reading files never undoes a relabel.
        assert first.version == "v2" and first.stats["unchanged"] is True
        manifest_file(local, "rl", "v2").unlink()
        assert ds.import_data(local, "rl", src).stats["unchanged"] is True


def test_a_version_written_in_schema_1_still_reads_and_takes_increments(local: Context, tmp_path: Path) -> None:
    src = image_folder(tmp_path / "src", {"a": 3, "b": 2})
    ds.create_dataset(local, "old", src)
    m = ds.load_manifest(local, ds.get_version(local, "old", "v1"))
    # The same version as mloop wrote it before schema 2: samples as objects.
    doc = {"schema": 1, "dataset": m.dataset, "format": m.format, "parent": "v1", "classes": m.classes,
           "release": None, "files": [list(f) for f in m.files], "samples": [s.to_json() for s in m.samples]}
    raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    digest = hashlib.sha256(raw).hexdigest()
    ObjectStore(local.artifacts).put_manifest(digest, gzip.compress(raw, mtime=0))
    local.store.datasets.add_version(
        "old", manifest_hash=digest, format=m.format, parent="v1", file_count=len(m.files),
        sample_count=len(m.samples), total_bytes=m.total_bytes, classes=m.classes, description="schema 1",
        release=None, stats={}, version=None, expect_latest=True, create=False, dataset_description="")
    old = ds.load_manifest(local, ds.get_version(local, "old", "v2"))
    assert old.schema == 1 and (old.files, old.samples) == (m.files, m.samples)
    assert ds.import_data(local, "old", src).version == "v2"  # unchanged against a schema-1 version
    write_png(src / "c" / "000.png", seed=8)
    v3 = ds.import_data(local, "old", src)
    # Written whole: a version made before mloop recorded how its samples were made (stats
    # without "from_scan") never takes an increment.
    assert Manifest.decode(manifest_file(local, "old", v3.version).read_bytes()).schema == 2
    assert ds.diff_versions(local, "old", "v2", v3.version).added == ["c/000.png"]
