"""Content hashes of files and folders, and code-folder snapshots."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from mloop.artifacts import DEFAULT_IGNORE, dir_manifest, hash_dir, hash_file, manifest_digest, snapshot_dir
from mloop.artifacts import snapshot as snapshot_module
from mloop.artifacts.hashing import HASH_CHUNK
from mloop.errors import ArtifactError

CODE = {
    "train.py": "import utils\nprint('train')\n",
    "utils.py": "def f():\n    return 1\n",
    "pkg/__init__.py": "",
    "pkg/model/net.py": "class Net: ...\n",
}
# The digest of CODE. It is recorded with every job, so it must never change between
# mloop versions; if this test fails, the manifest format changed (don't, or version it).
CODE_DIGEST = "3e429a7e1e2c007958ec23913f11e6147406c86479d83c09892cffc04ccfbf58"


def make_tree(root: Path, files: dict[str, str], order: list[str] | None = None) -> Path:
    for rel in order or list(files):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[rel])
    return root


@pytest.fixture
def code(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "code", CODE)


class TestHashFile:
    def test_is_the_sha256_of_the_bytes(self, tmp_path: Path) -> None:
        small, big = tmp_path / "small", tmp_path / "big"
        small.write_bytes(b"hello")
        big.write_bytes(os.urandom(HASH_CHUNK * 2 + 3))  # streamed in chunks
        assert hash_file(small) == hashlib.sha256(b"hello").hexdigest()
        assert hash_file(str(big)) == hashlib.sha256(big.read_bytes()).hexdigest()

    def test_missing_file_is_an_artifact_error(self, tmp_path: Path) -> None:
        with pytest.raises(ArtifactError, match="does not exist"):
            hash_file(tmp_path / "nope")


class TestHashDir:
    def test_is_the_sha256_of_the_documented_manifest(self, code: Path) -> None:
        rows = sorted(
            [rel, len(text.encode()), hashlib.sha256(text.encode()).hexdigest()] for rel, text in CODE.items()
        )
        manifest = json.dumps(rows, separators=(",", ":")).encode()
        assert hash_dir(code) == hashlib.sha256(manifest).hexdigest()
        assert [list(e) for e in dir_manifest(code)] == rows

    def test_is_stable_across_runs_and_versions(self, code: Path) -> None:
        assert hash_dir(code) == hash_dir(str(code)) == CODE_DIGEST

    def test_ignores_mtimes_modes_and_creation_order(self, tmp_path: Path) -> None:
        first = make_tree(tmp_path / "a", CODE)
        second = make_tree(tmp_path / "b", CODE, order=list(reversed(CODE)))
        for path in second.rglob("*.py"):
            os.utime(path, (1_000_000, 1_000_000))
        os.chmod(second / "train.py", 0o755)
        assert hash_dir(first) == hash_dir(second)

    def test_changes_when_a_byte_changes(self, code: Path) -> None:
        before = hash_dir(code)
        (code / "pkg" / "model" / "net.py").write_text("class Net: ..,\n")
        assert hash_dir(code) != before

    def test_changes_when_a_file_is_renamed_or_added(self, code: Path) -> None:
        before = hash_dir(code)
        (code / "utils.py").rename(code / "helpers.py")
        renamed = hash_dir(code)
        assert renamed != before
        (code / "new.txt").write_text("")
        assert hash_dir(code) not in (before, renamed)

    def test_ignores_caches_and_metadata_by_default(self, code: Path) -> None:
        before = hash_dir(code)
        (code / "__pycache__").mkdir()
        (code / "__pycache__" / "utils.cpython-311.pyc").write_bytes(b"\x00")
        (code / "pkg" / "stray.pyc").write_bytes(b"\x01")
        (code / ".git").mkdir()
        (code / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
        (code / ".mloop").mkdir()
        (code / ".mloop" / "state").write_text("x")
        (code / "empty_folder").mkdir()
        assert hash_dir(code) == before
        assert hash_dir(code, ignore=()) != before
        assert set(DEFAULT_IGNORE) == {"__pycache__", "*.pyc", ".git", ".mloop"}

    def test_custom_ignore_patterns(self, code: Path) -> None:
        (code / "data.csv").write_text("1,2\n")
        assert hash_dir(code, ignore=(*DEFAULT_IGNORE, "*.csv")) == CODE_DIGEST

    def test_follows_links_to_files_inside_only(self, code: Path, tmp_path: Path) -> None:
        outside = tmp_path / "outside.txt"
        outside.write_text("secret")
        before = hash_dir(code)
        os.symlink(outside, code / "leak.txt")
        os.symlink(tmp_path, code / "loop_dir")
        os.symlink(code / "missing", code / "dangling")
        assert hash_dir(code) == before
        os.symlink("utils.py", code / "alias.py")
        names = [e.path for e in dir_manifest(code)]
        assert "alias.py" in names and "leak.txt" not in names

    def test_refuses_what_is_not_a_folder(self, tmp_path: Path) -> None:
        (tmp_path / "f").write_text("x")
        for bad in (tmp_path / "f", tmp_path / "missing"):
            with pytest.raises(ArtifactError, match="not a folder"):
                hash_dir(bad)

    def test_manifest_digest_does_not_depend_on_entry_order(self, code: Path) -> None:
        entries = dir_manifest(code)
        assert manifest_digest(reversed(entries)) == manifest_digest(entries) == hash_dir(code)


class TestSnapshotDir:
    def test_digest_equals_hash_dir_of_source_and_copy(self, code: Path, tmp_path: Path) -> None:
        digest = snapshot_dir(code, tmp_path / "snap")
        assert digest == hash_dir(code) == hash_dir(tmp_path / "snap")
        for rel, text in CODE.items():
            assert (tmp_path / "snap" / rel).read_text() == text

    def test_copies_large_files_and_keeps_modes(self, code: Path, tmp_path: Path) -> None:
        (code / "weights.bin").write_bytes(os.urandom(HASH_CHUNK * 2 + 1))
        os.chmod(code / "train.py", 0o750)
        (code / "empty_dir").mkdir()
        digest = snapshot_dir(code, tmp_path / "snap")
        snap = tmp_path / "snap"
        assert digest == hash_dir(code)
        assert (snap / "weights.bin").read_bytes() == (code / "weights.bin").read_bytes()
        assert stat.S_IMODE((snap / "train.py").stat().st_mode) == 0o750
        assert (snap / "empty_dir").is_dir()

    def test_later_edits_of_the_source_do_not_reach_the_snapshot(self, code: Path, tmp_path: Path) -> None:
        digest = snapshot_dir(code, tmp_path / "snap")
        (code / "train.py").write_text("print('edited while the job runs')\n")
        (code / "added.py").write_text("x = 1\n")
        (code / "utils.py").unlink()
        assert hash_dir(tmp_path / "snap") == digest
        assert (tmp_path / "snap" / "train.py").read_text() == CODE["train.py"]

    def test_skips_ignored_names_and_outside_links(self, code: Path, tmp_path: Path) -> None:
        (code / "__pycache__").mkdir()
        (code / "__pycache__" / "x.pyc").write_bytes(b"\x00")
        (tmp_path / "outside.txt").write_text("secret")
        os.symlink(tmp_path / "outside.txt", code / "leak.txt")
        os.symlink("utils.py", code / "alias.py")
        snapshot_dir(code, tmp_path / "snap")
        snap = tmp_path / "snap"
        assert not (snap / "__pycache__").exists() and not (snap / "leak.txt").exists()
        assert not (snap / "alias.py").is_symlink() and (snap / "alias.py").read_text() == CODE["utils.py"]

    def test_into_an_empty_existing_folder_or_inside_the_source(self, code: Path, tmp_path: Path) -> None:
        (tmp_path / "empty").mkdir()
        assert snapshot_dir(code, tmp_path / "empty") == CODE_DIGEST
        assert snapshot_dir(code, code / ".mloop" / "snapshots" / "1") == CODE_DIGEST
        assert hash_dir(code) == CODE_DIGEST

    def test_never_overwrites_a_snapshot(self, code: Path, tmp_path: Path) -> None:
        snapshot_dir(code, tmp_path / "snap")
        with pytest.raises(ArtifactError, match="already exists") as info:
            snapshot_dir(code, tmp_path / "snap")
        assert info.value.hint

    def test_a_failed_copy_leaves_nothing_behind(
        self, code: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        real = snapshot_module._copy_and_hash
        calls = []

        def fail_on_third(src: str, dst: str) -> tuple[int, str]:
            calls.append(src)
            if len(calls) == 3:
                raise OSError(28, "No space left on device")
            return real(src, dst)

        monkeypatch.setattr(snapshot_module, "_copy_and_hash", fail_on_third)
        with pytest.raises(ArtifactError, match="cannot write the snapshot"):
            snapshot_dir(code, tmp_path / "out" / "snap")
        assert list((tmp_path / "out").iterdir()) == []
