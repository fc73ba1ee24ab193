"""The home is found as git finds its repository (issue 9, item 20): from a subfolder, the
nearest folder above holding a ``.mloop/`` or a ``mloop.toml``; none: ``./.mloop`` as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from mloop.config import Settings, find_project


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("MLOOP_HOME", "MLOOP_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "proj" / "src" / "deep").mkdir(parents=True)
    return tmp_path / "proj"


def test_an_existing_home_above_is_used_from_a_subfolder(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / ".mloop").mkdir()
    monkeypatch.chdir(project / "src" / "deep")
    settings = Settings()
    assert settings.home_path == (project / ".mloop").resolve()
    assert settings.home_found_above == project / ".mloop"
    assert find_project() == project


def test_a_mloop_toml_above_marks_the_project_and_its_relative_home(project: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "mloop.toml").write_text("max_parallel = 3\n")
    monkeypatch.chdir(project / "src")
    settings = Settings()
    assert settings.max_parallel == 3 and settings.home_path == (project / ".mloop").resolve()
    (project / "mloop.toml").write_text('home = "state/home"\n')
    assert Settings().home_path == (project / "state" / "home").resolve()  # relative to the toml's folder


def test_the_nearest_wins_and_the_current_folder_is_not_said(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / ".mloop").mkdir()
    (project / "src" / ".mloop").mkdir()
    monkeypatch.chdir(project / "src")
    settings = Settings()
    assert settings.home_path == (project / "src" / ".mloop").resolve()
    assert settings.home_found_above is None


def test_nothing_found_is_the_current_folder_and_explicit_homes_win(project: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project / "src")
    assert Settings().home_path == (project / "src" / ".mloop").resolve()
    (project / ".mloop").mkdir()
    monkeypatch.setenv("MLOOP_HOME", str(project / "elsewhere"))
    assert Settings().home_path == (project / "elsewhere").resolve() and Settings().home_found_above is None
    monkeypatch.delenv("MLOOP_HOME")
    assert Settings(home=project / "given").home_path == (project / "given").resolve()
