"""Every ``mloop`` command pays for what its start-up imports: guard the structure that keeps it
small (what is imported), not the time (which depends on the machine).

Each check runs in a fresh interpreter, so modules other tests imported don't count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

#: Never needed to start a command that doesn't use them.
HEAVY = ["torch", "fastapi", "uvicorn", "numpy", "PIL", "pydantic_settings", "alembic"]


def _modules_after(code: str, tmp_path: Path, argv: list[str] | None = None) -> set[str]:
    """The names in ``sys.modules`` once ``code`` has run in a fresh interpreter."""
    script = textwrap.dedent(code) + textwrap.dedent("""
        import json as _json, sys as _sys
        _sys.__stdout__.write("\\nMODULES " + _json.dumps(sorted(_sys.modules)) + "\\n")
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_")}
    env["MLOOP_HOME"] = str(tmp_path / ".mloop")
    proc = subprocess.run([sys.executable, "-c", script, *(argv or [])], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("MODULES "))
    return set(json.loads(line[len("MODULES "):]))


def _run_cli(args: list[str]) -> str:
    """Code that runs ``mloop ARGS`` through ``mloop.cli.main`` and swallows its exit."""
    return f"""
        import sys
        sys.argv = ["mloop", *{args!r}]
        from mloop.cli import main
        try:
            main()
        except SystemExit as exc:
            assert not exc.code, exc.code
    """


def _loaded(modules: set[str], names: list[str]) -> list[str]:
    return [n for n in names if n in modules or any(m.startswith(n + ".") for m in modules)]


def test_importing_the_cli_loads_no_store_engine_or_pydantic(tmp_path: Path) -> None:
    modules = _modules_after("import mloop.cli", tmp_path)
    assert "typer" in modules  # the check sees what was imported
    assert _loaded(modules, ["sqlalchemy", "pydantic", "mloop.store", "mloop.services", "mloop.runs", "mloop.engine",
                             "mloop.spec", "mloop.artifacts", "fsspec", *HEAVY]) == []


def test_help_loads_no_store_or_pydantic(tmp_path: Path) -> None:
    modules = _modules_after(_run_cli(["--help"]), tmp_path)
    assert _loaded(modules, ["sqlalchemy", "pydantic", "mloop.store", "mloop.engine", *HEAVY]) == []


@pytest.fixture(scope="module")
def home_with_schema(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose ``.mloop`` database exists: only a command's first open creates the schema."""
    folder = tmp_path_factory.mktemp("startup")
    _modules_after("from mloop.config import Settings\nfrom mloop.runs import open_backend\n"
                   "open_backend(Settings()).close()", folder)
    return folder


def test_open_backend_loads_neither_engine_nor_spec_nor_artifacts(home_with_schema: Path) -> None:
    modules = _modules_after("""
        from mloop.config import Settings
        from mloop.runs import open_backend
        with open_backend(Settings()) as backend:
            backend.store.list_runs()
    """, home_with_schema)
    assert "sqlalchemy.orm" in modules and "mloop.store" in modules
    assert _loaded(modules, ["mloop.engine", "mloop.spec", "mloop.artifacts", "fsspec", "filelock", "psutil",
                             *HEAVY]) == []


def test_artifact_store_is_made_on_first_use(tmp_path: Path) -> None:
    from mloop.artifacts import ArtifactStore
    from mloop.config import Settings
    from mloop.runs import open_backend

    with open_backend(Settings(home=tmp_path / ".mloop")) as backend:
        assert backend._artifacts is None
        store = backend.artifacts
        assert isinstance(store, ArtifactStore) and backend.artifacts is store
        assert store.root == str((tmp_path / ".mloop" / "artifacts").resolve())


def test_runs_exports_load_on_use(tmp_path: Path) -> None:
    modules = _modules_after("""
        import mloop.runs as runs
        assert "mloop.runs.service" not in __import__("sys").modules
        assert callable(runs.create_run) and callable(runs.open_backend)
        from mloop.runs import RunResult, execute_run
        assert sorted(runs.__all__) == sorted(n for n in runs.__all__ if hasattr(runs, n))
    """, tmp_path)
    assert "mloop.runs.service" in modules and "mloop.engine.engine" in modules


def test_unknown_runs_name_is_an_attribute_error() -> None:
    import mloop.runs as runs

    with pytest.raises(AttributeError, match="no_such_function"):
        runs.no_such_function  # noqa: B018


@pytest.mark.parametrize("args", [["dataset", "list"], ["algorithm", "list"]])
def test_store_commands_load_no_engine(home_with_schema: Path, args: list[str]) -> None:
    modules = _modules_after(_run_cli(args), home_with_schema)
    assert "sqlalchemy.orm" in modules
    assert _loaded(modules, ["mloop.engine", *HEAVY]) == []


def test_cli_prunes_to_the_named_group_only() -> None:
    from mloop.cli import _app_for, app

    assert _app_for([]) is app and _app_for(["--help"]) is app and _app_for(["datset", "list"]) is app
    pruned = _app_for(["dataset", "list"])
    assert [g.name for g in pruned.registered_groups] == ["dataset"] and pruned.registered_commands == []
    assert pruned.registered_callback is app.registered_callback
    single = _app_for(["input", "abc", "x=1"])
    assert [c.name for c in single.registered_commands] == ["input"] and single.registered_groups == []
    assert [c.callback.__name__ for c in _app_for(["runs"]).registered_commands] == ["runs"]
    assert len(app.registered_groups) > 1  # the shared app is left whole


@pytest.mark.parametrize("args, expected", [
    (["datset", "list"], "No such command 'datset'. Did you mean 'dataset'?"),
    (["dataset", "lst"], "No such command 'lst'. Did you mean 'list'?"),
    (["runs", "-n", "x"], "Invalid value for '-n' / '--limit'"),
])
def test_cli_usage_errors_still_name_the_commands(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                  args: list[str], expected: str) -> None:
    from mloop.cli import main

    monkeypatch.setattr(sys, "argv", ["mloop", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    assert expected in capsys.readouterr().err
