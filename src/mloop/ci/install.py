"""The action's install steps, run from the action's source before mloop is installed.

``action.yml`` runs this file's functions with ``PYTHONPATH=<action>/src`` and the Python that
actions/setup-python provides, so it imports nothing but the standard library::

    python -m mloop.ci.install key       # outputs: key, venv (for actions/cache)
    python -m mloop.ci.install install   # a venv with mloop (and the requirements); on PATH

The cache holds a virtual environment, keyed by the runner's OS, the Python version and a
hash of what decides its contents: mloop's ``pyproject.toml`` (its dependencies), the
``install`` input, the client extras and the ``requirements`` file of the workflow's steps.
On a cache hit mloop itself is reinstalled without its dependencies (seconds), so a cached
venv never runs older mloop code than the action's.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

#: Bumped when the cached venv's layout changes, so old caches are not restored.
CACHE_VERSION = "1"
#: What client mode needs beyond the core (the HTTP client).
CLIENT_EXTRAS = ("httpx>=0.27",)


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def _fail(message: str, hint: str) -> int:
    print(f"::error title=mloop action::{message} (hint: {hint})".replace("\n", " "), flush=True)
    return 2


def _output(name: str, value: str) -> None:
    path = _env("GITHUB_OUTPUT")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{name}={value}\n")
    else:
        print(f"output {name}={value}")


def _spec() -> str:
    """What to pip install as mloop: the ``install`` input, else the action's own source."""
    return _env("INPUT_INSTALL") or _env("ACTION_PATH") or str(Path(__file__).resolve().parents[3])


def _requirements() -> Path | None:
    text = _env("INPUT_REQUIREMENTS")
    if not text:
        return None
    workspace = Path(_env("GITHUB_WORKSPACE") or os.getcwd()).resolve()
    path = (workspace / text).resolve()
    if not path.is_relative_to(workspace) or not path.is_file():
        raise FileNotFoundError(f"requirements file {text!r} is not a file in the workspace ({workspace})")
    return path


def venv_dir() -> Path:
    return Path(_env("RUNNER_TEMP") or "/tmp") / "mloop-action-venv"


def cache_key() -> str:
    """``mloop-<OS>-py<version>-<hash>``: the cached venv fits exactly these inputs."""
    digest = hashlib.sha256(CACHE_VERSION.encode())
    spec = _spec()
    digest.update(b"\0install\0" + spec.encode())
    pyproject = Path(spec) / "pyproject.toml"
    if pyproject.is_file():  # a source tree: its dependencies decide the venv
        digest.update(b"\0pyproject\0" + pyproject.read_bytes())
    digest.update(b"\0ref\0" + _env("ACTION_REF").encode())
    digest.update(b"\0client\0" + (b"1" if _env("INPUT_SERVER_URL") else b"0"))
    requirements = _requirements()
    if requirements is not None:
        digest.update(b"\0requirements\0" + requirements.read_bytes())
    version = _env("PYTHON_VERSION") or ".".join(map(str, sys.version_info[:3]))
    return f"mloop-{_env('RUNNER_OS') or sys.platform}-py{version}-{digest.hexdigest()[:24]}"


def _bin(venv: Path) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin")


def _run(args: list[str]) -> None:
    # Not with this step's PYTHONPATH (the action's source): pip builds and installs cleanly.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run(args, check=True, env=env)


def install(cache_hit: bool) -> None:
    """Make the venv (or refresh mloop in a restored one) and put it first on PATH."""
    venv = venv_dir()
    python = _bin(venv) / ("python.exe" if os.name == "nt" else "python")
    spec = _spec()
    if cache_hit and python.exists():
        # Dependencies came from the cache; mloop itself may be newer (a local action, a branch).
        _run([str(python), "-m", "pip", "install", "--no-deps", "--force-reinstall", spec])
    else:
        _run([sys.executable, "-m", "venv", str(venv)])
        extra = list(CLIENT_EXTRAS) if _env("INPUT_SERVER_URL") else []
        requirements = _requirements()
        more = ["-r", str(requirements)] if requirements is not None else []
        _run([str(python), "-m", "pip", "install", "--upgrade", "pip"])
        _run([str(python), "-m", "pip", "install", spec, *extra, *more])
    path_file = _env("GITHUB_PATH")
    if path_file:
        with open(path_file, "a", encoding="utf-8") as fh:
            fh.write(f"{_bin(venv)}\n")


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    try:
        if command == "key":
            _output("key", cache_key())
            _output("venv", str(venv_dir()))
            return 0
        if command == "install":
            install(_env("CACHE_HIT") == "true")
            return 0
    except FileNotFoundError as exc:
        return _fail(str(exc), "give `requirements:` relative to the repository root")
    except subprocess.CalledProcessError as exc:
        return _fail(f"installing mloop failed ({exc.cmd[-1]!r} exited {exc.returncode})",
                     "see pip's output above; check the `install` and `requirements` inputs")
    return _fail(f"unknown command {command!r}", "python -m mloop.ci.install key|install")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
