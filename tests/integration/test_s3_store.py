"""The artifact store on a real S3 server (moto's, a subprocess on loopback, one per module).

The whole path lives in the bucket: a workflow creates a dataset version, a job (a real
process) reads it and writes its outputs to ``obs://`` (the runner uploads them), a ModelStep
registers the model. A second home (fresh folder, same database, same bucket) then reads every
dataset version and the model byte for byte. An import killed in the middle of a multipart
upload leaves no version anyone can list or read.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from helpers import MLOOP, Embedded, wait_until, write_job, write_workflow
from mloop.artifacts import ArtifactStore, S3Options
from mloop.artifacts.filesystems import set_default_storage_options
from mloop.artifacts.s3 import from_environ
from mloop.errors import ArtifactError, ConfigError
from mloop.services import datasets as ds
from mloop.services import models as registry
from s3_helpers import CREDENTIALS, FlakyProxy, S3Server, start_s3_server

pytestmark = [pytest.mark.s3, pytest.mark.timeout(180)]

PART_MB = 5  # the smallest S3 allows: a 12 MiB file goes up in three parts


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_s3_server(str(tmp_path_factory.mktemp("moto")))
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Credentials the standard way (jobs inherit them); the endpoint comes from settings."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    yield
    set_default_storage_options("s3", None)  # each test's settings register their own


def _settings(s3: S3Server, root: str) -> dict[str, object]:
    return {"artifact_root": root, "s3_endpoint_url": s3.endpoint, "s3_part_size_mb": PART_MB}


def _pictures(folder: Path, big: bool = False, first: int = 0) -> Path:
    for label, shade in (("cat", 30), ("dog", 200)):
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in range(first, first + 3):
            Image.new("RGB", (8, 8), (shade, i * 40, 90)).save(folder / label / f"{label}{i}.png")
    if big:  # a 12 MiB image: a multipart upload into the store, ranged reads out of it
        side = 2048
        Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(folder / "cat" / "big.bmp")
    return folder


def _digests(folder: Path) -> list[str]:
    """The sha256 of every file under ``folder`` except mloop's manifest.json, sorted."""
    return sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*")
                  if p.is_file() and p.name != "manifest.json")


#: The job: reads the dataset version, writes a "model" made of its bytes, and a service class.
TRAIN = """
    files = []
    for base, _, names in os.walk(args.data_url):
        files += [os.path.join(base, n) for n in names if n != "manifest.json"]
    blob = b"".join(open(p, "rb").read() for p in sorted(files, key=lambda p: os.path.relpath(p, args.data_url)))
    with open(os.path.join(args.out, "model.bin"), "wb") as fh:
        fh.write(blob)
    with open(os.path.join(args.out, "customize_service.py"), "w") as fh:
        fh.write("class Service:\\n    pass\\n")
    with open(os.path.join(args.out, "seen.json"), "w") as fh:
        json.dump({"files": len(files), "bytes": len(blob)}, fh)
    print("trained on", len(files), "files")
"""

FLOW = """
    images = wf.data.OBSPlaceholder(name="images", object_type="directory")
    results = wf.data.OutputStorage(name="results", default="obs://results/")
    imagenet = [wf.steps.AnnotationFormatConfig(format_name=wf.steps.AnnotationFormatEnum.MA_IMAGENET_V1)]
    create = wf.steps.CreateDatasetStep(
        name="create",
        inputs=wf.steps.CreateDatasetInput(name="source", data=images),
        outputs=wf.steps.CreateDatasetOutput(name="dataset", config=wf.data.OBSOutputConfig(
            obs_path=results.join("dataset_work/"))),
        properties=wf.steps.DatasetProperties(
            dataset_name="pets", import_config=wf.steps.ImportConfig(annotation_format_config=imagenet)),
    )
    train = wf.steps.JobStep(
        name="train",
        algorithm=wf.BaseAlgorithm(code_dir=str(HERE / "code"), boot_file="job.py"),
        inputs=[wf.steps.JobInput(name="data_url", data=create.outputs["dataset"].as_input())],
        outputs=[wf.steps.JobOutput(name="out", obs_config=wf.data.OBSOutputConfig(obs_path=results.join("out/")))],
        spec=resources(), depend_steps=[create])
    register = wf.steps.ModelStep(
        name="register",
        inputs=wf.steps.ModelInput(name="model_input", data=train.outputs["out"].as_input()),
        outputs=wf.steps.ModelOutput(name="model_output", model_config=wf.steps.ModelConfig(
            model_name="pets-model", model_type="Custom")),
        depend_steps=[train])
    workflow = wf.Workflow(name="pets-on-s3", desc="", steps=[create, train, register])
"""


