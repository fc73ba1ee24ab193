"""The job runner's request argument: inline JSON only when it is short and carries no
environment values; otherwise an owner-only file (a command line is readable by every user)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from mloop.executors.base import INLINE_REQUEST_MAX, runner_argument


def mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_request_with_environment_values_goes_to_an_owner_only_file(tmp_path: Path) -> None:
    wire = {"workdir": str(tmp_path / "job"), "env": {"MLOOP_METRICS_TOKEN": "mlp_secret_value"}}
    arg = runner_argument(wire)
    assert "mlp_secret_value" not in arg and arg == str(tmp_path / "job") + ".request.json"
    assert mode(arg) == 0o600 and json.loads(Path(arg).read_text()) == wire


def test_an_earlier_file_with_wider_permissions_is_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "job.request.json"
    path.write_text("old")
    path.chmod(0o644)
    wire = {"workdir": str(tmp_path / "job"), "env": {"X": "1"}}
    assert runner_argument(wire) == str(path) and mode(str(path)) == 0o600
    assert json.loads(path.read_text()) == wire


def test_a_short_request_without_environment_stays_inline(tmp_path: Path) -> None:
    wire = {"workdir": str(tmp_path / "job"), "env": {}, "command": "python job.py"}
    assert json.loads(runner_argument(wire)) == wire
    assert not (tmp_path / "job.request.json").exists()


def test_a_long_request_goes_to_a_file(tmp_path: Path) -> None:
    wire = {"workdir": str(tmp_path / "job"), "env": {}, "parameters": [["x", "y" * INLINE_REQUEST_MAX]]}
    arg = runner_argument(wire)
    assert mode(arg) == 0o600 and json.loads(Path(arg).read_text()) == wire
