"""URL resolution, local/remote tests and the scheme registry of mloop.artifacts."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from mloop.artifacts import ArtifactStore, filesystem_for, is_local, join_url, local_path, resolve_url
from mloop.errors import ArtifactError, MissingExtraError

HOME = os.path.expanduser("~")


@pytest.mark.parametrize(
    ("given", "obs_root", "expected"),
    [
        # obs:// is an alias of the configured store, local or S3-compatible
        ("obs://bucket/key", "/srv/obs", "/srv/obs/bucket/key"),
        ("obs://bucket/dir/", "/srv/obs", "/srv/obs/bucket/dir/"),
        ("obs://bucket", "/srv/obs/", "/srv/obs/bucket"),
        ("obs://bucket/a//b/./c", "/srv/obs", "/srv/obs/bucket/a/b/c"),
        ("OBS://bucket/key", "/srv/obs", "/srv/obs/bucket/key"),
        ("obs://bucket/key", "s3://minio/obs", "s3://minio/obs/bucket/key"),
        ("obs://bucket/key/", "s3://minio/obs/", "s3://minio/obs/bucket/key/"),
        ("obs://bucket/key", "memory://obs", "memory://obs/bucket/key"),
        ("obs://bucket/key", "obs-store", "/work/obs-store/bucket/key"),
        ("obs://bucket/key", "~/obs", f"{HOME}/obs/bucket/key"),
        # other schemes are kept exactly as written
        ("s3://bucket/key", "/srv/obs", "s3://bucket/key"),
        ("s3://bucket/dir/", "/srv/obs", "s3://bucket/dir/"),
        ("memory://root/x", "/srv/obs", "memory://root/x"),
        ("file:///tmp/x/", "/srv/obs", "file:///tmp/x/"),
        ("gs://bucket/a/../b", "/srv/obs", "gs://bucket/a/../b"),
        ("simplecache::s3://bucket/key", "/srv/obs", "simplecache::s3://bucket/key"),
        # plain paths: ~ expanded, relative made absolute against base_dir, / kept
        ("data/train", "/srv/obs", "/work/data/train"),
        ("data/train/", "/srv/obs", "/work/data/train/"),
        ("./a/../b", "/srv/obs", "/work/b"),
        ("/abs/path", "/srv/obs", "/abs/path"),
        ("/abs/dir/", "/srv/obs", "/abs/dir/"),
        ("~/models", "/srv/obs", f"{HOME}/models"),
        ("~", "/srv/obs", HOME),
    ],
)
def test_resolve_url(given: str, obs_root: str, expected: str) -> None:
    assert resolve_url(given, obs_root=obs_root, base_dir="/work") == expected


def test_resolve_url_relative_base_dir_is_taken_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_url("x/y", obs_root="/o", base_dir="proj") == str(tmp_path / "proj" / "x" / "y")


def test_resolve_url_obs_uses_the_settings_obs_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mloop.config import Settings

    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("MLOOP_")]:
        monkeypatch.delenv(name)
    settings = Settings(home=tmp_path / ".mloop")
    url = resolve_url("obs://bucket/data/", obs_root=settings.resolved_obs_root, base_dir=str(tmp_path))
    assert url == str(tmp_path / ".mloop" / "artifacts" / "obs" / "bucket" / "data") + "/"


@pytest.mark.parametrize(
    ("given", "obs_root", "needle"),
    [
        ("", "/o", "empty"),
        ("   ", "/o", "empty"),
        ("obs://", "/o", "names no bucket"),
        ("obs://bucket/../../etc", "/o", "climbs out"),
        ("obs://bucket/key", "obs://other", "itself an obs:// URL"),
    ],
)
def test_resolve_url_refuses(given: str, obs_root: str, needle: str) -> None:
    with pytest.raises(ArtifactError, match=needle) as info:
        resolve_url(given, obs_root=obs_root, base_dir="/work")
    assert info.value.hint


@pytest.mark.parametrize(
    ("url", "local", "path"),
    [
        ("/tmp/x", True, "/tmp/x"),
        ("relative/x", True, "relative/x"),
        ("file:///tmp/x", True, "/tmp/x"),
        ("file:///tmp/dir/", True, "/tmp/dir/"),
        ("file://localhost/tmp/x", True, "/tmp/x"),
        ("local:///tmp/x", True, "/tmp/x"),
        ("s3://bucket/key", False, None),
        ("memory://root/x", False, None),
        ("obs://bucket/key", False, None),
        ("simplecache::file:///tmp/x", False, None),
    ],
)
def test_is_local_and_local_path(url: str, local: bool, path: str | None) -> None:
    assert is_local(url) is local
    assert local_path(url) == path


def test_join_url_keeps_the_base_form() -> None:
    assert join_url("s3://b/root/", "runs", "r1/out") == "s3://b/root/runs/r1/out"
    assert join_url("/data", "a", "", "b/") == "/data/a/b"
    assert join_url("memory://r") == "memory://r"


@pytest.mark.parametrize("part", ["..", "a/../../b", "/etc", "s3://other/x"])
def test_join_url_refuses_parts_that_leave_the_base(part: str) -> None:
    with pytest.raises(ArtifactError):
        join_url("s3://b/root", part)


def test_unknown_protocol_lists_the_known_ones() -> None:
    with pytest.raises(ArtifactError, match="unknown storage protocol 's4://'") as info:
        filesystem_for("s4://bucket/key")
    assert info.value.hint is not None
    assert "s3://" in info.value.hint and "memory://" in info.value.hint
    assert info.value.fields["url"] == "s4://bucket/key"


def test_unresolved_obs_url_says_to_resolve_it() -> None:
    with pytest.raises(ArtifactError, match="not resolved") as info:
        filesystem_for("obs://bucket/key")
    assert info.value.hint is not None and "resolve_url" in info.value.hint
    with pytest.raises(ArtifactError):
        ArtifactStore("obs://bucket/key")


def _assert_s3_extra_missing() -> None:
    with pytest.raises(MissingExtraError) as info:
        ArtifactStore("s3://bucket/artifacts")
    error = info.value
    assert isinstance(error, ImportError)
    assert "s3fs" in error.message
    assert error.hint == "pip install 'mloop[s3]'"
    assert (error.fields["package"], error.fields["extra"]) == ("s3fs", "s3")


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed here")
def test_s3_without_s3fs_names_the_pip_line() -> None:
    _assert_s3_extra_missing()


def test_s3_without_s3fs_names_the_pip_line_even_when_s3fs_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "s3fs", None)  # makes the package look absent
    _assert_s3_extra_missing()


@pytest.mark.skipif(importlib.util.find_spec("gcsfs") is not None, reason="gcsfs is installed here")
def test_fsspec_protocol_without_its_package_is_an_artifact_error() -> None:
    with pytest.raises(ArtifactError, match="gcsfs"):
        filesystem_for("gs://bucket/key")
