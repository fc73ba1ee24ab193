"""``mloop train MODULE``: a module written as seed 001's train-classifier modules are runs as a
one-step workflow in its own environment (real uv, real index), and what it wrote to
``artefacts/`` comes back as ``artefacts.tar.gz``, the step's output.

One home for the module's tests: its environment (``six==1.16.0``) is built once.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from helpers import Cli

pytestmark = pytest.mark.timeout(180)

#: seed 001's entry point: run the package's own training, then copy its checkpoints to the
#: ``artefacts`` folder next to the module (the repository root).
MAIN = """\
import os
import shutil
from pathlib import Path
from mnist.sample.runner import main

main()
src = str(Path(__file__).parent.joinpath("checkpoints"))
dest = str(Path(__file__).parent.parent.joinpath("artefacts"))
if not os.path.exists(dest): os.mkdir(dest)
shutil.copytree(src, dest, dirs_exist_ok=True)
"""
RUNNER = """\
import argparse, os, sys
from pathlib import Path
import six


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    if args.epochs < 0:
        sys.exit("epochs must not be negative")
    out = Path(__file__).parent.parent / "checkpoints"
    out.mkdir(exist_ok=True)
    (out / "model.txt").write_text(f"trained {args.epochs} epochs with six {six.__version__}\\n")
    (out / "logs").mkdir(exist_ok=True)
    (out / "logs" / "train.log").write_text("loss 0.1\\n")
    print("six", six.__version__, "flavor", os.environ.get("MLOOP_FLAVOR"), "gpu visible",
          os.environ.get("CUDA_VISIBLE_DEVICES") != "")
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository laid out as seed 001's: ``mnist/`` with __main__.py, requirements, apt-pkgs."""
    root = tmp_path_factory.mktemp("classifier-repo")
    module = root / "mnist"
    (module / "sample").mkdir(parents=True)
    (module / "__init__.py").write_text("")
    (module / "sample" / "__init__.py").write_text("")
    (module / "sample" / "runner.py").write_text(RUNNER)
    (module / "__main__.py").write_text(MAIN)
    (module / "requirements.txt").write_text("six==1.16.0\n")
    (module / "apt-pkgs.txt").write_text("coreutils\n")
    return root


@pytest.fixture(scope="module")
def cli(repo: Path) -> Cli:
    return Cli(repo, repo / ".mloop")


def test_the_module_runs_in_its_environment_and_its_artefacts_come_back_archived(cli: Cli, repo: Path) -> None:
    result = cli("train", "mnist", "-p", "epochs=3", "--json", timeout=150)
    assert result.code == 0, str(result)
    shown = json.loads(result.out)
    assert shown["status"] == "succeeded" and shown["archive"] == str(repo / "artefacts.tar.gz"), shown
    assert shown["environment"]["kind"] == "venv", shown
    with tarfile.open(shown["archive"]) as tar:
        names = sorted(tar.getnames())
        model = tar.extractfile("artefacts/model.txt").read().decode()  # type: ignore[union-attr]
    assert names == ["artefacts/logs/train.log", "artefacts/model.txt"], names
    assert model == "trained 3 epochs with six 1.16.0\n"
    # The archive is the step's recorded output, in the artifact store.
    step = cli.show(shown["run_id"])["steps"]["train"]
    assert Path(step["outputs"]["artefacts"]["url"].rstrip("/"), "artefacts.tar.gz") == Path(shown["output"])
    assert Path(shown["output"]).read_bytes() == Path(shown["archive"]).read_bytes()
    log = cli.ok("logs", shown["run_id"], "train").out
    assert "six 1.16.0 flavor cpu.small gpu visible False" in log and "archived 2 file(s)" in log, log
    assert "apt-pkgs.txt: 1 package(s): coreutils; all installed" in log, log
    assert not (repo / "artefacts").exists(), "the job wrote into the user's repository"


def test_a_gpu_flavor_reaches_the_module(cli: Cli, repo: Path) -> None:
    result = cli("train", "mnist", "--flavor", "gpu.1", "-p", "epochs=1", "--archive", "", "--json", timeout=150)
    assert result.code == 0, str(result)
    shown = json.loads(result.out)
    assert shown["archive"] is None and Path(shown["output"]).is_file(), shown
    log = cli.ok("logs", shown["run_id"], "train").out
    assert "environment" in log and "reused" in log and "building" not in log, log
    assert "flavor gpu.1 gpu visible True" in log, log


def test_a_failing_module_fails_the_command_and_archives_nothing(cli: Cli, repo: Path) -> None:
    (repo / "failed.tar.gz").unlink(missing_ok=True)
    result = cli("train", "mnist", "-p", "epochs=-1", "--archive", "failed.tar.gz", timeout=150)
    assert result.code != 0, str(result)
    assert "epochs must not be negative" in result.text, str(result)
    assert not (repo / "failed.tar.gz").exists()


def test_a_folder_without_main_is_refused(cli: Cli, repo: Path) -> None:
    (repo / "notamodule").mkdir(exist_ok=True)
    result = cli("train", "notamodule")
    assert result.code != 0 and "is not a module folder with a __main__.py" in result.text, str(result)
