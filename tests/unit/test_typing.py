"""spec/, engine/, store/ and artifacts/ stay clean under mypy --strict (config in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("mypy", path=str(Path(sys.executable).parent)) is None,
                    reason="mypy is not installed (pip install -e '.[dev]')")
def test_core_packages_pass_mypy_strict() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary"], cwd=ROOT, capture_output=True,
                            text=True, timeout=280)
    assert result.returncode == 0, "mypy --strict found problems:\n" + result.stdout + result.stderr
