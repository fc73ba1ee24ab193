"""The dataset steps run by the real engine: CreateDatasetStep, DatasetImportStep,
ReleaseDatasetStep, and JobSteps that receive dataset versions as folders in the job layout.

Images are real PNGs (Pillow), jobs are real processes, the store is real SQLite (and
PostgreSQL where marked).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from helpers import BOTH_DATABASES, Embedded, database_url, embedded, write_job, write_workflow  # noqa: F401
from mloop.services.datasets import get_version, list_versions, load_manifest

pytestmark = pytest.mark.timeout(120)

#: A job that reports what its --data_url folder holds: files per split and label.
COUNT_LAYOUT = """
    counts = {}
    for split in sorted(os.listdir(args.data_url)):
        folder = os.path.join(args.data_url, split)
        if os.path.isdir(folder):
            counts[split] = {label: len(os.listdir(os.path.join(folder, label)))
                             for label in sorted(os.listdir(folder))}
    manifest = json.load(open(os.path.join(args.data_url, "manifest.json")))
    report = {"counts": counts, "version": manifest["version"], "dataset": manifest["dataset"],
              "samples": len(manifest["samples"])}
    with open(os.path.join(args.out, "layout.json"), "w") as fh:
        json.dump(report, fh)
"""

#: create (from a folder given at run time) -> import more -> release -> train on the release.
PIPELINE = """
    images = wf.data.OBSPlaceholder(name="images", object_type="directory")
    name = wf.Placeholder(name="dataset_name", placeholder_type=wf.PlaceholderType.STR, default="pets")
    imagenet = [wf.steps.AnnotationFormatConfig(format_name=wf.steps.AnnotationFormatEnum.MA_IMAGENET_V1)]
    create = wf.steps.CreateDatasetStep(
        name="create",
        inputs=wf.steps.CreateDatasetInput(name="source", data=images),
        outputs=wf.steps.CreateDatasetOutput(name="dataset", config=wf.data.OBSOutputConfig(
            obs_path=work.join("dataset_work/"))),
        properties=wf.steps.DatasetProperties(
            dataset_name=name, description="cats and dogs",
            import_config=wf.steps.ImportConfig(annotation_format_config=imagenet)),
    )
    more = wf.steps.DatasetImportStep(
        name="import_more",
        inputs=[wf.steps.DatasetImportInput(name="more", data=wf.data.OBSPath(obs_path=str(HERE / "more") + "/")),
                wf.steps.DatasetImportInput(name="target", data=create.outputs["dataset"].as_input())],
        outputs=wf.steps.DatasetImportOutput(name="dataset"),
        depend_steps=[create],
    )
    ratio = wf.Placeholder(name="ratio", placeholder_type=wf.PlaceholderType.STR, default="0.8")
    release = wf.steps.ReleaseDatasetStep(
        name="release",
        inputs=wf.steps.ReleaseDatasetInput(name="data", data=more.outputs["dataset"].as_input()),
        outputs=wf.steps.ReleaseDatasetOutput(name="released", dataset_version_config=wf.data.DatasetVersionConfig(
            train_evaluate_sample_ratio=ratio, label_task_type=wf.data.LabelTaskTypeEnum.IMAGE_CLASSIFICATION)),
        depend_steps=[more],
    )
    train = job("train", inputs={"data_url": release.outputs["released"].as_input()}, depend=[release])
    workflow = wf.Workflow(name="pets", desc="dataset pipeline", steps=[create, more, release, train])
