"""Run a self-contained training module, train-classifier style (``mloop train MODULE``).

``python -m mloop.runner.module NAME [--artefacts=OUT] [--param=value ...]`` in the job's code
folder ``<job>/NAME`` (the module's own folder, snapshot as every job's code is):

* runs the package ``NAME`` as ``python -m NAME`` would from the folder above it: ``<job>`` is
  the working folder and first on ``sys.path``, so ``from NAME.train import main`` works and
  both ways modules write their results land in ``<job>/artefacts/``: ``artefacts/`` relative
  to the working folder, and ``Path(__file__).parent.parent / "artefacts"`` (seed 001's
  ``copy_tree(..., "../artefacts")``). ``<job>/NAME/artefacts/`` is taken too;
* hands the module the job's parameters as ``--name=value`` (the ``artefacts`` output's
  argument is mloop's, not the module's, and is left out);
* once the module succeeded, archives ``artefacts/`` as ``OUT/artefacts.tar.gz`` (the step's
  ``artefacts`` output).

It runs with the job's interpreter (its per-job environment's, where it has one: mloop is
importable there, see :func:`mloop.runner.envs.link_mloop`). Standard library only.
"""

import os
import sys

ARCHIVE = "artefacts.tar.gz"
OUTPUT = "artefacts"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        sys.stderr.write("usage: python -m mloop.runner.module NAME [--artefacts=DIR] [--name=value ...]\n")
        return 2
    name, rest = args[0], args[1:]
    out = os.environ.get(f"MLOOP_OUTPUT_{OUTPUT.upper()}")
    passed = []
    for arg in rest:
        if arg.startswith(f"--{OUTPUT}="):
            out = arg.split("=", 1)[1]
        else:
            passed.append(arg)
    code = os.getcwd()
    top = os.path.dirname(code)
    os.chdir(top)
    sys.path.insert(0, top)
    sys.argv = [os.path.join(code, "__main__.py"), *passed]
    import runpy

    try:
        runpy.run_module(name, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise
    sys.stdout.flush()
    if out:
        archive(name, top, out)
    return 0


def archive(name: str, top: str, out: str) -> str:
    """``OUT/artefacts.tar.gz`` of ``<top>/artefacts/`` and ``<top>/NAME/artefacts/`` (as
    ``artefacts/...``); empty, with a warning, when the module wrote none."""
    import tarfile

    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, ARCHIVE)
    count = 0
    with tarfile.open(path + ".tmp", "w:gz") as tar:
        for folder in (os.path.join(top, "artefacts"), os.path.join(top, name, "artefacts")):
            if not os.path.isdir(folder):
                continue
            for dirpath, dirnames, files in os.walk(folder):
                dirnames.sort()
                for f in sorted(files):
                    full = os.path.join(dirpath, f)
                    tar.add(full, arcname=os.path.join("artefacts", os.path.relpath(full, folder)))
                    count += 1
    os.replace(path + ".tmp", path)
    if count:
        print(f"mloop: archived {count} file(s) of artefacts/ as {path}", flush=True)
    else:
        sys.stderr.write(f"mloop: warning: the module wrote nothing to artefacts/; {path} is empty\n")
    return path


if __name__ == "__main__":
    sys.exit(main())
