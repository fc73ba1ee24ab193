"""The spec is the only contract: the run side never imports the SDK (STYLE section 1).

Nothing under ``src/mloop/{engine,executors,store,steps,server}`` may import
``mloop.workflow``: those packages receive a compiled spec, never user Python objects.
The check reads every ``.py`` file's import statements with ``ast`` (absolute, relative,
and ``importlib.import_module``/``__import__`` calls with a literal name). Folders that do
not exist yet are walked too; they simply contribute no files.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
RUN_SIDE = ("engine", "executors", "store", "steps", "server")
FORBIDDEN = "mloop.workflow"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    this = module_name(path, root)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]  # from mloop import workflow
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ("import_module", "__import__"):
                found.append((node.lineno, node.args[0].value))
    return found


def violations(root: Path, packages: tuple[str, ...]) -> tuple[list[Path], list[str]]:
    """(files walked, 'file:line imports module' for each forbidden import)."""
    files: list[Path] = []
    for package in packages:
        files += sorted((root / "mloop" / package).rglob("*.py"))
    bad = [f"{path.relative_to(root)}:{line} imports {module}"
           for path in files for line, module in imported_modules(path, root)
           if module == FORBIDDEN or module.startswith(FORBIDDEN + ".")]
    return files, bad


def test_run_side_does_not_import_the_sdk() -> None:
    files, bad = violations(SRC, RUN_SIDE)
    assert not bad, "the run side must receive specs, not SDK objects:\n" + "\n".join(bad)
    for path in files:
        assert path.is_file()


@pytest.mark.parametrize("source, expected", [
    ("import mloop.workflow\n", True),
    ("import mloop.workflow.data as d\n", True),
    ("from mloop import workflow\n", True),
    ("from mloop import workflow as wf\n", True),
    ("from mloop.workflow.core import Workflow\n", True),
    ("from ..workflow import steps\n", True),
    ("from .. import workflow\n", True),
    ("import importlib\nimportlib.import_module('mloop.workflow')\n", True),
    ("__import__('mloop.workflow.data')\n", True),
    ("def f():\n    from mloop.workflow import Placeholder\n", True),
    ("from mloop.spec import load_spec\nimport mloop.workflowish\n", False),
    ("from mloop import spec, errors\nfrom ..spec import refs\nfrom . import rules\n", False),
])
def test_walker_detects_every_import_form(tmp_path: Path, source: str, expected: bool) -> None:
    engine = tmp_path / "mloop" / "engine"
    engine.mkdir(parents=True)
    (tmp_path / "mloop" / "__init__.py").write_text("")
    (engine / "__init__.py").write_text("")
    (engine / "module.py").write_text(source)
    files, bad = violations(tmp_path, ("engine", "absent_package"))
    assert len(files) == 2
    assert bool(bad) is expected, bad


def test_walker_resolves_relative_imports_in_packages(tmp_path: Path) -> None:
    pkg = tmp_path / "mloop" / "steps"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("from ..workflow import data\n")
    assert violations(tmp_path, ("steps",))[1] == ["mloop/steps/__init__.py:1 imports mloop.workflow",
                                                    "mloop/steps/__init__.py:1 imports mloop.workflow.data"]
