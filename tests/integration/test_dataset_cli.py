"""``mloop dataset ...`` end to end: real ``mloop`` processes on a real folder of PNGs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import Cli

PAST = 1_600_000_000


def write_png(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (8, 8), dtype=np.uint8), mode="L").save(path)
    os.utime(path, (PAST, PAST))


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(cwd=tmp_path, home=tmp_path / ".mloop")


@pytest.mark.slow
def test_the_dataset_commands_end_to_end(cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "digits"
    for label in ("0", "1"):
        for i in range(5):
            write_png(src / label / f"{i}.png", seed=int(label) * 100 + i)

    created = cli.ok("dataset", "create", "digits", "--from", "digits", "--classes", "0,1")
    assert "created digits:v1: 10 samples, 10 files" in created.out
    assert "stored 10 new objects" in created.out

    same = cli.ok("dataset", "import", "digits", "--from", "digits")
    assert "no changes: digits:v1" in same.out

    write_png(src / "1" / "new.png", seed=999)
    imported = cli.ok("dataset", "import", "digits", "--from", "digits")
    assert "imported digits:v2: 11 samples" in imported.out and "10 unchanged, not re-read" in imported.out

    versions = cli.json("dataset", "versions", "digits")
    assert [(v["version"], v["parent"], v["sample_count"]) for v in versions] == [("v1", None, 10), ("v2", "v1", 11)]
    assert "v2" in cli.ok("dataset", "versions", "digits").out
    assert [(d["name"], d["latest_version"]) for d in cli.json("dataset", "list")] == [("digits", "v2")]

    diff = cli.ok("dataset", "diff", "digits", "v1", "v2")
    assert "1 added, 0 removed, 0 changed, 0 relabeled" in diff.out and "+ 1/new.png" in diff.out
    assert json.loads(cli.ok("dataset", "diff", "digits", "v1", "v2", "--json").out)["added"] == ["1/new.png"]

    refused = cli("dataset", "release", "digits", "--split", "2")
    assert refused.code == 2 and "error: split ratio 2.0 is not between 0 and 1" in refused.err
    assert "hint:" in refused.err
    released = cli.ok("dataset", "release", "digits:v2", "--split", "0.6", "--seed", "1")
    assert "released digits:v3 from v2: 7 train / 4 eval" in released.out
    shown = cli.ok("dataset", "show", "digits:v3")
    assert "release of v2: ratio 0.6, seed 1: 7 train / 4 eval" in shown.out and "0 (5), 1 (6)" in shown.out

    cli.ok("dataset", "export", "digits:v2", "out")
    for p in src.rglob("*.png"):
        assert (tmp_path / "out" / p.relative_to(src)).read_bytes() == p.read_bytes()
    cli.ok("dataset", "export", "digits:v3", "job", "--layout")
    manifest = json.loads((tmp_path / "job" / "manifest.json").read_text())
    assert {s["split"] for s in manifest["samples"]} == {"train", "eval"}
    assert len(list((tmp_path / "job").glob("*/*/*.png"))) == 11


def test_bad_input_is_an_error_with_a_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In process (typer's runner), so many cases stay quick; ``mloop.cli.main`` prints the same
    error as "error: ... / hint: ..." (the end-to-end test above runs the real command)."""
    from typer.testing import CliRunner

    from mloop.cli import app
    from mloop.errors import MloopError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLOOP_HOME", str(tmp_path / ".mloop"))
    (tmp_path / "empty").mkdir()
    write_png(tmp_path / "src" / "a" / "0.png", seed=1)
    (tmp_path / "src" / "a" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage")
    runner = CliRunner()

    def fails(*args: str, message: str) -> None:
        result = runner.invoke(app, list(args))
        assert isinstance(result.exception, MloopError), result.output
        assert message in str(result.exception) and result.exception.hint, (args, result.exception)

    fails("dataset", "create", "bad name", "--from", "src", message="is not allowed")
    fails("dataset", "create", "x", "--from", "nowhere", message="does not exist")
    fails("dataset", "create", "x", "--from", "empty", message="is empty")
    fails("dataset", "create", "x", "--from", "src", message="a/1.png")
    fails("dataset", "create", "x", "--from", "src", "--format", "nope", message="unsupported dataset format")
    fails("dataset", "versions", "ghost", message="no dataset named 'ghost'")

    cleaned = runner.invoke(app, ["dataset", "create", "x", "--from", "src", "--clean"])
    assert cleaned.exit_code == 0, cleaned.output
    assert "created x:v1: 1 samples" in cleaned.output
    assert "left out 1 file(s)" in cleaned.output and "a/1.png" in cleaned.output
    fails("dataset", "release", "x", "--split", "1.0", message="not between 0 and 1")
    fails("dataset", "show", "x:v5", message="has no version v5")
    fails("dataset", "diff", "x", "v1", "v4", message="has no version v4")
    fails("dataset", "export", "x:v1", "src", message="not an empty folder")
    digest = hashlib.sha256((tmp_path / "src" / "a" / "0.png").read_bytes()).hexdigest()
    from mloop.artifacts import ArtifactStore
    from mloop.datasets.objects import ObjectStore

    # the good file of the failed imports is stored (packed: it is small), ready for the retry
    assert ObjectStore(ArtifactStore(str(tmp_path / ".mloop" / "artifacts"))).has(digest)