"""


def images(folder: Path, counts: dict[str, range]) -> Path:
    for label, numbers in counts.items():
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in numbers:
            Image.new("RGB", (8, 8), (i * 7 % 256, 40, 90)).save(folder / label / f"{label}{i:03d}.png")
    return folder


def layout(done, step: str = "train") -> dict:
    return json.loads((Path(done.steps[step].outputs["out"]["url"]) / "layout.json").read_text())


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    images(tmp_path / "images", {"cat": range(10), "dog": range(10)})
    images(tmp_path / "more", {"cat": range(10, 15), "dog": range(10, 15)})
    write_job(tmp_path / "code", COUNT_LAYOUT, args=("data_url", "out"))
    return write_workflow(tmp_path, PIPELINE)


class TestDatasetPipeline:
    @BOTH_DATABASES
    def test_create_import_release_then_train_on_the_release(self, tmp_path: Path, pipeline: Path,
                                                              embedded: Embedded) -> None:
        done = embedded.run(pipeline, {"images": str(tmp_path / "images")})

        assert done.status == "succeeded", done.why()
        outputs = {name: done.steps[name].outputs for name in ("create", "import_more", "release")}
        assert outputs["create"]["dataset"]["version_name"] == "v1"
        assert outputs["import_more"]["dataset"]["version_name"] == "v2"
        assert outputs["release"]["released"]["version_name"] == "v3"
        assert "created pets:v1 (20 samples, 2 classes)" in (done.steps["create"].message or "")
        assert "train / " in (done.steps["release"].message or "")
        # 15 per label, stratified 0.8: 12 train and 3 eval of each.
        seen = layout(done)
        assert seen["counts"] == {"train": {"cat": 12, "dog": 12}, "eval": {"cat": 3, "dog": 3}}
        assert (seen["dataset"], seen["version"], seen["samples"]) == ("pets", "v3", 30)
        # The job's recorded inputs name the exact data version (what the model registry reads).
        used = done.steps["train"].inputs["datasets"]["data_url"]
        assert (used["dataset_name"], used["version_name"]) == ("pets", "v3")
        assert used["manifest_hash"] == get_version(embedded.backend, "pets", "v3").manifest_hash
        assert done.steps["train"].inputs["values"]["data_url"].endswith("/inputs/data_url")
        release = get_version(embedded.backend, "pets", "v3")
        assert release.release is not None and release.release["of"] == "v2"
        assert get_version(embedded.backend, "pets", "v1").description == "cats and dogs"
        # A step done inside the engine is timed from before its work, not recorded as 0 s.
        create = done.steps["create"]
        made = get_version(embedded.backend, "pets", "v1").created_at
        assert create.started_at is not None and create.finished_at is not None
        assert create.started_at <= made <= create.finished_at

    def test_rerun_on_unchanged_data_makes_no_new_version(self, tmp_path: Path, pipeline: Path,
                                                          embedded: Embedded) -> None:
        first = embedded.run(pipeline, {"images": str(tmp_path / "images")})
        assert first.status == "succeeded", first.why()

        again = embedded.run(pipeline, {"images": str(tmp_path / "images")})

        assert again.status == "succeeded", again.why()
        assert [v.version for v in list_versions(embedded.backend, "pets")] == ["v1", "v2", "v3"]
        assert "already holds this data" in (again.steps["create"].message or "")
        assert (again.steps["release"].message or "").startswith("reused release pets:v3")
        assert layout(again)["counts"] == layout(first)["counts"]

    def test_new_images_make_new_versions_and_a_new_release(self, tmp_path: Path, pipeline: Path,
                                                            embedded: Embedded) -> None:
        assert embedded.run(pipeline, {"images": str(tmp_path / "images")}).status == "succeeded"
        images(tmp_path / "more", {"bird": range(5)})

        done = embedded.run(pipeline, {"images": str(tmp_path / "images")})

        assert done.status == "succeeded", done.why()
        assert done.steps["import_more"].outputs["dataset"]["version_name"] == "v4"
        assert done.steps["release"].outputs["released"]["version_name"] == "v5"
        assert layout(done)["counts"] == {"train": {"bird": 4, "cat": 12, "dog": 12},
                                          "eval": {"bird": 1, "cat": 3, "dog": 3}}


class TestModelKnowsItsData:
    def test_model_registered_from_the_job_records_the_dataset_version(self, tmp_path: Path, pipeline: Path,
                                                                       embedded: Embedded) -> None:
        # The job also leaves a (custom) model behind for the ModelStep to register.
        write_job(tmp_path / "code", COUNT_LAYOUT + """
    with open(os.path.join(args.out, "customize_service.py"), "w") as fh:
        fh.write("class Service:\\n    pass\\n")
