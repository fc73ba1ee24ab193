#!/usr/bin/env python
"""Regenerate the golden specs in ``tests/golden/<name>.spec.json``.

Every example workflow is compiled with ``workflow.compile()`` and written as JSON (sorted
keys, indent 2). ``source_dir`` is left out: it is the folder of the example file, which
differs from one checkout to the next.

Examples compiled:

* ``tests/seed_examples/seed*.py`` that define a module-level ``workflow``
  (golden name: the file stem, e.g. ``seed002_03_skip_by_parameter``);
* ``<repo>/../shared/examples/*.py`` when that folder exists
  (golden name: ``shared_<stem>``).

Usage::

    python scripts/regen_golden.py           # rewrite every golden file
    python scripts/regen_golden.py --check   # exit 1 if any golden file is missing or differs

Run it after a deliberate change to the spec format or to an example, then review the
diff of ``tests/golden/`` before committing it. ``tests/unit/test_sdk_golden.py`` imports
the helpers below, so the tests and this script agree on what a golden file is.
"""

from __future__ import annotations

import argparse
import ast
import json
import runpy
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SEED_DIR = REPO / "tests" / "seed_examples"
SHARED_EXAMPLES_DIR = REPO.parent / "shared" / "examples"
GOLDEN_DIR = REPO / "tests" / "golden"
SHARED_PREFIX = "shared_"


def defines_workflow(path: Path) -> bool:
    """True when the file assigns a module-level name ``workflow``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "workflow" for t in targets):
            return True
    return False


def seed_example_files() -> dict[str, Path]:
    """Reconstructed seed examples that build a workflow, by golden name."""
    return {p.stem: p for p in sorted(SEED_DIR.glob("seed*.py")) if defines_workflow(p)}


def shared_example_files() -> dict[str, Path]:
    """The shared examples (empty when the folder is absent), by golden name."""
    if not SHARED_EXAMPLES_DIR.is_dir():
        return {}
    return {SHARED_PREFIX + p.stem: p for p in sorted(SHARED_EXAMPLES_DIR.glob("*.py"))}


def example_files() -> dict[str, Path]:
    return {**seed_example_files(), **shared_example_files()}


def load_workflow(path: Path) -> Any:
    """Run an example file and return its module-level ``workflow``."""
    namespace = runpy.run_path(str(path), run_name=f"mloop_example_{path.stem}")
    if "workflow" not in namespace:
        raise LookupError(f"{path} defines no module-level 'workflow'")
    return namespace["workflow"]


def golden_data(spec: Any) -> dict[str, Any]:
    """The golden form of a spec: its JSON dump without the machine-dependent ``source_dir``."""
    from mloop.spec import dump_spec

    data = dump_spec(spec)
    data.pop("source_dir", None)
    return data


def golden_text(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def golden_path(name: str) -> Path:
    return GOLDEN_DIR / f"{name}.spec.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on any difference")
    args = parser.parse_args(argv)

    examples = example_files()
    if not SHARED_EXAMPLES_DIR.is_dir():
        print(f"note: {SHARED_EXAMPLES_DIR} is absent; shared examples skipped", file=sys.stderr)
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    differing = []
    for name, path in examples.items():
        text = golden_text(golden_data(load_workflow(path).compile()))
        target = golden_path(name)
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        differing.append(name)
        if args.check:
            print(f"differs: {target.relative_to(REPO)}")
        else:
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target.relative_to(REPO)}")
    known = {golden_path(name).name for name in examples}
    for stale in sorted(GOLDEN_DIR.glob("*.spec.json")):
        if stale.name not in known and (SHARED_EXAMPLES_DIR.is_dir() or not stale.name.startswith(SHARED_PREFIX)):
            print(f"stale (no example builds it; delete it if that is intended): {stale.relative_to(REPO)}")
    print(f"{len(examples)} examples, {len(differing)} golden file(s) {'differ' if args.check else 'updated'}")
    return 1 if args.check and differing else 0


if __name__ == "__main__":
    sys.exit(main())