class TestStoreOnS3:
    def test_writes_reads_lists_and_deletes_objects(self, s3: S3Server, tmp_path: Path) -> None:
        bucket = s3.bucket()
        set_default_storage_options("s3", S3Options(endpoint_url=s3.endpoint, part_size_mb=PART_MB)
                                    .storage_options())
        store = ArtifactStore(f"s3://{bucket}/root")
        store.write_text("a/b.txt", "hello")
        src = _pictures(tmp_path / "src", big=True)
        store.put_dir(str(src), "pics")

        assert store.read_text("a/b.txt") == "hello"
        assert store.list("pics") == ["pics/cat/", "pics/dog/"]
        # The big file went up in parts (an S3 ETag of a multipart object ends in -<parts>).
        etag = s3.client().head_object(Bucket=bucket, Key="root/pics/cat/big.bmp")["ETag"]
        assert etag.strip('"').endswith("-3"), etag
        store.get_dir("pics", str(tmp_path / "back"))
        assert _digests(tmp_path / "back") == _digests(src)
        store.rm("pics", recursive=True)
        assert s3.keys(bucket) == ["root/a/b.txt"]
        with pytest.raises(ArtifactError, match="does not exist"):
            store.read_bytes("pics/cat/cat0.png")

    def test_transient_errors_are_retried(self, s3: S3Server) -> None:
        bucket = s3.bucket()
        with FlakyProxy(s3.endpoint, failures=3) as proxy:
            set_default_storage_options("s3", S3Options(endpoint_url=proxy.endpoint).storage_options())
            store = ArtifactStore(f"s3://{bucket}/r")
            store.write_bytes("a.bin", b"x" * 1000)
            assert store.read_bytes("a.bin") == b"x" * 1000
        assert proxy.failed == 3 and proxy.forwarded >= 2
        assert s3.keys(bucket) == ["r/a.bin"]

    def test_a_folder_is_published_whole_or_not_at_all(self, s3: S3Server, tmp_path: Path) -> None:
        bucket = s3.bucket()
        set_default_storage_options("s3", S3Options(endpoint_url=s3.endpoint).storage_options())
        store = ArtifactStore(f"s3://{bucket}/r")
        src = _pictures(tmp_path / "code")
        store.put_dir(str(src), "code/abc")  # what a killed publication leaves: files, no mark
        assert not store.is_published("code/abc")
        store.publish_dir(str(src), "code/abc")
        assert store.is_published("code/abc")
        assert "r/code/abc.complete" in s3.keys(bucket)

    def test_an_unreachable_endpoint_is_an_artifact_error_that_names_the_setting(self, tmp_path: Path) -> None:
        from s3_helpers import free_port

        set_default_storage_options("s3", S3Options(endpoint_url=f"http://127.0.0.1:{free_port()}",
                                                    max_attempts=1).storage_options())
        store = ArtifactStore("s3://nowhere/x")
        with pytest.raises(ArtifactError) as caught:
            store.write_text("a.txt", "x")
        assert "s3_endpoint_url" in (caught.value.hint or "")
        assert "testing" not in str(caught.value)  # never a credential in a message

    def test_bad_s3_settings_say_what_to_write(self) -> None:
        with pytest.raises(ConfigError, match="http"):
            S3Options(endpoint_url="127.0.0.1:9000")
        with pytest.raises(ConfigError, match="5 MiB"):
            S3Options(part_size_mb=1)
        assert "secret" not in repr(S3Options(access_key_id="AKIA", secret_access_key="secret"))
        # A job's request travels on a command line: it never carries credentials.
        from mloop.artifacts import job_environment
        from mloop.config import Settings

        env = job_environment(Settings(home="h", s3_endpoint_url="http://127.0.0.1:1", s3_region="eu-west-1",
                                       s3_access_key_id="AKIA", s3_secret_access_key="secret"))
        assert env["MLOOP_S3_ENDPOINT_URL"] == "http://127.0.0.1:1" and env["MLOOP_S3_REGION"] == "eu-west-1"
        assert not any(v in ("AKIA", "secret") for v in env.values())
        # ... and the job reads them back from its environment.
        assert from_environ(env) == S3Options(endpoint_url="http://127.0.0.1:1", region="eu-west-1")
        with pytest.raises(ConfigError, match="MLOOP_S3_PART_SIZE_MB"):
            from_environ({"MLOOP_S3_PART_SIZE_MB": "big"})


