"""``mloop`` in a subfolder of a project uses the project's home and says so (issue 9, item 20)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers import MLOOP, Cli


def test_a_subfolder_uses_the_home_above_and_names_it(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    sub = project / "src" / "deep"
    sub.mkdir(parents=True)
    cli = Cli(project, project / ".mloop")
    cli.ok("runs")  # makes the project's home
    env = {k: v for k, v in cli.env().items() if k != "MLOOP_HOME"}
    result = subprocess.run([MLOOP, "runs", "--json"], cwd=sub, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"  # stdout stays JSON
    assert f"using home {project / '.mloop'}" in result.stderr
    assert not (sub / ".mloop").exists() and not (project / "src" / ".mloop").exists()
    here = subprocess.run([MLOOP, "runs"], cwd=project, env=env, capture_output=True, text=True, timeout=60)
    assert here.returncode == 0 and "using home" not in here.stderr
