"""Import formats on small real fixtures (PNG/JPEG by Pillow, VOC XML, YOLO and text files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from mloop.datasets.formats import SUPPORTED_FORMATS, canonical_format, scan, verify_image
from mloop.errors import DatasetFormatError, MloopError
from mloop.workflow import steps


def png(path: Path, size: tuple[int, int] = (8, 8), shade: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (shade, 100, 200)).save(path, format="PNG")
    return path


def jpeg(path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (10, 20, 30)).save(path, format="JPEG")
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def voc_xml(filename: str, objects: list[tuple[str, tuple[int, int, int, int]]],
            size: tuple[int, int] = (64, 48)) -> str:
    objs = "".join(
        f"<object><name>{n}</name><difficult>0</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for n, b in objects
    )
    return (f"<annotation><folder>x</folder><filename>{filename}</filename><size><width>{size[0]}</width>"
            f"<height>{size[1]}</height><depth>3</depth></size>{objs}</annotation>")


@pytest.fixture
def digits(tmp_path: Path) -> Path:
    src = tmp_path / "digits"
    for label in ("0", "1"):
        for i in range(3):
            png(src / label / f"{i}.png", shade=i)
    return src


# -- names ----------------------------------------------------------------------------------

class TestFormatNames:
    def test_canonical_names_are_annotation_format_enum_values(self) -> None:
        values = {f.value for f in steps.AnnotationFormatEnum}
        assert set(SUPPORTED_FORMATS) - {"manifest"} <= values

    @pytest.mark.parametrize("alias, canonical", [
        ("folder", "ModelArts imageNet 1.0"), ("ImageNet", "ModelArts imageNet 1.0"),
        ("yolo", "YOLO"), ("voc", "ModelArts PASCAL VOC 1.0"), ("manifest", "manifest"),
        ("text", "ModelArts text classfication combine 1.0"),
        ("MA_IMAGE_CLASSIFICATION_V1", "ModelArts image classification 1.0"),
        ("modelarts pascal voc 1.0", "ModelArts PASCAL VOC 1.0"),
    ])
    def test_aliases_and_enum_members_resolve(self, alias: str, canonical: str) -> None:
        assert canonical_format(alias) == canonical

    def test_enum_member_itself_is_accepted(self) -> None:
        assert canonical_format(steps.AnnotationFormatEnum.YOLO) == "YOLO"

    def test_unsupported_format_is_refused_with_the_supported_list(self, digits: Path) -> None:
        with pytest.raises(DatasetFormatError) as info:
            scan(digits, "coco")
        message = str(info.value)
        assert "'coco'" in message
        for canonical in SUPPORTED_FORMATS:
            assert canonical in message
        assert isinstance(info.value, ValueError) and isinstance(info.value, MloopError)

    def test_segmentation_is_not_claimed(self) -> None:
        with pytest.raises(DatasetFormatError, match="unsupported"):
            canonical_format(steps.AnnotationFormatEnum.MA_IMAGE_SEGMENTATION_V1.value)


# -- image verification ---------------------------------------------------------------------

class TestVerifyImage:
    def test_good_png_and_jpeg_pass(self, tmp_path: Path) -> None:
        assert verify_image(png(tmp_path / "a.png")) is None
        assert verify_image(jpeg(tmp_path / "a.jpg")) is None

    def test_truncated_png_fails_with_reason(self, tmp_path: Path) -> None:
        reason = verify_image(truncate(png(tmp_path / "a.png", size=(40, 40))))
        assert reason is not None and "truncated" in reason

    def test_png_with_a_flipped_byte_fails_its_crc(self, tmp_path: Path) -> None:
        path = png(tmp_path / "a.png", size=(16, 16))
        data = bytearray(path.read_bytes())
        data[40] ^= 0xFF  # inside IDAT
        path.write_bytes(bytes(data))
        reason = verify_image(path)
        assert reason is not None and "CRC" in reason

    def test_truncated_jpeg_fails(self, tmp_path: Path) -> None:
        assert verify_image(truncate(jpeg(tmp_path / "a.jpg", size=(128, 128)))) is not None

    def test_text_named_like_an_image_fails(self, tmp_path: Path) -> None:
        reason = verify_image(write(tmp_path / "a.jpg", "not an image"))
        assert reason is not None and "not an image" in reason

    def test_bmp_and_gif_are_decoded(self, tmp_path: Path) -> None:
        for ext in ("bmp", "gif"):
            path = tmp_path / f"a.{ext}"
            Image.new("RGB", (8, 8)).save(path)
            assert verify_image(path) is None
            assert verify_image(truncate(path, 0.3)) is not None


# -- folder per class -----------------------------------------------------------------------

class TestFolderFormat:
    def test_labels_come_from_the_folder_names(self, digits: Path) -> None:
        result = scan(digits, "folder")
        assert result.format == "ModelArts imageNet 1.0"
        assert [(s.id, s.labels) for s in result.samples] == [
            ("0/0.png", ("0",)), ("0/1.png", ("0",)), ("0/2.png", ("0",)),
            ("1/0.png", ("1",)), ("1/1.png", ("1",)), ("1/2.png", ("1",)),
        ]
        assert result.classes == ["0", "1"]
        assert result.samples[0].files == ("0/0.png",)
        assert result.problems == [] and result.excluded == set()

    def test_nested_train_val_layout_uses_the_last_folder(self, tmp_path: Path) -> None:
        for split in ("train", "val"):
            for label in ("daisy", "roses"):
                png(tmp_path / "flowers" / split / label / "a.png")
        result = scan(tmp_path / "flowers", "imagenet")
        assert {s.id: s.labels for s in result.samples}["val/roses/a.png"] == ("roses",)
        assert result.classes == ["daisy", "roses"]

    def test_hidden_and_non_image_files_are_not_samples(self, digits: Path) -> None:
        write(digits / "README.md", "about")
        write(digits / ".DS_Store", "x")
        png(digits / ".cache" / "x" / "y.png")
        assert len(scan(digits, "folder").samples) == 6

    def test_corrupt_images_fail_the_scan_listing_each(self, digits: Path) -> None:
        truncate(digits / "0" / "1.png")
        write(digits / "1" / "fake.png", "hello")
        with pytest.raises(DatasetFormatError) as info:
            scan(digits, "folder")
        message = str(info.value)
        assert "0/1.png" in message and "1/fake.png" in message and "2 problems" in message
        assert "--clean" in (info.value.hint or "")
        assert {p["path"] for p in info.value.problems} == {"0/1.png", "1/fake.png"}

    def test_clean_leaves_corrupt_images_out_and_reports_them(self, digits: Path) -> None:
        truncate(digits / "0" / "1.png")
        result = scan(digits, "folder", clean=True)
        assert [s.id for s in result.samples if s.labels == ("0",)] == ["0/0.png", "0/2.png"]
        assert [p.path for p in result.problems] == ["0/1.png"]
        assert "truncated" in result.problems[0].reason
        assert result.excluded == {"0/1.png"}

    def test_many_problems_are_summarised(self, tmp_path: Path) -> None:
        for i in range(25):
            write(tmp_path / "src" / "a" / f"{i:02d}.png", "junk")
        with pytest.raises(DatasetFormatError) as info:
            scan(tmp_path / "src", "folder")
        assert "25 problems" in str(info.value) and "... and 5 more" in str(info.value)
        assert len(info.value.problems) == 25

    def test_all_corrupt_with_clean_still_fails(self, tmp_path: Path) -> None:
        write(tmp_path / "src" / "a" / "1.png", "junk")
        with pytest.raises(DatasetFormatError, match="every sample was left out"):
            scan(tmp_path / "src", "folder", clean=True)

    def test_class_folders_must_match_declared_classes(self, digits: Path) -> None:
        with pytest.raises(DatasetFormatError) as info:
            scan(digits, "folder", classes=["0", "2"])
        message = str(info.value)
        assert "class folder '1' is not among the declared classes" in message
        assert "declared class '2' has no folder" in message

    def test_declared_classes_matching_pass(self, digits: Path) -> None:
        assert scan(digits, "folder", classes=["1", "0"]).classes == ["0", "1"]

    def test_empty_class_folder_is_an_error_even_with_clean(self, digits: Path) -> None:
        (digits / "2").mkdir()
        with pytest.raises(DatasetFormatError, match="2/: empty folder"):
            scan(digits, "folder", clean=True)

    def test_class_folder_without_images_is_an_error(self, digits: Path) -> None:
        write(digits / "3" / "notes.txt", "no images here")
        with pytest.raises(DatasetFormatError, match="3/: class folder without any image"):
            scan(digits, "folder")

    def test_empty_source_is_an_error(self, tmp_path: Path) -> None:
        (tmp_path / "empty").mkdir()
        with pytest.raises(DatasetFormatError, match="no samples found"):
            scan(tmp_path / "empty", "folder")

    def test_missing_source_is_an_error(self, tmp_path: Path) -> None:
        with pytest.raises(DatasetFormatError, match="does not exist"):
            scan(tmp_path / "nope", "folder")

    def test_only_limits_verification_to_the_given_paths(self, digits: Path) -> None:
        truncate(digits / "0" / "1.png")
        # The caller knows 0/1.png is unchanged since it was verified: it is not read again.
        result = scan(digits, "folder", only={"1/0.png"})
        assert len(result.samples) == 6
        with pytest.raises(DatasetFormatError, match="0/1.png"):
            scan(digits, "folder", only={"0/1.png"})

    def test_progress_counts_every_image(self, digits: Path) -> None:
        seen: list[int] = []
        scan(digits, "folder", progress=seen.append)
        assert sum(seen) == 6


# -- image + same-name .txt -----------------------------------------------------------------

class TestImageTxtFormat:
    def test_labels_from_txt_multi_label_and_unlabeled(self, tmp_path: Path) -> None:
        src = tmp_path / "src"
        png(src / "d1" / "10.png")
        write(src / "d1" / "10.txt", "Cat\n")
        jpeg(src / "d2" / "2.jpg")
        write(src / "d2" / "2.txt", "Cat\nDog\n")
        png(src / "d2" / "3.png")
        result = scan(src, "image-txt")
        assert {s.id: s.labels for s in result.samples} == {
            "d1/10.png": ("Cat",), "d2/2.jpg": ("Cat", "Dog"), "d2/3.png": ()}
        assert result.samples[0].files == ("d1/10.png", "d1/10.txt")
        assert result.classes == ["Cat", "Dog"]

    def test_label_file_without_image_and_empty_label_file(self, tmp_path: Path) -> None:
        src = tmp_path / "src"
        png(src / "a.png")
        write(src / "a.txt", "\n")
        write(src / "b.txt", "Dog")
        png(src / "c.png")
        with pytest.raises(DatasetFormatError) as info:
            scan(src, "image-txt")
        assert "a.txt: label file is empty" in str(info.value)
        assert "b.txt: label file without an image" in str(info.value)
        result = scan(src, "image-txt", clean=True)
        assert [s.id for s in result.samples] == ["c.png"]
        assert result.excluded == {"a.png", "a.txt", "b.txt"}

    def test_undeclared_label_is_refused(self, tmp_path: Path) -> None:
        png(tmp_path / "s" / "a.png")
        write(tmp_path / "s" / "a.txt", "Bird")
        with pytest.raises(DatasetFormatError, match="label 'Bird' is not among the declared classes"):
            scan(tmp_path / "s", "image-txt", classes=["Cat"])


# -- YOLO -----------------------------------------------------------------------------------

class TestYolo:
    @pytest.fixture
    def yolo(self, tmp_path: Path) -> Path:
        src = tmp_path / "yolo"
        write(src / "classes.txt", "cat\ndog\n")
        png(src / "a.png", size=(100, 50))
        write(src / "a.txt", "0 0.5 0.5 0.2 0.4\n1 0.25 0.25 0.1 0.1\n")
        png(src / "b.png", size=(10, 10))
        write(src / "b.txt", "")
        png(src / "c.png")
        return src

    def test_boxes_are_converted_to_pixels(self, yolo: Path) -> None:
        result = scan(yolo, "yolo")
        by_id = {s.id: s for s in result.samples}
        a = by_id["a.png"]
        assert a.labels == ("cat", "dog")
        assert a.annotation == {"objects": [{"label": "cat", "bbox": [40.0, 15.0, 60.0, 35.0]},
                                            {"label": "dog", "bbox": [20.0, 10.0, 30.0, 15.0]}],
                                "width": 100, "height": 50}
        assert a.files == ("a.png", "a.txt")
        assert by_id["b.png"].labels == () and by_id["b.png"].annotation == {"objects": [], "width": 10, "height": 10}
        assert by_id["c.png"].annotation is None
        assert result.classes == ["cat", "dog"]

    def test_ultralytics_images_labels_layout(self, tmp_path: Path) -> None:
        src = tmp_path / "y"
        write(src / "obj.names", "person\n")
        png(src / "images" / "train" / "1.png", size=(20, 20))
        write(src / "labels" / "train" / "1.txt", "0 0.5 0.5 1 1\n")
        sample = scan(src, "yolo").samples[0]
        assert sample.files == ("images/train/1.png", "labels/train/1.txt")
        assert sample.annotation is not None and sample.annotation["objects"][0]["bbox"] == [0.0, 0.0, 20.0, 20.0]

    def test_bad_class_index_and_malformed_lines(self, yolo: Path) -> None:
        write(yolo / "a.txt", "5 0.5 0.5 0.2 0.2\n")
        write(yolo / "b.txt", "0 0.5 0.5\n")
        png(yolo / "d.png")
        write(yolo / "d.txt", "0 1.5 0.5 0.2 0.2\n")
        with pytest.raises(DatasetFormatError) as info:
            scan(yolo, "yolo")
        message = str(info.value)
        assert "a.txt: line 1: class index 5 is out of range (there are 2 classes" in message
        assert "b.txt: line 1: expected 'class cx cy w h'" in message
        assert "d.txt: line 1: box values must be normalised" in message
        result = scan(yolo, "yolo", clean=True)
        assert [s.id for s in result.samples] == ["c.png"]
        assert {"a.png", "a.txt", "b.png", "b.txt"} <= result.excluded

    def test_missing_classes_file(self, yolo: Path) -> None:
        (yolo / "classes.txt").unlink()
        with pytest.raises(DatasetFormatError, match="no class names"):
            scan(yolo, "yolo")
        assert scan(yolo, "yolo", classes=["cat", "dog"]).samples[0].labels == ("cat", "dog")

    def test_classes_file_must_match_declared(self, yolo: Path) -> None:
        with pytest.raises(DatasetFormatError, match="lists classes"):
            scan(yolo, "yolo", classes=["dog", "cat"])

    def test_label_file_without_image(self, yolo: Path) -> None:
        write(yolo / "sub" / "zz.txt", "0 0.5 0.5 0.1 0.1")
        with pytest.raises(DatasetFormatError, match="sub/zz.txt: label file without an image"):
            scan(yolo, "yolo")


# -- Pascal VOC -----------------------------------------------------------------------------

class TestPascalVoc:
    def test_modelarts_layout_xml_next_to_image(self, tmp_path: Path) -> None:
        src = tmp_path / "voc"
        jpeg(src / "IMG_1.jpg")
        write(src / "IMG_1.xml", voc_xml("IMG_1.jpg", [("dog", (1, 2, 30, 40)), ("cat", (5, 5, 10, 10))]))
        png(src / "IMG_2.png")
        result = scan(src, "voc")
        first = result.samples[0]
        assert first.labels == ("cat", "dog") and first.files == ("IMG_1.jpg", "IMG_1.xml")
        assert first.annotation == {"objects": [{"label": "dog", "bbox": [1.0, 2.0, 30.0, 40.0]},
                                                {"label": "cat", "bbox": [5.0, 5.0, 10.0, 10.0]}],
                                    "width": 64, "height": 48}
        assert result.samples[1].labels == ()

    def test_devkit_layout(self, tmp_path: Path) -> None:
        src = tmp_path / "VOC2007"
        jpeg(src / "JPEGImages" / "000001.jpg")
        write(src / "Annotations" / "000001.xml", voc_xml("000001.jpg", [("person", (1, 1, 20, 20))]))
        sample = scan(src, "pascal-voc").samples[0]
        assert sample.id == "JPEGImages/000001.jpg"
        assert sample.files == ("JPEGImages/000001.jpg", "Annotations/000001.xml")

    def test_malformed_xml_missing_image_and_bad_boxes(self, tmp_path: Path) -> None:
        src = tmp_path / "voc"
        jpeg(src / "a.jpg")
        write(src / "a.xml", "<annotation><object><name>dog</name>")
        write(src / "Annotations" / "ghost.xml", voc_xml("ghost.jpg", [("dog", (1, 1, 2, 2))]))
        jpeg(src / "b.jpg")
        write(src / "b.xml", voc_xml("b.jpg", [("dog", (10, 10, 5, 20))]))
        jpeg(src / "c.jpg")
        write(src / "c.xml", voc_xml("c.jpg", [("dog", (10, 10, 500, 20))]))
        jpeg(src / "d.jpg")
        with pytest.raises(DatasetFormatError) as info:
            scan(src, "voc")
        message = str(info.value)
        assert "a.xml: malformed XML" in message
        assert "Annotations/ghost.xml: annotation of a missing image ('ghost.jpg')" in message
        assert "b.xml: object 1 ('dog'): empty box" in message
        assert "c.xml: object 1 ('dog'): box [10.0, 10.0, 500.0, 20.0] lies outside the 64x48 image" in message
        result = scan(src, "voc", clean=True)
        assert [s.id for s in result.samples] == ["d.jpg"]

    def test_entity_declarations_are_refused(self, tmp_path: Path) -> None:
        src = tmp_path / "voc"
        jpeg(src / "a.jpg")
        write(src / "a.xml", '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]>'
                             "<annotation><filename>&lol;</filename></annotation>")
        with pytest.raises(DatasetFormatError, match="DOCTYPE or entity declarations is refused"):
            scan(src, "voc")


# -- manifest -------------------------------------------------------------------------------

class TestManifest:
    def test_classification_text_and_detection_lines(self, tmp_path: Path) -> None:
        src = tmp_path / "export"
        png(src / "data" / "cat" / "1.png")
        png(src / "data" / "2.png")
        jpeg(src / "data" / "3.jpg")
        write(src / "data" / "3.xml", voc_xml("3.jpg", [("car", (1, 1, 9, 9))]))
        lines = [
            {"source": "s3://bucket/prefix/data/cat/1.png", "usage": "train",
             "annotation": [{"type": "modelarts/image_classification", "name": "cat"}]},
            {"source": "data/2.png"},
            {"source": "obs://bucket/data/3.jpg", "annotation": [
                {"type": "modelarts/object_detection", "annotation-loc": "s3://bucket/data/3.xml",
                 "annotation-format": "PASCAL VOC"}]},
            {"source": "content://I love machine learning",
             "annotation": [{"type": "modelarts/text_classification", "name": "positive"}]},
        ]
        write(src / "animals-v1.manifest", "\n".join(json.dumps(x) for x in lines) + "\n")
        result = scan(src, "manifest")
        by_id = {s.id: s for s in result.samples}
        assert by_id["data/cat/1.png"].labels == ("cat",)
        assert by_id["data/cat/1.png"].annotation == {"usage": "TRAIN"}
        assert by_id["data/2.png"].labels == () and by_id["data/2.png"].annotation is None
        assert by_id["data/3.jpg"].labels == ("car",)
        assert by_id["data/3.jpg"].files == ("data/3.jpg", "data/3.xml")
        text = by_id["animals-v1.manifest#4"]
        assert text.labels == ("positive",) and text.annotation == {"text": "I love machine learning"}
        assert result.classes == ["car", "cat", "positive"]
        # The manifest file itself may be given as the source.
        assert len(scan(src / "animals-v1.manifest", "manifest").samples) == 4

    def test_bad_lines_and_missing_files(self, tmp_path: Path) -> None:
        src = tmp_path / "m"
        png(src / "ok.png")
        write(src / "x.manifest", "\n".join([
            json.dumps({"source": "ok.png", "annotation": [{"type": "modelarts/image_classification", "name": "a"}]}),
            "{not json",
            json.dumps({"annotation": []}),
            json.dumps({"source": "s3://b/gone.png"}),
            json.dumps({"source": "ok.png", "annotation": [{"type": "modelarts/image_classification"}]}),
        ]))
        with pytest.raises(DatasetFormatError) as info:
            scan(src, "manifest")
        message = str(info.value)
        assert "x.manifest#2: not a JSON object" in message
        assert 'x.manifest#3: a manifest line needs a "source" string' in message
        assert "x.manifest#4: source 's3://b/gone.png' is not in the source folder" in message
        assert 'x.manifest#5: annotation 1 (modelarts/image_classification) has no "name"' in message
        assert [s.id for s in scan(src, "manifest", clean=True).samples] == ["ok.png"]

    def test_duplicate_sources_are_refused(self, tmp_path: Path) -> None:
        src = tmp_path / "m"
        png(src / "a.png")
        write(src / "x.manifest", '{"source": "a.png"}\n{"source": "s3://b/a.png"}\n')
        with pytest.raises(DatasetFormatError, match="a.png: 2 samples have this same path"):
            scan(src, "manifest", clean=True)

    def test_no_manifest_file(self, tmp_path: Path) -> None:
        png(tmp_path / "m" / "a.png")
        with pytest.raises(DatasetFormatError, match="no manifest file"):
            scan(tmp_path / "m", "manifest")


# -- text classification --------------------------------------------------------------------

class TestTextCombine:
    def test_one_sample_per_line(self, tmp_path: Path) -> None:
        src = tmp_path / "t"
        write(src / "reviews.txt", "great phone, fast\tpositive\n\nbattery died\tnegative,hardware\n")
        result = scan(src, "text")
        assert [(s.id, s.labels, s.annotation) for s in result.samples] == [
            ("reviews.txt#1", ("positive",), {"text": "great phone, fast"}),
            ("reviews.txt#3", ("negative", "hardware"), {"text": "battery died"}),
        ]
        assert result.samples[0].file == "reviews.txt"
        assert result.classes == ["hardware", "negative", "positive"]

    def test_csv_uses_comma_and_separators_are_configurable(self, tmp_path: Path) -> None:
        src = tmp_path / "t"
        write(src / "a.csv", "hello, world,greeting\n")
        assert scan(src, "text").samples[0].annotation == {"text": "hello, world"}
        (src / "a.csv").unlink()
        write(src / "b.txt", "some text|x;y\n")
        sample = scan(src / "b.txt", "text", params={"sample_label_separator": "|", "label_separator": ";"}).samples[0]
        assert sample.labels == ("x", "y") and sample.id == "b.txt#1"

    def test_gbk_file_is_read(self, tmp_path: Path) -> None:
        path = tmp_path / "t" / "zh.txt"
        path.parent.mkdir()
        path.write_bytes("手感很好\tpositive\n".encode("gbk"))
        assert scan(path.parent, "text").samples[0].annotation == {"text": "手感很好"}

    def test_lines_without_separator_or_label(self, tmp_path: Path) -> None:
        src = tmp_path / "t"
        write(src / "a.txt", "fine\tok\nno separator here\nempty label\t \n")
        with pytest.raises(DatasetFormatError) as info:
            scan(src, "text")
        assert "a.txt#2: no TAB between the text and its label" in str(info.value)
        assert "a.txt#3: empty label" in str(info.value)
        result = scan(src, "text", clean=True)
        assert [s.id for s in result.samples] == ["a.txt#1"]
        assert [p.path for p in result.problems] == ["a.txt#2", "a.txt#3"]
        assert result.excluded == set()  # the file holds good lines too: it is kept
