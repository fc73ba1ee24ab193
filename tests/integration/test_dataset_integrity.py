"""The content-addressed dataset store stays intact whatever a job does to its staged input, and a
damaged object (changed outside mloop) is reported, never served (issue 9, item 2).

Real files, real jobs (the engine launches the runner as a process), real SQLite.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from helpers import Cli, Embedded, cli, database_url, embedded, write_job, write_workflow  # noqa: F401
from mloop.datasets.objects import PACK_MAX, ObjectStore
from mloop.errors import DatasetError
from mloop.services.datasets import (create_dataset, export_version, get_version, import_data, load_manifest,
                                     materialize, verify_version)

pytestmark = pytest.mark.timeout(120)


def _noise_png(path: Path, side: int, seed: int) -> None:
    """A PNG that does not compress: ``side`` 160 makes ~77 KB (a loose object), 8 a packed one."""
    import random

    rnd = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.frombytes("RGB", (side, side), bytes(rnd.getrandbits(8) for _ in range(side * side * 3))).save(path)


def _two_versions(tmp_path: Path, backend) -> tuple[Path, Path]:  # noqa: ANN001
    """``pets`` v1 (a big cat, a small cat, a dog) and v2 (v1 plus one more dog): v2 shares v1's objects."""
    v1 = tmp_path / "src1"
    _noise_png(v1 / "cat" / "big.png", 160, 1)
    _noise_png(v1 / "cat" / "small.png", 8, 2)
    _noise_png(v1 / "dog" / "d1.png", 8, 3)
    v2 = tmp_path / "src2"
    _noise_png(v2 / "dog" / "d2.png", 8, 4)
    assert (v1 / "cat" / "big.png").stat().st_size > PACK_MAX  # a loose object, linkable before the fix
    create_dataset(backend, "pets", v1)
    import_data(backend, "pets", v2)
    return v1, v2


def _tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _loose_path(backend, source: Path) -> str:  # noqa: ANN001
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    path = ObjectStore(backend.artifacts).object_path(digest)
    assert path is not None and os.path.isfile(path)
    return path


#: A job that appends to every file of its staged dataset input, in place, and reports the mode of one.
VANDAL = """
    touched = []
    for root, _, names in os.walk(args.data_url):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "ab") as fh:
                fh.write(b"GARBAGE")
            touched.append(os.path.relpath(path, args.data_url))
    with open(os.path.join(args.out, "touched.json"), "w") as fh:
        json.dump(sorted(touched), fh)
"""


class TestJobsCannotChangeTheStore:
    def test_a_job_appending_to_its_staged_input_leaves_every_version_intact(self, tmp_path: Path,
                                                                            embedded: Embedded) -> None:
        backend = embedded.backend
        v1, v2 = _two_versions(tmp_path, backend)
        big = _loose_path(backend, v1 / "cat" / "big.png")
        before = hashlib.sha256(Path(big).read_bytes()).hexdigest()
        write_job(tmp_path / "code", VANDAL, args=("data_url", "out"))
        flow = write_workflow(tmp_path, """
            workflow = wf.Workflow(name="vandal", desc="", steps=[
                job("vandal", inputs={"data_url": wf.data.Dataset(dataset_name="pets", version_name="v1")})])
        """)

        done = embedded.run(flow)

        assert done.status == "succeeded", done.why()
        touched = json.loads((Path(done.steps["vandal"].outputs["out"]["url"]) / "touched.json").read_text())
        assert "train/cat/big.png" in touched  # the job did write to its copy
        # The store's object is unchanged, and both versions export byte for byte as imported.
        assert hashlib.sha256(Path(big).read_bytes()).hexdigest() == before
        export_version(backend, "pets", "v1", tmp_path / "e1")
        export_version(backend, "pets", "v2", tmp_path / "e2")
        assert _tree(tmp_path / "e1") == _tree(v1)
        assert _tree(tmp_path / "e2") == {**_tree(v1), **_tree(v2)}
        assert verify_version(backend, "pets", "v1").damaged == []

    def test_materialize_does_not_hand_out_the_stores_inode(self, tmp_path: Path, embedded: Embedded) -> None:
        backend = embedded.backend
        v1, _ = _two_versions(tmp_path, backend)
        big = _loose_path(backend, v1 / "cat" / "big.png")
        dest = materialize(backend, "pets", "v1", tmp_path / "m")
        staged = dest / "train" / "cat" / "big.png"
        assert os.stat(staged).st_ino != os.stat(big).st_ino
        with open(staged, "ab") as fh:  # root ignores modes: only a separate inode protects the store
            fh.write(b"x")
        assert hashlib.sha256(Path(big).read_bytes()).hexdigest() == hashlib.sha256(
            (v1 / "cat" / "big.png").read_bytes()).hexdigest()


