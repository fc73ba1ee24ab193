"""The local algorithm registry: what ``wf.Algorithm(id)`` and ``wf.AIGalleryAlgorithm`` resolve to."""

from __future__ import annotations

from pathlib import Path

from mloop.errors import Problem, SpecValidationError
from mloop.context import Context
from mloop.spec.validate import VERSION_RE, check_name
from mloop.store.base import AlgorithmRecord



def register_algorithm(backend: Context, name: str, code_dir: Path | str, *, boot_file: str | None = None,
                       command: str | None = None, version: str = "1.0.0", algorithm_id: str | None = None,
                       subscription_id: str | None = None, params: list[str] = (), fixed: list[str] = (),
                       inputs: str | None = None, outputs: str | None = None,
                       description: str = "") -> AlgorithmRecord:
    """Register (or replace) ``name`` at ``version``.

    ``params`` are ``NAME=DEFAULT`` strings; ``NAME!`` marks a required parameter with no
    default; ``fixed`` names parameters runs may not change.

    Raises:
        SpecValidationError: every problem with the arguments at once.
    """
    problems = []
    if msg := check_name(name):
        problems.append(Problem("algorithm.name", msg))
    folder = Path(code_dir).expanduser().resolve()
    if not folder.is_dir():
        problems.append(Problem("--code-dir", f"{code_dir} is not a folder"))
    if bool(boot_file) == bool(command):
        problems.append(Problem("algorithm", "give exactly one of --boot-file and --command"))
    elif boot_file and folder.is_dir() and not (folder / boot_file).is_file():
        problems.append(Problem("--boot-file", f"{boot_file} is not a file in {folder}"))
    if not VERSION_RE.fullmatch(version):
        problems.append(Problem("--version", f"version {version!r} must look like 1.0.0"))
    declared = []
    for item in params:
        key, sep, default = item.partition("=")
        required = key.endswith("!")
        key = key.rstrip("!")
        if not key or (not sep and not required):
            problems.append(Problem("--param", f"{item!r} is not NAME=DEFAULT or NAME!"))
            continue
        declared.append({"name": key, "default": default if sep else None, "required": required,
                         "editable": key not in fixed})
    if problems:
        raise SpecValidationError(problems, headline="cannot register the algorithm:")
    record = AlgorithmRecord(
        id=algorithm_id or name, name=name, version=version, subscription_id=subscription_id, code_dir=str(folder),
        boot_file=boot_file, command=command, parameters=declared,
        inputs=[s.strip() for s in (inputs or "").split(",") if s.strip()],
        outputs=[s.strip() for s in (outputs or "").split(",") if s.strip()], description=description)
    return backend.store.register_algorithm(record)


def list_algorithms(backend: Context) -> list[AlgorithmRecord]:
    """Every registered algorithm (``mloop algorithm list``)."""
    return backend.store.list_algorithms()
