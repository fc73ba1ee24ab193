"""The ``moxing`` compatibility module: moxing's file semantics over fsspec, ``obs://`` under the OBS root."""

from __future__ import annotations

from pathlib import Path

import pytest

import moxing as mox


@pytest.fixture
def obs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "obsroot"
    monkeypatch.setenv("MLOOP_OBS_ROOT", str(root))
    monkeypatch.chdir(tmp_path)
    return root


def _tree(folder: Path) -> None:
    (folder / "train" / "cat").mkdir(parents=True)
    (folder / "train" / "cat" / "a.txt").write_text("a")
    (folder / "train" / "b.txt").write_text("bb")
    (folder / "top.txt").write_text("top")


def test_copy_parallel_local_to_obs_and_back(obs: Path, tmp_path: Path) -> None:
    _tree(tmp_path / "data")
    mox.file.copy_parallel(str(tmp_path / "data"), "obs://bucket/data_set")
    assert (obs / "bucket" / "data_set" / "train" / "cat" / "a.txt").read_text() == "a"  # contents, not the folder
    mox.file.copy_parallel("obs://bucket/data_set/", str(tmp_path / "copy"))
    assert sorted(p.relative_to(tmp_path / "copy").as_posix() for p in (tmp_path / "copy").rglob("*")
                  if p.is_file()) == ["top.txt", "train/b.txt", "train/cat/a.txt"]


def test_copy_of_a_folder_onto_itself_is_a_no_op(obs: Path, tmp_path: Path) -> None:
    _tree(obs / "bucket" / "d")
    mox.file.copy_parallel("obs://bucket/d", "obs://bucket/d/")
    mox.file.copy_parallel("obs://bucket/d", str(obs / "bucket" / "d"))  # the same folder, spelled as a path
    mox.file.copy("obs://bucket/d/top.txt", str(obs / "bucket" / "d" / "top.txt"))
    assert (obs / "bucket" / "d" / "top.txt").read_text() == "top"


def test_file_questions_and_listing(obs: Path) -> None:
    _tree(obs / "b" / "d")
    assert mox.file.exists("obs://b/d/top.txt") and not mox.file.exists("obs://b/d/none")
    assert mox.file.is_directory("obs://b/d/train") and not mox.file.is_directory("obs://b/d/top.txt")
    assert mox.file.list_directory("obs://b/d") == ["top.txt", "train"]
    assert mox.file.list_directory("obs://b/d", recursive=True) == [
        "top.txt", "train", "train/b.txt", "train/cat", "train/cat/a.txt"]
    assert mox.file.glob("obs://b/d/train/*.txt") == ["obs://b/d/train/b.txt"]
    walked = list(mox.file.walk("obs://b/d"))
    assert walked[0] == ("obs://b/d", ["train"], ["top.txt"])
    assert mox.file.get_size("obs://b/d/train/b.txt") == 2
    with pytest.raises(NotADirectoryError):
        mox.file.list_directory("obs://b/d/top.txt")


def test_make_dirs_file_copy_rename_remove(obs: Path) -> None:
    mox.file.make_dirs("obs://b/x/y")
    assert (obs / "b" / "x" / "y").is_dir()
    with mox.file.File("obs://b/x/y/log.txt", "w") as fh:
        fh.write("hello")
    with mox.file.File("obs://b/x/y/log.txt", "r") as fh:
        assert fh.read() == "hello"
    mox.file.copy("obs://b/x/y/log.txt", "obs://b/z/log2.txt")
    assert (obs / "b" / "z" / "log2.txt").read_text() == "hello"
    mox.file.rename("obs://b/z/log2.txt", "obs://b/z/log3.txt")
    assert mox.file.list_directory("obs://b/z") == ["log3.txt"]
    with pytest.raises(IsADirectoryError):
        mox.file.remove("obs://b/x")
    mox.file.remove("obs://b/x", recursive=True)
    assert not (obs / "b" / "x").exists()
    with pytest.raises(FileNotFoundError):
        mox.file.remove("obs://b/x")
    with pytest.raises(FileNotFoundError):
        mox.file.copy_parallel("obs://b/missing", "obs://b/elsewhere")


def test_other_fsspec_urls(obs: Path, tmp_path: Path) -> None:
    _tree(tmp_path / "data")
    mox.file.copy_parallel(str(tmp_path / "data"), "memory://moxtest/d")
    assert mox.file.list_directory("memory://moxtest/d", recursive=True)[-1] == "train/cat/a.txt"
    mox.file.copy_parallel("memory://moxtest/d", "obs://b/from-memory")
    assert (obs / "b" / "from-memory" / "train" / "b.txt").read_text() == "bb"


def test_outside_a_job_obs_is_the_settings_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOOP_OBS_ROOT", raising=False)
    monkeypatch.setenv("MLOOP_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    mox.file.write("obs://bucket/k.txt", "v")
    assert (tmp_path / "home" / "artifacts" / "obs" / "bucket" / "k.txt").read_text() == "v"


def test_framework_spelling() -> None:
    from moxing.framework import file

    assert file.copy_parallel is mox.file.copy_parallel
