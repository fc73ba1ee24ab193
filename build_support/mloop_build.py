"""mloop's PEP 517 build backend: setuptools', plus the web console's front-end libraries.

``pyproject.toml`` names it (``build-backend = "mloop_build"``, ``backend-path = ["build_support"]``).
Every hook is ``setuptools.build_meta``'s; ``build_wheel``, ``build_editable`` and ``build_sdist``
first run :func:`build_assets`: ``npm ci --prefix frontend`` (the versions of
``frontend/package-lock.json``, from the npm registry) and a copy of the files the console serves
into ``src/mloop/server/web/static/vendor/`` (gitignored; package data, so a wheel carries them).

Without npm on PATH it prints a warning and the package still builds; the console then answers
503 with how to build the assets later::

    python build_support/mloop_build.py          # the same step, by hand
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from setuptools import build_meta as _orig
from setuptools.build_meta import *  # noqa: F401,F403 - every other hook is setuptools'

ROOT = Path(__file__).resolve().parent.parent
FRONTEND = ROOT / "frontend"
VENDOR = ROOT / "src" / "mloop" / "server" / "web" / "static" / "vendor"

#: What the console serves: node_modules path -> name under static/vendor/.
ASSETS = {
    "htmx.org/dist/htmx.min.js": "htmx.min.js",
    "uplot/dist/uPlot.iife.min.js": "uPlot.iife.min.js",
    "uplot/dist/uPlot.min.css": "uPlot.min.css",
    "@dagrejs/dagre/dist/dagre.min.js": "dagre.min.js",
}


def _say(message: str) -> None:
    # pip shows a backend's stderr with -v, and always when the build fails
    print(f"mloop_build: {message}", file=sys.stderr, flush=True)


def assets_present(vendor: Path = VENDOR) -> bool:
    return all((vendor / name).is_file() for name in ASSETS.values())


def build_assets(*, strict: bool = False) -> bool:
    """Install the locked front-end packages and copy the console's files; True when done.

    Without a ``frontend/`` folder (an sdist that already carries the assets) nothing is done.
    Without npm (or when it fails) a warning is printed and False returned, unless ``strict``.
    """
    if not (FRONTEND / "package-lock.json").is_file():
        if assets_present():
            return True
        _say("no frontend/package-lock.json here and no built assets: the web console will answer 503")
        return False
    if os.environ.get("MLOOP_SKIP_ASSETS") == "1" and assets_present():
        return True
    npm = shutil.which("npm")
    if npm is None:
        message = ("WARNING: npm is not on PATH, so the web console's front-end libraries (htmx, uPlot, dagre) "
                   "are not built; the package installs, and the console answers 503 until you install "
                   "Node.js/npm and run `python build_support/mloop_build.py`")
        if strict:
            raise SystemExit(message)
        _say(message)
        return False
    lock = FRONTEND / "package-lock.json"
    stamp = FRONTEND / "node_modules" / ".package-lock.json"
    fresh = stamp.is_file() and stamp.stat().st_mtime >= lock.stat().st_mtime and all(
        (FRONTEND / "node_modules" / src).is_file() for src in ASSETS)
    if not fresh:
        cmd = [npm, "ci", "--prefix", str(FRONTEND), "--no-audit", "--no-fund", "--loglevel=error"]
        _say("running " + " ".join(cmd[1:]))
        done = subprocess.run(cmd, cwd=ROOT, stdout=sys.stderr, stderr=sys.stderr)
        if done.returncode != 0:
            message = f"WARNING: `npm ci --prefix frontend` failed (exit {done.returncode}); the web console answers 503"
            if strict:
                raise SystemExit(message)
            _say(message)
            return False
    VENDOR.mkdir(parents=True, exist_ok=True)
    for src, name in ASSETS.items():
        shutil.copyfile(FRONTEND / "node_modules" / src, VENDOR / name)
    _say(f"copied {len(ASSETS)} front-end files into {VENDOR.relative_to(ROOT)}")
    return True


def build_wheel(wheel_directory: str, config_settings: dict[str, Any] | None = None,
                metadata_directory: str | None = None) -> str:
    build_assets()
    return _orig.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(wheel_directory: str, config_settings: dict[str, Any] | None = None,
                   metadata_directory: str | None = None) -> str:
    build_assets()
    return _orig.build_editable(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory: str, config_settings: dict[str, Any] | None = None) -> str:
    build_assets()
    return _orig.build_sdist(sdist_directory, config_settings)


if __name__ == "__main__":
    sys.exit(0 if build_assets(strict=True) else 1)
