"""Versions stored as increments (manifest schema 3): what a version adds to its base's manifest.

On real files, SQLite and a local artifact store. Whatever way a version's manifest is written,
it must read back as the version a whole scan of the folder would make (files, samples,
classes, counts); the chain of increments stays short; a base that is not a plain scan (a
release, a relabel) never takes one; a damaged or missing base is reported, not read past.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Iterator

import pytest

from mloop.context import Context
from mloop.datasets.manifest import MAX_DEPTH, Manifest
from mloop.errors import ArtifactError, DatasetError, DatasetFormatError
from mloop.services import datasets as ds
from mloop.services.gc import collect

from test_dataset_versions import image_folder, make_backend, write_png


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Context]:
    with make_backend(tmp_path, f"sqlite:///{tmp_path / 'db' / 'mloop.db'}") as b:
        yield b


def stored(backend: Context, name: str, version: str) -> Manifest:
    """The manifest object as stored (an increment is not applied)."""
    digest = ds.get_version(backend, name, version).manifest_hash
    path = Path(backend.artifacts.root) / "datasets" / "manifests" / digest[:2] / (digest[2:] + ".json.gz")
    return Manifest.decode(path.read_bytes())


def manifest_path(backend: Context, name: str, version: str) -> Path:
    digest = ds.get_version(backend, name, version).manifest_hash
    return Path(backend.artifacts.root) / "datasets" / "manifests" / digest[:2] / (digest[2:] + ".json.gz")


def same_as_a_whole_scan(backend: Context, name: str, version: str, src: Path, probe: str) -> None:
    """``name:version`` holds what a first version of ``src`` holds, and its row counts agree."""
    mine = ds.get_version(backend, name, version)
    whole = ds.create_dataset(backend, probe, src)
    a, b = ds.load_manifest(backend, mine), ds.load_manifest(backend, whole)
    assert (a.files, a.samples, a.classes) == (b.files, b.samples, b.classes)
    assert (mine.file_count, mine.sample_count, mine.total_bytes, mine.classes) == \
        (whole.file_count, whole.sample_count, whole.total_bytes, whole.classes)


class TestAnIncrementReadsAsTheWholeVersion:
    def test_new_images_a_new_class_and_a_new_plain_file(self, local: Context, tmp_path: Path) -> None:
        src = image_folder(tmp_path / "src", {"a": 5, "b": 4})
        v1 = ds.create_dataset(local, "inc", src)
        image_folder(src, {"c": 3}, seed=7)
        write_png(src / "a" / "900.png", seed=91)
        (src / "a" / "README.txt").write_text("notes, a file but not a sample\n")
        v2 = ds.import_data(local, "inc", src)
        inc = stored(local, "inc", v2.version)
        assert (inc.schema, inc.base, inc.depth) == (3, v1.manifest_hash, 1)
        assert [f.path for f in inc.files] == ["a/900.png", "a/README.txt", "c/000.png", "c/001.png", "c/002.png"]
        assert [s.id for s in inc.samples] == ["a/900.png", "c/000.png", "c/001.png", "c/002.png"]
        assert v2.stats["increment_depth"] == 1 and v2.stats["read"] == 5
        same_as_a_whole_scan(local, "inc", v2.version, src, "probe")
        # Nothing changed since: known from the fingerprint remembered at the increment's commit.
        again = ds.import_data(local, "inc", src)
        assert again.version == v2.version and again.stats["unchanged"] is True

    def test_the_chain_is_cut_at_max_depth_and_every_version_reads_whole(self, local: Context,
                                                                         tmp_path: Path) -> None:
        src = image_folder(tmp_path / "src", {"a": 3, "b": 2})
        ds.create_dataset(local, "chain", src)
        depths = []
        for i in range(MAX_DEPTH + 2):
            write_png(src / "b" / f"{100 + i}.png", seed=500 + i)
            record = ds.import_data(local, "chain", src)
            depths.append((stored(local, "chain", record.version).schema, record.stats.get("increment_depth", 0)))
            same_as_a_whole_scan(local, "chain", record.version, src, f"probe{i}")
        assert depths == [(3, d) for d in range(1, MAX_DEPTH + 1)] + [(2, 0), (3, 1)]
        # Every version still reads as it was (each increment applies to its own base).
        for n in range(2, MAX_DEPTH + 4):
            files = ds.load_manifest(local, ds.get_version(local, "chain", f"v{n}")).files
            assert len(files) == 5 + n - 1

    def test_new_corrupt_images_left_out_make_no_version(self, local: Context, tmp_path: Path) -> None:
        src = image_folder(tmp_path / "src", {"a": 3})
        ds.create_dataset(local, "cl", src)
        (src / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
        same = ds.import_data(local, "cl", src, clean=True)
        assert same.version == "v1" and same.stats["unchanged"] is True
        assert [p["path"] for p in same.stats["problems"]] == ["a/broken.png"]


class TestWhenAVersionIsWrittenWhole:
    def test_a_changed_file(self, local: Context, tmp_path: Path) -> None:
        src = image_folder(tmp_path / "src", {"a": 3, "b": 2})
        ds.create_dataset(local, "ch", src)
        write_png(src / "a" / "000.png", seed=4242)  # new bytes at a path v1 has
        os.utime(src / "a" / "000.png", (1_600_000_100, 1_600_000_100))
        write_png(src / "a" / "500.png", seed=4343)
        v2 = ds.import_data(local, "ch", src)
        assert stored(local, "ch", v2.version).schema == 2 and "increment_depth" not in v2.stats
        same_as_a_whole_scan(local, "ch", v2.version, src, "probe")

    def test_on_a_release_the_split_is_dropped_as_a_whole_build_drops_it(self, local: Context,
                                                                          tmp_path: Path) -> None:
        src = image_folder(tmp_path / "src", {"a": 5, "b": 5})
        ds.create_dataset(local, "rel", src)
        ds.release_version(local, "rel", ratio=0.6)
        write_png(src / "a" / "700.png", seed=77)
        v3 = ds.import_data(local, "rel", src)
        assert stored(local, "rel", v3.version).schema == 2
        assert all(s.split is None for s in ds.load_manifest(local, v3).samples)
        same_as_a_whole_scan(local, "rel", v3.version, src, "probe")

    def test_on_a_relabelled_version(self, local: Context, tmp_path: Path) -> None:
        src = image_folder(tmp_path / "src", {"a": 3, "b": 2})
        ds.create_dataset(local, "rl", src)
        ds.relabel(local, "rl", None, {"a/000.png": ["b"]})
        write_png(src / "b" / "800.png", seed=88)
        v3 = ds.import_data(local, "rl", src)
        assert stored(local, "rl", v3.version).schema == 2
        same_as_a_whole_scan(local, "rl", v3.version, src, "probe")

    def test_with_declared_classes_or_replace(self, local: Context, tmp_path: Path) -> None:
        src = image_folder(tmp_path / "src", {"a": 3, "b": 2})
        ds.create_dataset(local, "dc", src)
        write_png(src / "a" / "600.png", seed=66)
        v2 = ds.import_data(local, "dc", src, classes=["a", "b"])
        write_png(src / "a" / "601.png", seed=67)
        v3 = ds.import_data(local, "dc", src, replace=True)
        assert (stored(local, "dc", v2.version).schema, stored(local, "dc", v3.version).schema) == (2, 2)


class TestADamagedChain:
    def test_a_missing_or_altered_base_is_reported(self, local: Context, tmp_path: Path) -> None:
        src = image_folder(tmp_path / "src", {"a": 3})
        ds.create_dataset(local, "dm", src)
        write_png(src / "a" / "100.png", seed=10)
        v2 = ds.import_data(local, "dm", src)
        base = manifest_path(local, "dm", "v1")
        good = base.read_bytes()
        doc = json.loads(gzip.decompress(good))
        doc["files"] = doc["files"][:1]
        base.write_bytes(gzip.compress(json.dumps(doc).encode()))
        with pytest.raises(DatasetError, match="damaged"):
            ds.load_manifest(local, v2)
        base.unlink()
        with pytest.raises(ArtifactError):
            ds.load_manifest(local, v2)
        base.write_bytes(good)
        assert len(ds.load_manifest(local, v2).files) == 4


def test_gc_keeps_the_objects_only_a_base_lists(local: Context, tmp_path: Path) -> None:
    src = image_folder(tmp_path / "src", {"a": 4, "b": 3})
    ds.create_dataset(local, "g", src)
    write_png(src / "b" / "900.png", seed=9)
    v2 = ds.import_data(local, "g", src)
    assert stored(local, "g", v2.version).schema == 3
    garbage = collect(local, grace_seconds=0)
    assert [item for item in garbage.items if item[0] == "dataset object"] == []
    report = ds.verify_version(local, "g", v2.version)
    assert (report.files, report.damaged) == (8, [])
    out = ds.materialize(local, "g", v2.version, tmp_path / "job")
    assert sorted(p.name for p in out.rglob("*.png")) == sorted(p.name for p in src.rglob("*.png"))


@pytest.mark.parametrize("added, refused", [
    ({"a/notes.txt": "x"}, False),             # a plain file beside images
    ({"train/notes.txt": "x"}, False),         # in a grouping folder (its sub-folders hold images)
    ({"d/notes.txt": "x"}, True),              # a new folder with files but no image
    ({"a/deeper/notes.txt": "x"}, True),       # a new leaf below a class folder, no image
])
def test_an_increment_checks_the_whole_source_as_a_whole_scan_does(local: Context, tmp_path: Path,
                                                                   added: dict[str, str], refused: bool) -> None:
    src = image_folder(tmp_path / "src", {"a": 3, "train/b": 2})
    ds.create_dataset(local, "chk", src)
    for rel, text in added.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
        os.utime(src / rel, (1_600_000_000, 1_600_000_000))
    write_png(src / "a" / "050.png", seed=50)  # and a new image, so the version is an increment
    if refused:
        with pytest.raises(DatasetFormatError, match="class folder without any image"):
            ds.import_data(local, "chk", src)
        with pytest.raises(DatasetFormatError, match="class folder without any image"):
            ds.create_dataset(local, "whole", src)  # the same verdict from a whole scan
        return
    v2 = ds.import_data(local, "chk", src)
    assert stored(local, "chk", v2.version).schema == 3
    same_as_a_whole_scan(local, "chk", v2.version, src, "probe")
