"""Every example workflow compiles, validates, and matches its golden spec.

Examples: the reconstructed seed examples in ``tests/seed_examples/`` and the shared
examples in ``<repo>/../shared/examples/`` (tested in place; skipped when absent). The
golden files in ``tests/golden/`` are written by ``python scripts/regen_golden.py``; this
module imports that script's helpers so both agree on what a golden file is.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mloop import workflow as wf
from mloop.spec import dump_spec, load_spec, spec_problems, validate_spec
from mloop.spec.models import WorkflowSpec

REPO = Path(__file__).resolve().parents[2]
SHARED_EXAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "examples"
REGEN = "python scripts/regen_golden.py"


def _load_regen() -> ModuleType:
    path = REPO / "scripts" / "regen_golden.py"
    spec = importlib.util.spec_from_file_location("regen_golden", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("regen_golden", module)
    spec.loader.exec_module(module)
    return module


regen = _load_regen()


def _examples() -> list[Any]:
    params = [pytest.param(name, path, id=name) for name, path in regen.seed_example_files().items()]
    if SHARED_EXAMPLES.is_dir():
        params += [pytest.param(name, path, id=name) for name, path in regen.shared_example_files().items()]
    else:
        params.append(pytest.param("shared_examples", None, id="shared_examples",
                                   marks=pytest.mark.skip(reason=f"{SHARED_EXAMPLES.resolve()} is absent: the shared "
                                                                 "examples are tested in place only when present")))
    return params


EXAMPLES = _examples()
_cache: dict[str, WorkflowSpec] = {}


def compiled(name: str, path: Path) -> WorkflowSpec:
    if name not in _cache:
        workflow = regen.load_workflow(path)
        assert isinstance(workflow, wf.Workflow), f"{path}: module-level 'workflow' is not a wf.Workflow"
        _cache[name] = workflow.compile()
    return _cache[name]


def test_shared_examples_path_is_the_repo_sibling() -> None:
    assert regen.SHARED_EXAMPLES_DIR.resolve() == SHARED_EXAMPLES.resolve()


def test_there_are_seed_examples() -> None:
    assert len(regen.seed_example_files()) >= 13


@pytest.mark.parametrize("name, path", EXAMPLES)
def test_example_compiles_and_validates(name: str, path: Path) -> None:
    spec = compiled(name, path)
    assert spec_problems(spec) == []
    assert validate_spec(spec) is spec
    assert spec.source_dir == str(path.resolve().parent), "relative paths resolve against the example's folder"


@pytest.mark.parametrize("name, path", EXAMPLES)
def test_example_matches_golden_spec(name: str, path: Path) -> None:
    golden = regen.golden_path(name)
    assert golden.exists(), f"no golden spec {golden.relative_to(REPO)}; run `{REGEN}` and review the new file"
    expected = json.loads(golden.read_text(encoding="utf-8"))
    actual = regen.golden_data(compiled(name, path))
    if actual != expected:
        changed = sorted(k for k in set(actual) | set(expected) if actual.get(k) != expected.get(k))
        pytest.fail(f"{name}: the compiled spec differs from {golden.relative_to(REPO)} in {changed}.\n"
                    f"If the change is intended, run `{REGEN}` and review the diff of tests/golden/.")
    assert golden.read_text(encoding="utf-8") == regen.golden_text(expected), (
        f"{golden.name} is not in canonical form (sorted keys, indent 2); run `{REGEN}`")


@pytest.mark.parametrize("name, path", EXAMPLES)
def test_golden_spec_round_trips_losslessly(name: str, path: Path) -> None:
    golden = regen.golden_path(name)
    if not golden.exists():
        pytest.skip(f"no golden file yet ({REGEN})")
    data = json.loads(golden.read_text(encoding="utf-8"))
    loaded = load_spec(golden.read_text(encoding="utf-8"))
    assert regen.golden_data(loaded) == data
    assert load_spec(data) == loaded
    assert load_spec(golden) == loaded  # a Path loads too


@pytest.mark.parametrize("name, path", EXAMPLES)
def test_compiled_spec_round_trips_losslessly(name: str, path: Path) -> None:
    spec = compiled(name, path)
    again = load_spec(json.loads(json.dumps(dump_spec(spec))))
    assert again == spec
    assert dump_spec(again) == dump_spec(spec)


@pytest.mark.parametrize("name, path", EXAMPLES)
def test_compiling_twice_gives_the_same_spec(name: str, path: Path) -> None:
    assert regen.golden_data(regen.load_workflow(path).compile()) == regen.golden_data(compiled(name, path))


def test_no_stale_golden_files() -> None:
    known = {regen.golden_path(name).name for name in regen.seed_example_files()}
    known |= {regen.golden_path(name).name for name in regen.shared_example_files()}
    stale = [p.name for p in regen.GOLDEN_DIR.glob("*.spec.json")
             if p.name not in known and (SHARED_EXAMPLES.is_dir() or not p.name.startswith(regen.SHARED_PREFIX))]
    assert not stale, f"golden files without an example: {stale} (delete them, or restore the example)"


def test_regen_check_mode_reports_no_difference(capsys: pytest.CaptureFixture[str]) -> None:
    assert regen.main(["--check"]) == 0, capsys.readouterr().out