""", args=("data_url", "out"))
        last = '    workflow = wf.Workflow(name="pets", desc="dataset pipeline", steps=[create, more, release, train])'
        assert last in PIPELINE
        write_workflow(tmp_path, PIPELINE.replace(last, """
    register = wf.steps.ModelStep(
        name="register", inputs=wf.steps.ModelInput(name="model", data=train.outputs["out"].as_input()),
        outputs=wf.steps.ModelOutput(name="model", model_config=wf.steps.ModelConfig(
            model_name="pets-model", model_type="Custom")),
        depend_steps=[train])
    workflow = wf.Workflow(name="pets", desc="", steps=[create, more, release, train, register])"""))

        done = embedded.run(pipeline, {"images": str(tmp_path / "images")})

        assert done.status == "succeeded", done.why()
        model = embedded.store.registry.get_version("pets-model", "1")
        assert model.dataset is not None
        assert (model.dataset["name"], model.dataset["version"]) == ("pets", "v3")


class TestDatasetJobInputs:
    def test_fixed_dataset_and_placeholder_inputs(self, tmp_path: Path, pipeline: Path, embedded: Embedded) -> None:
        assert embedded.run(pipeline, {"images": str(tmp_path / "images")}).status == "succeeded"
        flow = write_workflow(tmp_path, """
            fixed = job("fixed", inputs={"data_url": wf.data.Dataset(dataset_name="pets", version_name="v1")})
            chosen = job("chosen", inputs={"data_url": wf.data.DatasetPlaceholder(name="data")})
            workflow = wf.Workflow(name="consumers", desc="", steps=[fixed, chosen])
        """, name="consumers.py")

        done = embedded.run(flow, {"data": "pets"})  # no version: the latest

        assert done.status == "succeeded", done.why()
        # v1 is not a release: every sample is under train/.
        assert layout(done, "fixed")["counts"] == {"train": {"cat": 10, "dog": 10}}
        assert layout(done, "chosen")["version"] == "v3"
        assert done.steps["chosen"].inputs["datasets"]["data_url"]["version_name"] == "v3"

    def test_unknown_dataset_version_fails_the_job_step_clearly(self, tmp_path: Path, embedded: Embedded) -> None:
        write_job(tmp_path / "code", COUNT_LAYOUT, args=("data_url", "out"))
        flow = write_workflow(tmp_path, """
            workflow = wf.Workflow(name="missing", desc="", steps=[
                job("train", inputs={"data_url": wf.data.Dataset(dataset_name="nothing", version_name="v1")})])
        """)

        done = embedded.run(flow)

        assert done.status == "failed"
        assert "nothing" in (done.steps["train"].message or "")


class TestDatasetStepFailures:
    def test_corrupt_image_fails_create_naming_the_file(self, tmp_path: Path, pipeline: Path,
                                                        embedded: Embedded) -> None:
        (tmp_path / "images" / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")

        done = embedded.run(pipeline, {"images": str(tmp_path / "images")})

        assert done.status == "failed"
        message = done.steps["create"].message or ""
        assert "cat/broken.png" in message and "truncated" in message
        assert done.steps["train"].status == "pending"
        with pytest.raises(LookupError):
            get_version(embedded.backend, "pets")  # nothing half-made is visible

    def test_release_ratio_outside_zero_one_is_refused(self, tmp_path: Path, pipeline: Path,
                                                       embedded: Embedded) -> None:
        done = embedded.run(pipeline, {"images": str(tmp_path / "images"), "ratio": "1.00"})

        assert done.status == "failed"
        message = done.steps["release"].message or ""
        assert "train_evaluate_sample_ratio '1.00' is not between 0 and 1" in message
        assert 'DatasetVersionConfig(train_evaluate_sample_ratio="0.8")' in message

    def test_unsupported_annotation_format_lists_the_supported_ones(self, tmp_path: Path,
                                                                   embedded: Embedded) -> None:
        images(tmp_path / "images", {"cat": range(2)})
        flow = write_workflow(tmp_path, """
            seg = [wf.steps.AnnotationFormatConfig(format_name=wf.steps.AnnotationFormatEnum.MA_IMAGE_SEGMENTATION_V1)]
            create = wf.steps.CreateDatasetStep(
                name="create",
                inputs=wf.steps.CreateDatasetInput(name="source", data=wf.data.OBSPath(obs_path=str(HERE / "images"))),
                outputs=wf.steps.CreateDatasetOutput(name="dataset", config=wf.data.OBSOutputConfig(
                    obs_path=work.join("w/"))),
                properties=wf.steps.DatasetProperties(
                    dataset_name="segs", import_config=wf.steps.ImportConfig(annotation_format_config=seg)))
            workflow = wf.Workflow(name="seg", desc="", steps=[create])
        """)

        done = embedded.run(flow)

        assert done.status == "failed"
        message = done.steps["create"].message or ""
        assert "unsupported dataset format 'ModelArts image segmentation 1.0'" in message
        assert "'ModelArts imageNet 1.0' (folder" in message


class TestOtherFormatsThroughSteps:
    @staticmethod
    def text_flow(tmp_path: Path, parameters: str = "None") -> Path:
        """A workflow creating dataset ``reviews`` from ``reviews/`` in the text format."""
        return write_workflow(tmp_path, f"""
            text = [wf.steps.AnnotationFormatConfig(
                format_name=wf.steps.AnnotationFormatEnum.MA_TEXT_CLASSIFICATION_COMBINE_V1,
                parameters={parameters})]
            create = wf.steps.CreateDatasetStep(
                name="create",
                inputs=wf.steps.CreateDatasetInput(name="source", data=wf.data.OBSPath(obs_path=str(HERE / "reviews"))),
                outputs=wf.steps.CreateDatasetOutput(name="dataset", config=wf.data.OBSOutputConfig(
                    obs_path=work.join("w/"))),
                properties=wf.steps.DatasetProperties(
                    dataset_name="reviews", import_config=wf.steps.ImportConfig(annotation_format_config=text)))
            workflow = wf.Workflow(name="text", desc="", steps=[create])
        """)

    def test_text_classification_dataset_from_a_workflow(self, tmp_path: Path, embedded: Embedded) -> None:
        (tmp_path / "reviews").mkdir()
        (tmp_path / "reviews" / "a.txt").write_text("great\tpositive\nawful\tnegative\nfine\tpositive\n")

        done = embedded.run(self.text_flow(tmp_path))

        assert done.status == "succeeded", done.why()
        record = get_version(embedded.backend, "reviews")
        assert record.format == "ModelArts text classfication combine 1.0"
        samples = {s.id: s.labels for s in load_manifest(embedded.backend, record).samples}
        assert samples == {"a.txt#1": ("positive",), "a.txt#2": ("negative",), "a.txt#3": ("positive",)}

    def test_text_separators_from_the_workflow_reach_the_format(self, tmp_path: Path, embedded: Embedded) -> None:
        (tmp_path / "reviews").mkdir()
        (tmp_path / "reviews" / "a.txt").write_text("great, really|positive;fun\nawful|negative\n")
        flow = self.text_flow(tmp_path, 'wf.steps.AnnotationFormatParameters(sample_label_separator="|", '
                                        'label_separator=";")')

        done = embedded.run(flow)

        assert done.status == "succeeded", done.why()
        manifest = load_manifest(embedded.backend, get_version(embedded.backend, "reviews"))
        assert {s.id: (s.annotation["text"], s.labels) for s in manifest.samples} == {
            "a.txt#1": ("great, really", ("positive", "fun")), "a.txt#2": ("awful", ("negative",))}


class TestReleaseOfALabelTask:
    """A ReleaseDatasetStep fed a label task directly (``wf.data.LabelTask``) releases the version
    the task's completion made, never the dataset's latest, and refuses an unfinished task."""

    FLOW = """
        task = wf.data.LabelTask(dataset_name="pets", task_name="tagging")
        release = wf.steps.ReleaseDatasetStep(
            name="release",
            inputs=wf.steps.ReleaseDatasetInput(name="data", data=task),
            outputs=wf.steps.ReleaseDatasetOutput(name="released", dataset_version_config=wf.data.DatasetVersionConfig(
                train_evaluate_sample_ratio="0.5", label_task_type=wf.data.LabelTaskTypeEnum.IMAGE_CLASSIFICATION)),
        )
        workflow = wf.Workflow(name="release_task", desc="", steps=[release])
    """

    def test_releases_the_labeled_version_only_once_the_task_is_completed(self, tmp_path: Path,
                                                                          embedded: Embedded) -> None:
        from mloop.services.datasets import create_dataset, import_data
        from mloop.services.labels import complete_task, create_task, submit_labels

        backend = embedded.backend
        create_dataset(backend, "pets", images(tmp_path / "v1", {"cat": range(4), "dog": range(4)}))
        task = create_task(backend, "pets", "v1", "tagging", labels=["cat", "dog", "fluffy"])
        flow = write_workflow(tmp_path, self.FLOW)

        unfinished = embedded.run(flow)
        assert unfinished.status == "failed"
        assert "labeling task 'tagging' is not completed" in unfinished.steps["release"].message

        samples = [s.id for s in load_manifest(backend, get_version(backend, "pets", "v1")).samples]
        submit_labels(backend, task, {sample: ["fluffy"] for sample in samples[:2]})
        labeled = complete_task(backend, task, allow_partial=True).output_version
        # A later import makes a newer version; the release must still be of the labeled one.
        import_data(backend, "pets", images(tmp_path / "v2", {"cat": range(10, 12)}))

        done = embedded.run(flow)
        assert done.status == "succeeded", done.why()
        released = get_version(backend, "pets", done.steps["release"].outputs["released"]["version_name"])
        assert released.release["of"] == labeled
        by_id = {s.id: s.labels for s in load_manifest(backend, released).samples}
        assert [by_id[sample] for sample in samples[:2]] == [("fluffy",), ("fluffy",)]