def _corrupt(path: str, how: str) -> None:
    os.chmod(path, 0o644)
    if how == "append":
        with open(path, "ab") as fh:
            fh.write(b"!")
    else:  # same size, one byte flipped in the middle, the mtime put back (ctime still moves)
        st = os.stat(path)
        with open(path, "r+b") as fh:
            fh.seek(st.st_size // 2)
            b = fh.read(1)
            fh.seek(st.st_size // 2)
            fh.write(bytes([b[0] ^ 0xFF]))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


class TestDamagedObjectsAreNeverServed:
    @pytest.mark.parametrize("how", ["append", "flip"])
    def test_export_and_staging_refuse_a_damaged_loose_object(self, tmp_path: Path, embedded: Embedded,
                                                              how: str) -> None:
        backend = embedded.backend
        v1, _ = _two_versions(tmp_path, backend)
        export_version(backend, "pets", "v1", tmp_path / "ok")  # seen whole once (a cached check after)
        _corrupt(_loose_path(backend, v1 / "cat" / "big.png"), how)

        for write in (export_version, materialize):
            with pytest.raises(DatasetError) as caught:
                write(backend, "pets", "v2", tmp_path / write.__name__)
            message = str(caught.value) + " " + (caught.value.hint or "")
            assert "cat/big.png" in message and "pets:v2" in message
            assert "mloop dataset verify pets" in message
            assert not (tmp_path / write.__name__ / "cat" / "big.png").exists()
            assert not (tmp_path / write.__name__ / "train" / "cat" / "big.png").exists()

        report = verify_version(backend, "pets", "v2")
        assert [d.path for d in report.damaged] == ["cat/big.png"]

    def test_a_damaged_pack_is_refused_too(self, tmp_path: Path, embedded: Embedded) -> None:
        backend = embedded.backend
        _two_versions(tmp_path, backend)
        packs = Path(backend.artifacts.root.removeprefix("file://")) / "datasets" / "packs"
        pack = next(p for p in packs.iterdir() if p.suffix == ".pack")
        _corrupt(str(pack), "flip")

        with pytest.raises(DatasetError, match="damaged"):
            export_version(backend, "pets", "v2", tmp_path / "e")  # v2 holds every pack
        assert verify_version(backend, "pets", "v2").damaged

    def test_a_job_step_on_a_damaged_version_fails_naming_the_file(self, tmp_path: Path,
                                                                   embedded: Embedded) -> None:
        backend = embedded.backend
        v1, _ = _two_versions(tmp_path, backend)
        _corrupt(_loose_path(backend, v1 / "cat" / "big.png"), "append")
        write_job(tmp_path / "code", VANDAL, args=("data_url", "out"))
        flow = write_workflow(tmp_path, """
            workflow = wf.Workflow(name="reader", desc="", steps=[
                job("reader", inputs={"data_url": wf.data.Dataset(dataset_name="pets", version_name="v1")})])
        """)

        done = embedded.run(flow)

        assert done.status == "failed"
        message = done.steps["reader"].message or ""
        assert "cat/big.png" in message and "damaged" in message, done.why()


class TestVerifyCommand:
    def test_verify_lists_damaged_objects_and_exits_1(self, tmp_path: Path, cli: Cli) -> None:
        src = tmp_path / "src"
        _noise_png(src / "cat" / "big.png", 160, 1)
        _noise_png(src / "cat" / "small.png", 8, 2)
        cli.ok("dataset", "create", "pets", "--from", str(src))
        ok = cli.ok("dataset", "verify", "pets")
        assert "2 files" in ok.text and "ok" in ok.text

        from mloop.artifacts import ArtifactStore

        home = tmp_path / ".mloop"
        digest = hashlib.sha256((src / "cat" / "big.png").read_bytes()).hexdigest()
        obj = ObjectStore(ArtifactStore(str(home / "artifacts"))).object_path(digest)
        assert obj is not None and os.path.isfile(obj), obj
        _corrupt(obj, "flip")

        bad = cli("dataset", "verify", "pets:v1")
        assert bad.code == 1, bad
        assert "cat/big.png" in bad.text and "damaged" in bad.text
        refused = cli("dataset", "export", "pets", str(tmp_path / "out"))
        assert refused.code != 0, refused
        assert "cat/big.png" in refused.text and "mloop dataset verify pets" in refused.text
        every = cli("dataset", "verify", "pets", "--all")
        assert every.code == 1 and "pets:v1" in every.text, every
