"""Loading a workflow file: run a Python file that defines a Workflow and compile it to a spec.

Used by the CLI (``mloop run flow.py``) and by the team server's git-push triggers, which load
the workflow file of a pushed commit. Loads are serialised in a process (they set
``core.LOADING_ONLY`` and ``sys.path``), and modules a file imports from its own folder are
forgotten afterwards with ``forget_local_modules``, so a later commit's file imports its own.
"""

from __future__ import annotations

import os
import runpy
import sys
import threading
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from mloop.errors import MloopError, NotFoundError

if TYPE_CHECKING:
    from mloop.spec.models import WorkflowSpec

__all__ = ["load_workflow_file"]

_LOCK = threading.RLock()


def load_workflow_file(path: str | os.PathLike[str], variable: str = "", *,
                       forget_local_modules: bool = False) -> WorkflowSpec:
    """The spec of the Workflow that the Python file ``path`` defines.

    Args:
        path: the Python file.
        variable: the module-level name of the Workflow when the file defines several.
        forget_local_modules: drop from ``sys.modules`` what the file imported from its own
            folder (a long-running server loads many versions of the same files).

    Raises:
        NotFoundError: no such file, or no (such) Workflow in it.
        MloopError: the file raised or exited while loading, or defines several workflows.
    """
    from mloop.workflow import Workflow, core

    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"no such file: {path}", hint="give a Python file that defines a Workflow")
    folder = path.resolve().parent
    with _LOCK:
        before = set(sys.modules)
        sys.path.insert(0, str(folder))
        core.LOADING_ONLY = True
        try:
            namespace = runpy.run_path(str(path), run_name="__mloop__")
        except MloopError:
            raise
        except SystemExit as exc:
            raise MloopError(f"{path} exited while loading (SystemExit {exc.code})",
                             hint="keep module-level code free of sys.exit; guard scripts with if __name__ == '__main__'") from exc
        except Exception as exc:
            tb = "".join(traceback.format_exception(exc)[-6:])
            raise MloopError(f"{path} raised {type(exc).__name__} while loading:\n{tb.rstrip()}") from exc
        finally:
            core.LOADING_ONLY = False
            try:
                sys.path.remove(str(folder))
            except ValueError:
                pass
            if forget_local_modules:
                _forget_modules_under(folder, set(sys.modules) - before)
    if variable:
        found = namespace.get(variable)
        if not isinstance(found, Workflow):
            raise NotFoundError(f"{path} has no Workflow named {variable!r}")
        return found.compile()
    flows = {k: v for k, v in namespace.items() if isinstance(v, Workflow) and not k.startswith("_")}
    if "workflow" in flows:
        return flows["workflow"].compile()
    if len(flows) == 1:
        return next(iter(flows.values())).compile()
    if not flows:
        raise NotFoundError(f"{path} defines no module-level Workflow", hint="assign it: workflow = wf.Workflow(...)")
    raise MloopError(f"{path} defines several workflows: {', '.join(flows)}", hint=f"pick one: {path}:NAME")


def _forget_modules_under(folder: Path, names: set[str]) -> None:
    for name in names:
        module = sys.modules.get(name)
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve().is_relative_to(folder):
            sys.modules.pop(name, None)
