"""Labels are data, not paths (issue 9, item 1): a label that is a path, a dot name, too long
or holds a control character is refused where labels enter (import formats, label files,
task label sets), and every layout writer refuses a target outside its folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from mloop.datasets.formats.base import Sample
from mloop.datasets.labeling import label_set, parse_labels
from mloop.datasets.manifest import LABEL_MAX, SampleEntry, label_problem
from mloop.errors import DatasetError, LabelingError
from mloop.runner import StagingError, _lay_out

HOSTILE = ["../../x", "/abs/dir", "a/b", "a\\b", "..", ".", "x\x00", "x\n", "x\x1b[2J", "x\u2028y", "",
           "   ", "l" * (LABEL_MAX + 1)]
GOOD = ["cat", "0", "狗", "traffic light", "a.b", "x-1_2"]


@pytest.mark.parametrize("label", GOOD)
def test_a_class_name_is_a_label(label: str) -> None:
    assert label_problem(label) is None
    assert SampleEntry.from_sample(Sample("s1", "s1.png", [label])).labels == (label,)
    assert [e["name"] for e in label_set([label])] == [label]


@pytest.mark.parametrize("label", HOSTILE, ids=repr)
def test_a_label_that_is_not_a_name_is_refused_where_it_enters(label: str) -> None:
    assert label_problem(label) is not None
    with pytest.raises(DatasetError, match="s1"):
        SampleEntry.from_sample(Sample("s1", "s1.png", [label]))
    if label_problem(label.strip()) is not None:  # a task's label set strips surrounding blanks first
        with pytest.raises(LabelingError):
            label_set([label])


@pytest.mark.parametrize("label", ["../../x", "/abs/dir", "a/b", ".."])
def test_a_labels_file_with_a_path_for_a_label_is_refused(label: str) -> None:
    with pytest.raises(LabelingError, match="s1"):
        parse_labels(f"sample_id,label\ns1,{label}\n", "csv")


@pytest.mark.parametrize("rel", ["../escaped.txt", "/tmp/abs.txt", "a/../../escaped.txt"])
def test_the_runners_layout_writer_refuses_a_target_outside_its_folder(tmp_path: Path, rel: str) -> None:
    dest = tmp_path / "job" / "data"
    with pytest.raises(StagingError):
        _lay_out([{"path": rel, "url": None, "size": 1, "text": "x"}], str(dest))
    assert not (tmp_path / "job" / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()


@pytest.mark.parametrize("rel", ["../escaped.txt", "/tmp/abs-escaped.txt", "train/../../escaped.txt"])
def test_the_dataset_layout_writer_refuses_a_target_outside_its_folder(tmp_path: Path, rel: str) -> None:
    from mloop.config import Settings
    from mloop.context import open_context
    from mloop.services.datasets import _place

    dest = tmp_path / "export"
    dest.mkdir()
    with open_context(Settings(home=tmp_path / ".mloop")) as ctx:
        with pytest.raises(DatasetError, match="outside"):
            _place(ctx, [("ok.txt", "0" * 64), (rel, "0" * 64)], dest, link=False, progress=None)
    assert list(dest.iterdir()) == [] and not (tmp_path / "escaped.txt").exists()
