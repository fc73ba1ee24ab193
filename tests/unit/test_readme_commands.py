"""The README's first lines give the two set-up commands, and CI runs the test one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _commands() -> list[str]:
    lines = (ROOT / "README.md").read_text().splitlines()[:12]
    return [line.strip() for line in lines if line.startswith("    python3 -m venv")]


def test_the_readme_opens_with_the_example_and_test_commands() -> None:
    commands = _commands()
    assert len(commands) == 2, f"expected two indented set-up commands in the README's first lines, got {commands}"
    assert "mloop run examples/mnist/workflow.py" in commands[0]
    assert commands[1].endswith("pytest -q")


def test_ci_runs_the_readme_test_command() -> None:
    assert _commands()[1] in (ROOT / ".ci" / "run").read_text(), (
        "HOW TO FIX: .ci/run must call the README's test command, word for word")


def test_the_example_workflow_in_the_readme_command_exists_and_validates() -> None:
    result = subprocess.run([sys.executable, "-m", "mloop", "validate", "examples/mnist/workflow.py"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "mnist-continuous-training" in result.stdout
