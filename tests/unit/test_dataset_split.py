"""The release split, the manifest's encoding and the name rule, without a store."""

from __future__ import annotations

from collections import Counter

import pytest

from mloop.datasets.manifest import FileEntry, Manifest, SampleEntry
from mloop.datasets.split import EVAL, TRAIN, check_ratio, split_samples
from mloop.errors import DatasetError
from mloop.services.datasets import check_dataset_name, parse_ref


def samples(per_label: dict[str, int]) -> list[SampleEntry]:
    return [SampleEntry(f"{label}/{i}.png", f"{label}/{i}.png", (label,)) for label, n in per_label.items()
            for i in range(n)]


class TestSplit:
    def test_same_seed_same_split_other_seed_other_split(self) -> None:
        data = samples({"a": 50, "b": 50})
        assert split_samples(data, 0.8, 1) == split_samples(list(reversed(data)), 0.8, 1)
        assert split_samples(data, 0.8, 1) != split_samples(data, 0.8, 2)

    def test_each_label_is_split_in_the_ratio(self) -> None:
        split = split_samples(samples({"a": 100, "b": 10, "c": 3, "d": 1}), 0.7, 0)
        counts = Counter((sid.split("/")[0], part) for sid, part in split.items())
        assert counts == {("a", TRAIN): 70, ("a", EVAL): 30, ("b", TRAIN): 7, ("b", EVAL): 3,
                          ("c", TRAIN): 2, ("c", EVAL): 1, ("d", TRAIN): 1}

    def test_two_samples_of_a_label_are_never_both_on_one_side(self) -> None:
        for ratio in (0.01, 0.99):
            split = split_samples(samples({"a": 2}), ratio, 0)
            assert sorted(split.values()) == [EVAL, TRAIN]

    def test_adding_samples_moves_few_existing_ones(self) -> None:
        before = split_samples(samples({"a": 200}), 0.8, 0)
        after = split_samples(samples({"a": 220}), 0.8, 0)
        moved = sum(1 for sid, part in before.items() if after[sid] != part)
        assert moved <= 20

    @pytest.mark.parametrize("bad", [0, 1, -1, 1.01, "x", float("nan")])
    def test_ratio_outside_0_1_is_refused(self, bad: object) -> None:
        with pytest.raises(DatasetError, match="between 0 and 1"):
            check_ratio(bad)  # type: ignore[arg-type]
        assert check_ratio("0.25") == 0.25


class TestManifest:
    def test_encode_decode_round_trip_and_stable_hash(self) -> None:
        manifest = Manifest("d", "YOLO", files=[FileEntry("a.jpg", 3, "ab" * 32), FileEntry("a.txt", 9, "cd" * 32)],
                            samples=[SampleEntry("a.jpg", "a.jpg", ("cat",), {"objects": [{"label": "cat"}]},
                                                 ("a.jpg", "a.txt"), TRAIN)],
                            classes=["cat"], parent="v1", release={"ratio": 0.5})
        digest, blob = manifest.encode()
        again = Manifest.decode(blob)
        assert (again.files, again.samples, again.classes, again.parent, again.release) == (
            manifest.files, manifest.samples, manifest.classes, "v1", {"ratio": 0.5})
        assert again.encode() == (digest, blob)

    def test_plain_samples_are_written_compactly(self) -> None:
        raw = Manifest("d", "f", samples=[SampleEntry("x/1.png", "x/1.png", ("x",))]).to_json_bytes()
        # Schema 2: an array per sample, the file left out (null) when it is the id.
        assert b'"samples":[["x/1.png",null,["x"],null,[],null]]' in raw


def test_dataset_names_and_references() -> None:
    for good in ("digits", "a", "数据集-v_2", "x" * 100):
        assert check_dataset_name(good) == good
    for bad in ("", "x" * 101, "with space", "a:b", "a/b", "点."):
        with pytest.raises(DatasetError):
            check_dataset_name(bad)
    assert parse_ref("digits:v3") == ("digits", "v3")
    assert parse_ref("digits") == ("digits", None)
