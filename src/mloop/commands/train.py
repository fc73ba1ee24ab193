"""``mloop train MODULE``: a self-contained training module as a one-step workflow.

The train-classifier convention (seed 001): a folder ``MODULE/`` with ``__main__.py``, its own
``requirements.txt`` and ``apt-pkgs.txt``, that writes its results to ``artefacts/``. mloop runs
it as one JobStep through the same run service as ``mloop run`` (recorded, retryable, its log
followed), in its own per-job environment (:mod:`mloop.runner.envs`), on the flavor asked for,
and archives ``artefacts/`` as ``artefacts.tar.gz``: the step's ``artefacts`` output, copied to
``--archive`` (default ``./artefacts.tar.gz``, where the seed's CI uploads it from).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Optional

import typer

from mloop.commands._common import err, open_cli_backend, out, parse_pairs
from mloop.errors import BadArgumentError


def build_workflow(module_dir: Path, flavor: str, params: dict[str, str], output_root: Path) -> Any:
    """The one-step workflow of a module: ``python -m mloop.runner.module NAME`` on a snapshot
    of the module's folder, one output ``artefacts`` under ``output_root/<run id>/``."""
    from mloop import workflow as wf

    name = module_dir.name
    storage = wf.data.OutputStorage(name="train_output", default=str(output_root) + "/")
    algorithm = wf.BaseAlgorithm(code_dir=str(module_dir), command=f"python -m mloop.runner.module {name}",
                                 parameters=[wf.AlgorithmParameters(name=k, value=v) for k, v in params.items()])
    step = wf.steps.JobStep(
        name="train", title=f"train {name}", algorithm=algorithm,
        outputs=[wf.steps.JobOutput(name="artefacts",
                                    obs_config=wf.data.OBSOutputConfig(obs_path=storage.join("artefacts/")))],
        spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": flavor})))
    return wf.Workflow(name=f"train-{name}", desc=f"mloop train {name}", steps=[step])


def check_module(module: str) -> Path:
    """The module's folder, refused unless it is a package folder with a ``__main__.py``."""
    folder = Path(module).expanduser().resolve()
    if not (folder / "__main__.py").is_file():
        raise BadArgumentError(f"{module} is not a module folder with a __main__.py",
                               hint="give the folder of a self-contained module: MODULE/__main__.py, "
                                    "MODULE/requirements.txt, MODULE/apt-pkgs.txt")
    if not folder.name.isidentifier():
        raise BadArgumentError(f"{folder.name!r} is not a Python module name",
                               hint="rename the folder to letters, digits and '_' (it is run as python -m NAME)")
    return folder


def train(module: str = typer.Argument(..., metavar="MODULE", help="the module's folder (MODULE/__main__.py)"),
          flavor: str = typer.Option("cpu.small", "--flavor", help="resource flavor id, e.g. gpu.1 for a GPU "
                                     "(mloop.toml's flavors table)"),
          param: Optional[list[str]] = typer.Option(None, "-p", "--param", help="NAME=VALUE, passed to the "
                                                    "module as --NAME=VALUE (repeatable)"),
          archive: str = typer.Option("artefacts.tar.gz", "--archive", help="where to copy artefacts.tar.gz "
                                      "('' to leave it in the artifact store only)"),
          as_json: bool = typer.Option(False, "--json", help="print the run id, status and archive as JSON")) -> None:
    """Run a self-contained module (MODULE/__main__.py with its requirements.txt) as a one-step
    workflow in its own environment; archive what it wrote to artefacts/ as artefacts.tar.gz."""
    from mloop.artifacts import local_path
    from mloop.config import Settings
    from mloop.console import Watcher
    from mloop.runs import raise_for_result, start_run

    folder = check_module(module)
    values = parse_pairs(param, "--param")
    settings = Settings()
    workflow = build_workflow(folder, flavor, values, settings.home_path / "train" / folder.name)
    with open_cli_backend(settings) as backend:
        result = start_run(backend, workflow.compile(), {}, base_dir=os.getcwd(),
                           watch=Watcher(err if as_json else out, quiet=as_json))
        step = next((s for s in backend.store.list_steps(result.run.id) if s.name == "train"), None)
    produced = ((step.outputs or {}).get("artefacts") or {}) if step is not None else {}
    url = produced.get("url")
    stored = os.path.join(local_path(url) or url, "artefacts.tar.gz") if url else None
    copied = None
    if result.run.status == "succeeded" and stored and archive:
        copied = os.path.abspath(archive)
        if os.path.abspath(stored) != copied:
            shutil.copyfile(stored, copied)
    if as_json:
        out.print_json(json.dumps({"run_id": result.run.id, "status": result.run.status, "archive": copied,
                                   "output": stored, "environment": step.environment if step else None}))
    elif result.run.status == "succeeded":
        out.print(f"artefacts: {copied or stored}", highlight=False, markup=False)
    raise_for_result(result)
