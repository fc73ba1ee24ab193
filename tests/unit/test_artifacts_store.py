"""One behaviour contract for ArtifactStore, run against every backend on a fresh root.

Each backend class provides the ``store`` fixture and ``break_commit``, which makes the
final step of an atomic write (rename, move or put) fail the way the backend would.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from fsspec.callbacks import Callback

from mloop.artifacts import ArtifactStore, atomic
from mloop.errors import ArtifactError


class Boom(Exception):
    """Raised by a test callback to interrupt a transfer."""


class FailingCallback(Callback):
    """Raises :class:`Boom` on the n-th progress call (``set_size`` counts as one)."""

    def __init__(self, fail_on_call: int) -> None:
        super().__init__()
        self.calls = 0
        self.fail_on_call = fail_on_call

    def call(self, hook_name: str | None = None, **kwargs: Any) -> None:
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise Boom("interrupted by the test")


def _local_tree(root: Path) -> dict[str, bytes | None]:
    """Relative path -> bytes (files) or None (folders), for byte-for-byte comparison."""
    out: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        out[rel] = None if path.is_dir() else path.read_bytes()
    return out


@pytest.fixture
def sample_dir(tmp_path: Path) -> Path:
    src = tmp_path / "sample"
    (src / "nested" / "deeper").mkdir(parents=True)
    (src / "top.txt").write_text("top level\n")
    (src / "empty.bin").write_bytes(b"")
    (src / "nested" / "data.bin").write_bytes(bytes(range(256)) * 7)
    (src / "nested" / "deeper" / "big.bin").write_bytes(os.urandom(atomic.CHUNK_SIZE * 2 + 17))
    (src / "nested" / "deeper" ".hidden").write_text("dot file")
    return src


class ArtifactStoreContract:
    """The behaviour every backend must show. Subclasses provide the fixtures."""

    expected_strategy = ""
    keeps_empty_folders = True
    streams_writes = True  # progress arrives while bytes are written (not after one PUT)

    @pytest.fixture
    def store(self) -> ArtifactStore:
        raise NotImplementedError

    def break_commit(self, store: ArtifactStore, monkeypatch: pytest.MonkeyPatch) -> None:
        raise NotImplementedError

    def test_picks_the_write_strategy_of_its_backend(self, store: ArtifactStore) -> None:
        assert store.write_strategy == self.expected_strategy

    # -- naming ----------------------------------------------------------------------
    def test_url_joins_parts_under_the_root(self, store: ArtifactStore) -> None:
        assert store.url("runs", "r1/out", "model.pt") == store.root + "/runs/r1/out/model.pt"
        assert store.url() == store.root

    def test_url_refuses_to_climb_out_of_the_root(self, store: ArtifactStore) -> None:
        with pytest.raises(ArtifactError, match=r"\.\."):
            store.url("runs", "../../etc")

    def test_urls_of_another_filesystem_are_refused(self, store: ArtifactStore) -> None:
        with pytest.raises(ArtifactError, match="not on this store"):
            store.read_bytes("gs://elsewhere/x")

    # -- single files ----------------------------------------------------------------
    def test_write_then_read_round_trip_creates_parents(self, store: ArtifactStore) -> None:
        url = store.url("a", "b", "c.bin")
        store.write_bytes(url, b"\x00\x01payload")
        assert store.exists(url)
        assert store.read_bytes(url) == b"\x00\x01payload"

    def test_relative_locations_are_under_the_root(self, store: ArtifactStore) -> None:
        store.write_text("rel/x.txt", "héllo")
        assert store.read_text(store.url("rel", "x.txt")) == "héllo"

    def test_overwrite_replaces_the_content(self, store: ArtifactStore) -> None:
        url = store.url("f.txt")
        store.write_text(url, "old")
        store.write_text(url, "new, and longer than before")
        assert store.read_text(url) == "new, and longer than before"

    def test_empty_file_round_trips(self, store: ArtifactStore) -> None:
        store.write_bytes(store.url("empty"), b"")
        assert store.read_bytes(store.url("empty")) == b""

    def test_atomic_writes_leave_no_temporary_files(self, store: ArtifactStore) -> None:
        url = store.url("dir", "target.bin")
        for n in range(3):
            store.write_bytes(url, os.urandom(atomic.CHUNK_SIZE + n))
        assert store.list(store.root, recursive=True) == [url]

    def test_write_interrupted_by_callback_keeps_old_content(self, store: ArtifactStore) -> None:
        if not self.streams_writes:
            pytest.skip("this backend writes in one PUT; progress arrives after it")
        url = store.url("model.bin")
        store.write_bytes(url, b"old model")
        with pytest.raises(Boom):  # the caller's own exception, not translated
            store.write_bytes(url, b"x" * (atomic.CHUNK_SIZE * 2 + 5), callback=FailingCallback(3))
        assert store.read_bytes(url) == b"old model"
        assert store.list(store.root, recursive=True) == [url]

    def test_write_failing_at_commit_keeps_old_content(
        self, store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        url = store.url("model.bin")
        store.write_bytes(url, b"old model")
        self.break_commit(store, monkeypatch)
        with pytest.raises(ArtifactError, match="cannot write") as info:
            store.write_bytes(url, b"new model")
        monkeypatch.undo()
        assert url in info.value.message and info.value.hint
        assert isinstance(info.value.__cause__, OSError)
        assert store.read_bytes(url) == b"old model"
        assert store.list(store.root, recursive=True) == [url]

    def test_write_reports_progress_in_bytes(self, store: ArtifactStore) -> None:
        progress = Callback()
        store.write_bytes(store.url("p.bin"), b"z" * (atomic.CHUNK_SIZE + 1), callback=progress)
        assert (progress.size, progress.value) == (atomic.CHUNK_SIZE + 1, atomic.CHUNK_SIZE + 1)

    def test_read_with_callback_reports_progress(self, store: ArtifactStore) -> None:
        store.write_bytes(store.url("r.bin"), b"r" * 1000)
        progress = Callback()
        assert store.read_bytes(store.url("r.bin"), callback=progress) == b"r" * 1000
        assert progress.value == 1000

    def test_reading_what_is_missing_names_the_url(self, store: ArtifactStore) -> None:
        url = store.url("nope.txt")
        with pytest.raises(ArtifactError, match="does not exist") as info:
            store.read_bytes(url)
        assert url in str(info.value) and info.value.fields["url"] == url
        assert isinstance(info.value.__cause__, FileNotFoundError)

    # -- folders ---------------------------------------------------------------------
    def test_makedirs_is_idempotent(self, store: ArtifactStore) -> None:
        store.makedirs(store.url("x", "y"))
        store.makedirs(store.url("x", "y"))
        if self.keeps_empty_folders:
            assert store.exists(store.url("x", "y"))

    def test_list_shows_children_with_folders_marked(self, store: ArtifactStore) -> None:
        store.write_text(store.url("d", "a.txt"), "a")
        store.write_text(store.url("d", "sub", "b.txt"), "b")
        assert store.list(store.url("d")) == [store.url("d", "a.txt"), store.url("d", "sub") + "/"]
        assert store.list(store.url("d"), recursive=True) == [store.url("d", "a.txt"), store.url("d", "sub", "b.txt")]
        assert store.list(store.url("d", "a.txt")) == [store.url("d", "a.txt")]
        with pytest.raises(ArtifactError, match="does not exist"):
            store.list(store.url("missing"))

    def test_rm(self, store: ArtifactStore) -> None:
        store.write_text(store.url("d", "a.txt"), "a")
        store.write_text(store.url("d", "b.txt"), "b")
        store.rm(store.url("d", "a.txt"))
        assert not store.exists(store.url("d", "a.txt"))
        with pytest.raises(ArtifactError, match="not empty"):
            store.rm(store.url("d"))
        store.rm(store.url("d"), recursive=True)
        assert not store.exists(store.url("d"))
        with pytest.raises(ArtifactError, match="does not exist"):
            store.rm(store.url("d"))
        store.rm(store.url("d"), missing_ok=True)

    def test_put_dir_then_get_dir_round_trips_byte_for_byte(
        self, store: ArtifactStore, sample_dir: Path, tmp_path: Path
    ) -> None:
        url = store.url("runs", "r1", "outputs")
        store.put_dir(str(sample_dir), url)
        back = tmp_path / "back"
        store.get_dir(url, str(back))
        expected = _local_tree(sample_dir)
        assert {k: v for k, v in _local_tree(back).items() if v is not None} == {
            k: v for k, v in expected.items() if v is not None
        }
        assert _local_tree(back) == expected  # folders too: every folder here holds a file
        assert not [p for p in back.rglob("*.tmp")]

    def test_put_dir_merges_and_overwrites(self, store: ArtifactStore, sample_dir: Path) -> None:
        url = store.url("out")
        store.write_text(store.url("out", "top.txt"), "stale")
        store.write_text(store.url("out", "keep.txt"), "kept")
        store.put_dir(str(sample_dir), url)
        assert store.read_text(store.url("out", "top.txt")) == "top level\n"
        assert store.read_text(store.url("out", "keep.txt")) == "kept"

    def test_empty_folders_round_trip_where_the_backend_has_folders(
        self, store: ArtifactStore, tmp_path: Path
    ) -> None:
        if not self.keeps_empty_folders:
            pytest.skip("folders are key prefixes on this backend")
        src = tmp_path / "with_empty"
        (src / "empty" / "inner").mkdir(parents=True)
        store.put_dir(str(src), store.url("e"))
        store.get_dir(store.url("e"), str(tmp_path / "e_back"))
        assert (tmp_path / "e_back" / "empty" / "inner").is_dir()

    def test_put_and_get_dir_report_progress_per_file(
        self, store: ArtifactStore, sample_dir: Path, tmp_path: Path
    ) -> None:
        up, down = Callback(), Callback()
        store.put_dir(str(sample_dir), store.url("p"), callback=up)
        store.get_dir(store.url("p"), str(tmp_path / "p"), callback=down)
        assert (up.size, up.value) == (5, 5)
        assert (down.size, down.value) == (5, 5)

    def test_get_dir_refuses_missing_and_files(self, store: ArtifactStore, tmp_path: Path) -> None:
        with pytest.raises(ArtifactError, match="does not exist"):
            store.get_dir(store.url("missing"), str(tmp_path / "x"))
        store.write_text(store.url("file.txt"), "x")
        with pytest.raises(ArtifactError, match="is a file"):
            store.get_dir(store.url("file.txt"), str(tmp_path / "x"))

    def test_put_dir_refuses_a_missing_folder(self, store: ArtifactStore, tmp_path: Path) -> None:
        with pytest.raises(ArtifactError, match="not a folder"):
            store.put_dir(str(tmp_path / "missing"), store.url("x"))


class TestLocalPathStore(ArtifactStoreContract):
    expected_strategy = "replace"  # temporary sibling + os.replace
    @pytest.fixture
    def store(self, tmp_path: Path) -> ArtifactStore:
        return ArtifactStore(str(tmp_path / "root"))

    def break_commit(self, store: ArtifactStore, monkeypatch: pytest.MonkeyPatch) -> None:
        def no_space(src: str, dst: str) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "replace", no_space)

    def test_new_files_get_the_usual_permissions(self, store: ArtifactStore) -> None:
        store.write_text(store.url("perm.txt"), "x")
        umask = os.umask(0)
        os.umask(umask)
        assert os.stat(store.url("perm.txt")).st_mode & 0o777 == 0o666 & ~umask

    def test_absolute_paths_are_accepted(self, store: ArtifactStore, tmp_path: Path) -> None:
        target = tmp_path / "elsewhere" / "x.txt"
        store.write_text(str(target), "abs")
        assert target.read_text() == "abs"


class TestFileUrlStore(TestLocalPathStore):
    @pytest.fixture
    def store(self, tmp_path: Path) -> ArtifactStore:
        return ArtifactStore(f"file://{tmp_path}/root")

    def test_urls_keep_the_file_scheme(self, store: ArtifactStore) -> None:
        store.write_text(store.url("a", "b.txt"), "x")
        assert store.list(store.url("a")) == [store.url("a", "b.txt")]
        assert store.url("a").startswith("file://")

    def test_new_files_get_the_usual_permissions(self, store: ArtifactStore) -> None:
        store.write_text(store.url("perm.txt"), "x")
        umask = os.umask(0)
        os.umask(umask)
        assert os.stat(store.url("perm.txt")[len("file://"):]).st_mode & 0o777 == 0o666 & ~umask


class TestMemoryStore(ArtifactStoreContract):
    expected_strategy = "move"  # temporary sibling + fs.mv
    @pytest.fixture
    def store(self) -> Iterator[ArtifactStore]:
        root = f"memory://mloop-test-{uuid.uuid4().hex}"
        yield ArtifactStore(root)
        fs = fsspec.filesystem("memory")
        if fs.exists(root):
            fs.rm(root, recursive=True)

    def break_commit(self, store: ArtifactStore, monkeypatch: pytest.MonkeyPatch) -> None:
        def refuse(*args: Any, **kwargs: Any) -> None:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(store.fs, "mv", refuse)

    def test_local_paths_are_refused(self, store: ArtifactStore) -> None:
        with pytest.raises(ArtifactError, match="local path"):
            store.read_bytes("/etc/hostname")


class TestDirectPutStore(TestMemoryStore):
    """The object-store strategy (one atomic PUT, as on s3://), exercised on memory://."""

    expected_strategy = "direct"
    streams_writes = False

    @pytest.fixture
    def store(self) -> Iterator[ArtifactStore]:
        root = f"memory://mloop-test-{uuid.uuid4().hex}"
        yield ArtifactStore(root, write_strategy="direct")
        fs = fsspec.filesystem("memory")
        if fs.exists(root):
            fs.rm(root, recursive=True)

    def break_commit(self, store: ArtifactStore, monkeypatch: pytest.MonkeyPatch) -> None:
        def refuse(*args: Any, **kwargs: Any) -> None:
            raise ConnectionResetError(104, "Connection reset by peer")

        monkeypatch.setattr(store.fs, "pipe_file", refuse)


def test_replace_strategy_needs_a_local_root() -> None:
    with pytest.raises(ArtifactError, match="local root"):
        ArtifactStore("memory://x", write_strategy="replace")
