"""The manifest's encodings (schema 2 written, schema 1 still read), sample conversion, and the
source walk's empty folders."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import pytest

from mloop.datasets.formats._common import leaf_dirs_without_files
from mloop.datasets.formats.base import Sample
from mloop.datasets.manifest import INCREMENT_SCHEMA, MAX_DEPTH, SCHEMA, FileEntry, Manifest, SampleEntry
from mloop.datasets.source import walk_stats
from mloop.errors import DatasetError

SAMPLES = [
    SampleEntry("a/1.png", "a/1.png", ("a",)),
    SampleEntry("b.txt#3", "b.txt", ("pos", "neg"), {"text": "hello"}, ("b.txt",), "train"),
    SampleEntry("c.jpg", "c.jpg", (), {"objects": [{"label": "cat", "bbox": [1, 2, 3, 4]}]}, ("c.jpg", "c.xml"),
                "eval"),
    SampleEntry("u.png", "u.png"),
]
FILES = [FileEntry("a/1.png", 3, "ab" * 32), FileEntry("b.txt", 9, "cd" * 32), FileEntry("c.jpg", 1, "ef" * 32),
         FileEntry("c.xml", 2, "01" * 32), FileEntry("u.png", 4, "23" * 32)]


def schema1_blob() -> tuple[str, bytes]:
    """A manifest exactly as mloop wrote schema 1 (samples as objects, unset keys left out)."""
    doc = {"schema": 1, "dataset": "d", "format": "YOLO", "parent": "v1", "classes": ["a", "neg", "pos"],
           "release": {"ratio": 0.5}, "files": [list(f) for f in FILES],
           "samples": [{"id": "a/1.png", "labels": ["a"]},
                       {"id": "b.txt#3", "file": "b.txt", "labels": ["pos", "neg"], "annotation": {"text": "hello"},
                        "files": ["b.txt"], "split": "train"},
                       {"id": "c.jpg", "labels": [],
                        "annotation": {"objects": [{"label": "cat", "bbox": [1, 2, 3, 4]}]},
                        "files": ["c.jpg", "c.xml"], "split": "eval"},
                       {"id": "u.png", "labels": []}]}
    raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(raw).hexdigest(), gzip.compress(raw, mtime=0)


class TestEncodings:
    def test_schema_2_round_trips_every_field(self) -> None:
        manifest = Manifest("d", "YOLO", files=FILES, samples=SAMPLES, classes=["a", "neg", "pos"], parent="v1",
                            release={"ratio": 0.5})
        digest, blob = manifest.encode()
        again = Manifest.decode(blob)
        assert again.schema == SCHEMA == 2
        assert (again.files, again.samples, again.classes, again.parent, again.release) == (
            FILES, SAMPLES, ["a", "neg", "pos"], "v1", {"ratio": 0.5})
        assert hashlib.sha256(gzip.decompress(blob)).hexdigest() == digest
        assert again.encode() == (digest, blob)

    def test_a_schema_1_manifest_still_reads_to_the_same_samples(self) -> None:
        _, blob = schema1_blob()
        old = Manifest.decode(blob)
        assert old.schema == 1
        assert (old.files, old.samples, old.classes, old.parent, old.release) == (
            FILES, SAMPLES, ["a", "neg", "pos"], "v1", {"ratio": 0.5})

    def test_a_version_derived_from_a_schema_1_manifest_is_written_in_schema_2(self) -> None:
        old = Manifest.decode(schema1_blob()[1])
        derived = old.derive(parent="v2")
        raw = derived.to_json_bytes()
        assert json.loads(raw)["schema"] == 2
        assert Manifest.decode(derived.encode()[1]).samples == SAMPLES

    def test_a_newer_schema_is_refused_with_upgrade_hint(self) -> None:
        raw = json.dumps({"schema": INCREMENT_SCHEMA + 1, "dataset": "d", "format": "f", "files": [],
                          "samples": []}).encode()
        with pytest.raises(DatasetError, match="newer mloop") as info:
            Manifest.decode(gzip.compress(raw))
        assert "upgrade mloop" in (info.value.hint or "")


class TestIncrements:
    BASE = Manifest("d", "ModelArts imageNet 1.0", files=[FileEntry("a/1.png", 3, "h1"), FileEntry("b/1.png", 4, "h2")],
                    samples=[SampleEntry("a/1.png", "a/1.png", ("a",)), SampleEntry("b/1.png", "b/1.png", ("b",))],
                    classes=["a", "b"])

    def test_round_trips_and_applies_in_path_order(self) -> None:
        inc = Manifest("d", self.BASE.format, files=[FileEntry("a/0.png", 5, "h3"), FileEntry("c/1.png", 6, "h4")],
                       samples=[SampleEntry("a/0.png", "a/0.png", ("a",)), SampleEntry("c/1.png", "c/1.png", ("c",))],
                       classes=["a", "b", "c"], parent="v1", base="f" * 64, depth=2)
        again = Manifest.decode(inc.encode()[1])
        assert (again.schema, again.base, again.depth, again.files) == (INCREMENT_SCHEMA, "f" * 64, 2, inc.files)
        whole = again.applied_to(self.BASE)
        assert [f.path for f in whole.files] == ["a/0.png", "a/1.png", "b/1.png", "c/1.png"]
        assert [s.id for s in whole.samples] == ["a/0.png", "a/1.png", "b/1.png", "c/1.png"]
        assert (whole.base, whole.classes, whole.parent) == (None, ["a", "b", "c"], "v1")

    def test_an_entry_at_a_path_the_base_has_replaces_it(self) -> None:
        inc = Manifest("d", self.BASE.format, files=[FileEntry("b/1.png", 9, "new")], samples=[],
                       classes=["a", "b"], base="f" * 64, depth=1)
        assert inc.applied_to(self.BASE).files == [FileEntry("a/1.png", 3, "h1"), FileEntry("b/1.png", 9, "new")]

    @pytest.mark.parametrize("base, depth", [(None, 1), ("f" * 63, 1), (7, 1), ("f" * 64, 0),
                                             ("f" * 64, MAX_DEPTH + 1), ("f" * 64, True), ("f" * 64, "1")])
    def test_an_increment_without_a_valid_base_and_depth_is_refused(self, base: object, depth: object) -> None:
        raw = json.dumps({"schema": INCREMENT_SCHEMA, "dataset": "d", "format": "f", "files": [], "samples": [],
                          "base": base, "depth": depth}).encode()
        with pytest.raises(DatasetError, match="increment without a valid base"):
            Manifest.decode(gzip.compress(raw))


class TestFromSamples:
    def test_equals_one_conversion_per_sample(self) -> None:
        samples = [Sample("a/1.png", "a/1.png", ("a",), None, ("a/1.png",)),
                   Sample("b.txt#3", "b.txt", ("pos", "neg"), {"text": "x"}, ("b.txt",)),
                   Sample("c.jpg", "c.jpg", ("cat", "cat2"), {"objects": []}, ("c.jpg", "c.xml")),
                   Sample("u.png", "u.png", (), None, ()),
                   Sample("a/2.png", "a/2.png", ("a",), None, ("a/2.png",))]
        assert SampleEntry.from_samples(samples) == [SampleEntry.from_sample(s) for s in samples]

    @pytest.mark.parametrize("label", ["../x", "a/b", ".", "x\x00y", "x" * 129, ""])
    def test_a_bad_label_is_refused_naming_the_sample(self, label: str) -> None:
        samples = [Sample("ok.png", "ok.png", ("fine",), None, ("ok.png",)),
                   Sample("bad.png", "bad.png", (label,), None, ("bad.png",))]
        with pytest.raises(DatasetError, match="bad.png"):
            SampleEntry.from_samples(samples)

    def test_a_label_checked_once_is_still_checked_on_every_sample(self) -> None:
        # The per-label memo must not let a bad label through after a good one of another sample.
        samples = [Sample(f"{i}.png", f"{i}.png", ("a",), None, ()) for i in range(3)]
        samples.append(Sample("z.png", "z.png", ("a", "b/c"), None, ()))
        with pytest.raises(DatasetError, match="z.png"):
            SampleEntry.from_samples(samples)


class TestWalkStats:
    def test_empty_folders_are_those_the_format_check_finds(self, tmp_path: Path) -> None:
        for rel in ("cat/1.png", "dog/x/2.png", "deep/a/b/3.png"):
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_bytes(b"x")
        for rel in ("empty", "dog/empty2", "deep/a/c/d", "only-hidden", ".hidden/empty"):
            (tmp_path / rel).mkdir(parents=True)
        (tmp_path / "only-hidden" / ".DS_Store").write_bytes(b"")
        os.symlink(tmp_path / "cat", tmp_path / "linked")  # a link is an entry, never followed
        empty: list[str] = []
        walked = walk_stats(str(tmp_path), empty)
        assert empty == leaf_dirs_without_files(tmp_path) == ["deep/a/c/d", "dog/empty2", "empty", "only-hidden"]
        assert [f[0] for f in walked] == ["cat/1.png", "deep/a/b/3.png", "dog/x/2.png"]
        assert walk_stats(str(tmp_path)) == walked  # the list is optional
