"""Label files (CSV, JSON, JSON lines), templates, task types and label sets of labeling tasks."""

from __future__ import annotations

from pathlib import Path

import pytest

from mloop.datasets.labeling import (
    TemplateRow,
    label_set,
    parse_labels,
    read_labels_file,
    task_type_name,
    write_template,
)
from mloop.errors import LabelingError


class TestCsv:
    def test_rows_without_a_header_take_every_further_cell_as_a_label(self) -> None:
        parsed = parse_labels("a.png,cat\nb.png,dog,small\n\n# a comment\nc.png,cat\n", "csv")
        assert parsed.labels == {"a.png": ["cat"], "b.png": ["dog", "small"], "c.png": ["cat"]}

    def test_a_header_picks_the_id_and_label_columns_and_ignores_the_rest(self) -> None:
        text = "file,label,sample_id,text\nx/1.png,cat,s1,hello\nx/2.png,,s2,bye\n"
        parsed = parse_labels(text, "csv")
        assert parsed.labels == {"s1": ["cat"]}
        assert parsed.blank == 1  # an unfilled template row is skipped, not an error

    def test_a_labels_column_takes_several_labels_and_rows_of_one_sample_add_up(self) -> None:
        parsed = parse_labels("sample_id,labels\na,cat;striped\na,cat\nb,dog\n", "csv")
        assert parsed.labels == {"a": ["cat", "striped"], "b": ["dog"]}

    def test_an_unclosed_quote_is_malformed_with_its_line(self) -> None:
        with pytest.raises(LabelingError) as info:
            parse_labels('a.png,cat\nb.png,"dog\n', "csv", source="labels.csv")
        assert "labels.csv is malformed" in str(info.value) and "line" in str(info.value)
        assert "nothing was recorded" in (info.value.hint or "")

    def test_a_label_without_a_sample_id_is_malformed(self) -> None:
        with pytest.raises(LabelingError, match="line 2: no sample id for label"):
            parse_labels("a.png,cat\n,dog\n", "csv")

    def test_a_header_without_a_label_column_is_malformed(self) -> None:
        with pytest.raises(LabelingError, match="no 'label' column"):
            parse_labels("sample_id,class\na,cat\n", "csv")


class TestJson:
    def test_a_mapping_of_ids_to_labels_or_lists(self) -> None:
        assert parse_labels('{"a": "cat", "b": ["dog", "big"], "c": []}', "json").labels == {
            "a": ["cat"], "b": ["dog", "big"]}

    def test_the_rest_body_and_a_list_of_objects(self) -> None:
        assert parse_labels('{"labels": {"a": ["cat"]}, "annotator": "ann"}', "json").labels == {"a": ["cat"]}
        items = '[{"sample_id": "a", "labels": ["cat"]}, {"id": "b", "label": "dog"}, {"sample_id": "c", "labels": []}]'
        parsed = parse_labels(items, "json")
        assert parsed.labels == {"a": ["cat"], "b": ["dog"]} and parsed.blank == 1

    def test_bad_json_and_bad_entries_are_reported_with_where_they_are(self) -> None:
        with pytest.raises(LabelingError, match="line 1: not valid JSON"):
            parse_labels('{"a": "cat",', "json")
        with pytest.raises(LabelingError) as info:
            parse_labels('[{"labels": ["cat"]}, {"sample_id": "b", "labels": [1]}, 3]', "json")
        text = str(info.value)
        assert "item 0: no sample_id" in text and "item 1" in text and "item 2" in text

    def test_json_lines(self) -> None:
        parsed = parse_labels('{"sample_id": "a", "labels": ["cat"]}\n\n{"sample_id": "b", "label": "dog"}\n', "jsonl")
        assert parsed.labels == {"a": ["cat"], "b": ["dog"]}
        with pytest.raises(LabelingError, match="line 2: not valid JSON"):
            parse_labels('{"sample_id": "a", "labels": ["cat"]}\n{oops\n', "jsonl")


class TestFiles:
    def test_the_format_follows_the_extension(self, tmp_path: Path) -> None:
        (tmp_path / "l.jsonl").write_text('{"sample_id": "a", "labels": "cat"}\n')
        assert read_labels_file(tmp_path / "l.jsonl").labels == {"a": ["cat"]}
        (tmp_path / "l.data").write_text("a,cat\n")
        with pytest.raises(LabelingError, match="can't tell the format"):
            read_labels_file(tmp_path / "l.data")
        assert read_labels_file(tmp_path / "l.data", format="csv").labels == {"a": ["cat"]}

    def test_missing_binary_and_empty_files_are_refused_clearly(self, tmp_path: Path) -> None:
        with pytest.raises(LabelingError, match="does not exist"):
            read_labels_file(tmp_path / "none.csv")
        (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00garbage")
        with pytest.raises(LabelingError, match="not UTF-8"):
            read_labels_file(tmp_path / "bin.csv")
        (tmp_path / "blank.csv").write_text("sample_id,label\na,\nb,\n")
        with pytest.raises(LabelingError, match=r"holds no labels \(2 entries have no label\)"):
            read_labels_file(tmp_path / "blank.csv")

    @pytest.mark.parametrize("suffix", [".csv", ".json", ".jsonl"])
    def test_a_filled_in_template_reads_back(self, tmp_path: Path, suffix: str) -> None:
        rows = [TemplateRow("a.png", "a.png"), TemplateRow("t.txt#2", "t.txt", text='say "hi", then go')]
        path = write_template(tmp_path / f"todo{suffix}", rows)
        text = path.read_text()
        assert "a.png" in text and "t.txt#2" in text
        if suffix == ".csv":
            assert text.splitlines()[0] == "sample_id,label,file,text"
            filled = text.replace("a.png,,a.png", "a.png,cat,a.png")
        else:
            filled = text.replace('"labels": []', '"labels": ["cat"]', 1)  # a.png comes first
        path.write_text(filled)
        parsed = read_labels_file(path)
        assert parsed.labels == {"a.png": ["cat"]} and parsed.blank == 1
        with pytest.raises(LabelingError, match="already exists"):
            write_template(path, rows)


class TestTaskTypesAndLabelSets:
    def test_task_types_by_number_name_or_enum(self) -> None:
        from mloop.workflow import data

        assert task_type_name(0) == "IMAGE_CLASSIFICATION"
        assert task_type_name("text-classification") == "TEXT_CLASSIFICATION"
        assert task_type_name(data.LabelTaskTypeEnum.AUDIO_CLASSIFICATION) == "AUDIO_CLASSIFICATION"

    def test_unknown_and_not_yet_supported_types_are_refused(self) -> None:
        with pytest.raises(LabelingError, match="unknown labeling task type"):
            task_type_name("cats")
        with pytest.raises(LabelingError, match="object_detection are not supported yet"):
            task_type_name(1)

    def test_label_sets_from_names_or_label_dicts(self) -> None:
        assert label_set(["cat", {"name": "dog", "property": {"color": "#f00"}}, "cat"]) == [
            {"name": "cat"}, {"name": "dog", "property": {"color": "#f00"}}]
        with pytest.raises(LabelingError, match="has no name"):
            label_set([{"property": {}}])
        with pytest.raises(LabelingError, match="comma"):
            label_set(["a,b"])
