"""Releases record where the workflow came from: CI variables, else the local git checkout."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mloop.runs.service import _CI_VARS, ci_metadata


@pytest.fixture(autouse=True)
def no_ci_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in _CI_VARS:
        monkeypatch.delenv(var, raising=False)


def test_github_actions_variables_are_recorded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GITHUB_SHA", "abc123")
    monkeypatch.setenv("GITHUB_REF_NAME", "main")
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    assert ci_metadata(str(tmp_path)) == {"git_commit_id": "abc123", "git_branch": "main", "build_job_id": "42"}


def test_a_local_checkout_gives_its_commit_and_branch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "trunk", str(tmp_path)], check=True)
    (tmp_path / "w.py").write_text("x = 1\n")
    subprocess.run([*git, "-C", str(tmp_path), "add", "w.py"], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-qm", "first"], check=True)
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert ci_metadata(str(tmp_path)) == {"git_commit_id": head, "git_branch": "trunk", "build_job_name": "local"}


def test_outside_git_nothing_is_recorded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert ci_metadata(str(tmp_path)) == {}
