"""The layering of ``src/mloop``, read from its imports (ast), so it stays as designed.

The run path reads top to bottom (see docs/architecture.md): doors (CLI, SDK verbs, REST API)
-> run service (mloop.runs) -> engine (mloop.engine; the handler interface lives there) <-
step handlers (mloop.steps, which plug into it) -> domain operations (mloop.services) ->
executors, stores and the artifact store. This test fails on a cycle between top-level
packages and on each edge the layering forbids; the failure names the importing module.

Imports under ``if TYPE_CHECKING:`` are annotations, not dependencies, and don't count.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "mloop"

FOUNDATION = {"errors", "durations", "config", "spec", "store", "artifacts", "context", "metrics", "datasets", "registry"}

#: (importers, imported, why). Names are top-level packages or modules of mloop.
FORBIDDEN: list[tuple[set[str], set[str], str]] = [
    (FOUNDATION | {"engine", "executors", "runner", "serving", "services", "steps"}, {"runs"},
     "only doors start or read runs through the run service; nothing below it calls back up"),
    (FOUNDATION | {"engine", "executors", "runner", "serving"}, {"services"},
     "domain operations sit below the handlers; the engine, executors and stores don't call them"),
    (FOUNDATION | {"executors", "runner", "serving", "services"}, {"engine", "steps"},
     "below the engine nothing knows about runs or handlers"),
    ({"engine"}, {"steps"}, "the engine is kind-blind: handlers register with it, it never imports them"),
    (FOUNDATION | {"engine", "executors", "runner", "steps", "services", "serving", "runs", "server"}, {"workflow"},
     "only specs cross from the SDK into the rest (STYLE 1)"),
    (FOUNDATION | {"engine", "executors", "runner"}, {"cli", "commands", "console", "server", "ci"},
     "nothing below the doors imports a door"),
    ({"ci"}, {"cli", "console"}, "the GitHub Action is a door of its own: run service and client, no terminal"),
]
#: The terminal renderer is imported only by these modules (the CLI and the SDK's verbs).
RENDERER_USERS = ("mloop.cli", "mloop.commands.", "mloop.workflow.core")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _imports() -> dict[str, set[str]]:
    """module -> the mloop modules it imports (outside TYPE_CHECKING blocks)."""
    out: dict[str, set[str]] = defaultdict(set)
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                       and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                out[module].update(a.name for a in node.names if a.name.split(".")[0] == "mloop")
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                    and node.module.split(".")[0] == "mloop":
                out[module].add(node.module)
                for alias in node.names:  # from mloop import runs -> mloop.runs (a module, not a name)
                    sub = SRC.joinpath(*f"{node.module}.{alias.name}".split("."))
                    if sub.with_suffix(".py").is_file() or (sub / "__init__.py").is_file():
                        out[module].add(f"{node.module}.{alias.name}")
                out[module].discard("mloop")
    return out


IMPORTS = _imports()


def test_the_reader_sees_the_imports() -> None:
    assert "mloop.engine.transitions" in IMPORTS["mloop.engine.engine"]
    assert "mloop.runs" in IMPORTS["mloop.workflow.core"]  # from mloop import runs (in a function)


def test_no_cycle_between_top_level_packages() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, targets in IMPORTS.items():
        for target in targets:
            if _top(target) != _top(module):
                graph[_top(module)].add(_top(target))
    seen: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if seen.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle between packages: " + " -> ".join(cycle))
            if nxt not in seen:
                visit(nxt)
        stack.pop()
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node)


@pytest.mark.parametrize("importers, imported, why", FORBIDDEN, ids=[", ".join(sorted(f[1])) for f in FORBIDDEN])
def test_no_upward_edge(importers: set[str], imported: set[str], why: str) -> None:
    bad = sorted(f"{module} imports {target}" for module, targets in IMPORTS.items() for target in targets
                 if _top(module) in importers and _top(target) in imported)
    assert not bad, f"{why}:\n  " + "\n  ".join(bad)


def test_only_doors_import_the_terminal_renderer() -> None:
    bad = sorted(module for module, targets in IMPORTS.items()
                 if "mloop.console" in targets and not module.startswith(RENDERER_USERS))
    assert not bad, f"only the CLI and the SDK verbs render to a terminal; these import mloop.console: {bad}"


def test_every_package_says_its_layer() -> None:
    missing = []
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        if "Layer:" not in doc:
            missing.append(_module_name(init))
    assert not missing, f"say which layer each package is in its docstring ('Layer: ...'): {missing}"


def test_statuses_are_written_only_through_the_transitions_module() -> None:
    """Every run and step status change goes through mloop.engine.transitions (which checks it
    against the tables); only the store's own implementation calls the raw writers."""
    writers = {"transition_run", "transition_step", "transition_steps"}
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        if module == "mloop.engine.transitions" or module.startswith("mloop.store"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in writers:
                bad.append(f"{module}:{node.lineno} calls .{node.func.attr}()")
    assert not bad, "write statuses with mloop.engine.transitions.run/step/steps:\n  " + "\n  ".join(bad)