class TestWholePathOnS3:
    def test_dataset_job_and_model_live_in_the_bucket_and_a_second_home_reads_them(
            self, s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        bucket = s3.bucket()
        root = f"s3://{bucket}/x"
        src = _pictures(tmp_path / "images", big=True)
        write_job(tmp_path / "code", TRAIN, args=("data_url", "out"))
        flow = write_workflow(tmp_path, FLOW)
        first = Embedded(tmp_path / "home1", None, **_settings(s3, root))
        try:
            done = first.run(flow, {"images": str(src)})
            assert done.status == "succeeded", done.why()
            log = done.log("train")
            assert "trained on 7 files" in log
            v2 = ds.import_data(first.backend, "pets", str(_pictures(tmp_path / "more", first=3)), format="folder")
            versions = {v.version: v for v in ds.list_versions(first.backend, "pets")}
            assert sorted(versions) == ["v1", "v2"] and v2.version == "v2"
            model = registry.get_model_version(first.backend, "pets-model")
        finally:
            first.close()

        keys = s3.keys(bucket, "x/")
        out_url = done.steps["train"].outputs["out"]["url"]
        assert out_url.startswith(f"s3://{bucket}/x/obs/results/"), out_url
        assert any(k.startswith("x/code/") and k.endswith(".complete") for k in keys), keys  # the snapshot
        for prefix in ("x/datasets/manifests/", "x/datasets/", "x/models/blobs/", "x/code/",
                       out_url[len(f"s3://{bucket}/"):].rstrip("/") + "/model.bin"):
            assert any(k.startswith(prefix) for k in keys), f"nothing under {prefix}: {keys[:20]}"
        assert model.uri.startswith(root + "/models/blobs/")
        assert not (tmp_path / "home1" / "artifacts").exists()  # no byte went to the local default

        # A second machine: a fresh home, the same database and bucket.
        second = Embedded(tmp_path / "home2", f"sqlite:///{tmp_path / 'home1' / 'mloop.db'}", **_settings(s3, root))
        try:
            for name, record in versions.items():
                dest = tmp_path / "export" / name
                ds.export_version(second.backend, "pets", name, dest)
                assert ds.get_version(second.backend, "pets", name).manifest_hash == record.manifest_hash
                want = _digests(src) if name == "v1" else sorted(_digests(src) + _digests(tmp_path / "more"))
                assert _digests(dest) == want, f"{name} differs"
            exported = registry.export_model(second.backend, "pets-model", tmp_path / "model")
            files = {p.name: p.read_bytes() for p in exported.rglob("*") if p.is_file()}
            ordered = sorted(p for p in src.rglob("*") if p.is_file())
            assert files["model.bin"] == b"".join(p.read_bytes() for p in ordered)
            assert files["customize_service.py"] == b"class Service:\n    pass\n"
            assert registry.get_model_version(second.backend, "pets-model").content_hash == model.content_hash
            # The job's log: the first machine's file is not on the second one; the copy in the bucket is.
            from mloop.runs.queries import log_lines

            local_log = Path(done.steps["train"].log_path)
            local_log.rename(tmp_path / "elsewhere.log")
            assert f"x/logs/{done.run.id}/train.log" in keys
            lines = [line for _, line in log_lines(second.backend, done.run.id, "train")]
            assert "trained on 7 files" in "\n".join(lines)
        finally:
            second.close()

    def test_an_obs_artifact_root_is_the_same_bucket_on_s3(self, s3: S3Server, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        bucket = s3.bucket()
        home = Embedded(tmp_path / "home", None, **_settings(s3, f"obs://{bucket}/team"))
        try:
            assert home.settings.resolved_artifact_root == f"s3://{bucket}/team"
            version = ds.create_dataset(home.backend, "pets", str(_pictures(tmp_path / "images")))
            model_dir = tmp_path / "m"
            model_dir.mkdir()
            (model_dir / "customize_service.py").write_text("class Service:\n    pass\n")
            model = registry.register_model(home.backend, "m", str(model_dir), model_type="Custom")
        finally:
            home.close()
        keys = s3.keys(bucket)
        assert any(k.startswith("team/datasets/manifests/") for k in keys), keys
        assert f"team/models/blobs/{model.content_hash[:2]}/{model.content_hash}/customize_service.py" in keys
        assert version.version == "v1"


class TestInterruptedUpload:
    def test_an_import_killed_mid_upload_leaves_no_version_and_the_next_one_completes(
            self, s3: S3Server, tmp_path: Path) -> None:
        bucket = s3.bucket()
        src = _pictures(tmp_path / "images")
        side = 4096  # a 48 MiB image: ten parts, one at a time, so there is time to kill the import
        Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(src / "dog" / "huge.bmp")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_")}
        env.update(CREDENTIALS, MLOOP_HOME=str(tmp_path / "home"), MLOOP_ARTIFACT_ROOT=f"s3://{bucket}/x",
                   MLOOP_S3_ENDPOINT_URL=s3.endpoint, MLOOP_S3_PART_SIZE_MB=str(PART_MB),
                   MLOOP_S3_CONCURRENCY="1", NO_COLOR="1", COLUMNS="200")
        proc = subprocess.Popen([MLOOP, "dataset", "create", "pets", "--from", str(src)], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait_until(lambda: s3.pending_uploads(bucket) or proc.poll() is not None, 60,
                       "a multipart upload to start")
            assert proc.poll() is None, "the import finished before it could be interrupted"
            proc.kill()
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        pending = s3.pending_uploads(bucket)
        assert pending, "the killed import left no pending upload: it was not mid-upload"
        keys = s3.keys(bucket)
        assert not any(k.startswith("x/datasets/manifests/") for k in keys), keys
        assert not any(k.startswith(p) for k in keys for p in pending)  # the half object is not there

        listed = subprocess.run([MLOOP, "dataset", "list"], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=60)
        assert "pets" not in listed.stdout, listed.stdout

        again = subprocess.run([MLOOP, "dataset", "create", "pets", "--from", str(src)], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stdout + again.stderr
        out = subprocess.run([MLOOP, "dataset", "export", "pets", str(tmp_path / "back")], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        assert _digests(tmp_path / "back") == _digests(src)
