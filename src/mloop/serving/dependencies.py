"""``config.json``'s ``dependencies``: ModelArts' per-model pip packages, checked before loading.

ModelArts installs the packages a model's ``config.json`` lists before it starts the service::

    {"dependencies": [{"installer": "pip", "packages": [
        {"package_name": "scikit-learn", "package_version": "1.3.0", "restraint": "ATLEAST"}]}]}

mloop does not build a per-service environment (yet): the server checks every listed package
against the distributions installed in the serving process's interpreter (``importlib.metadata``)
and the version restraint (``EXACT`` ``==``, ``ATLEAST`` ``>=``, ``ATMOST`` ``<=``; no version:
any). When one is missing or of the wrong version, the model is not loaded and the error names
each such package with the ``pip install`` that fixes it. Nothing listed is ever ignored: an
unknown installer or restraint, or a malformed entry, refuses the load as well.
"""

from __future__ import annotations

import importlib.metadata
import re
import shlex
import sys
from typing import Any

from mloop.errors import ModelLoadError

RESTRAINTS = {"EXACT": "==", "ATLEAST": ">=", "ATMOST": "<="}


def _parse(version: str) -> Any:
    try:
        from packaging.version import Version

        return Version(version)
    except ImportError:  # packaging is not a dependency of mloop; compare the release numbers
        return tuple(int(n) for n in re.findall(r"\d+", version.split("+")[0])[:6])
    except Exception:  # noqa: BLE001 - packaging.version.InvalidVersion
        return tuple(int(n) for n in re.findall(r"\d+", version.split("+")[0])[:6])


def _satisfies(installed: str, op: str, wanted: str) -> bool:
    have, want = _parse(installed), _parse(wanted)
    if type(have) is not type(want):  # one parsed by packaging, the other not: compare numbers
        have = tuple(int(n) for n in re.findall(r"\d+", installed)[:6])
        want = tuple(int(n) for n in re.findall(r"\d+", wanted)[:6])
    if op == "==":
        return bool(have == want)
    if op == ">=":
        return bool(have >= want)
    return bool(have <= want)


def unmet_dependencies(config: dict[str, Any]) -> list[str]:
    """One line per listed package this interpreter does not satisfy (``[]``: all are met).

    Each line names the package, what is wanted, what is installed, and the ``pip install``
    command that fixes it; a malformed entry gets a line saying what is wrong with it.
    """
    deps = config.get("dependencies")
    if deps is None:
        return []
    if not isinstance(deps, list):
        return [f"'dependencies' must be a list of {{\"installer\": \"pip\", \"packages\": [...]}}, "
                f"found {type(deps).__name__}"]
    problems: list[str] = []
    for group in deps:
        if not isinstance(group, dict):
            problems.append(f"dependencies entry {group!r} is not an object")
            continue
        installer = str(group.get("installer", "pip")).lower()
        packages = group.get("packages") or []
        if installer != "pip":
            names = ", ".join(str(p.get("package_name")) for p in packages if isinstance(p, dict))
            problems.append(f"installer {group.get('installer')!r} is not supported ({names or 'no packages'}): "
                            f"mloop checks pip packages only; install them into the serving environment")
            continue
        if not isinstance(packages, list):
            problems.append(f"'packages' must be a list, found {type(packages).__name__}")
            continue
        for pkg in packages:
            name = pkg.get("package_name") if isinstance(pkg, dict) else None
            if not isinstance(name, str) or not name.strip():
                problems.append(f"package entry {pkg!r} has no package_name")
                continue
            name = name.strip()
            version = pkg.get("package_version")
            version = str(version).strip() if version not in (None, "") else None
            restraint = str(pkg.get("restraint") or ("EXACT" if version else "")).upper()
            if version and restraint not in RESTRAINTS:
                problems.append(f"{name}: restraint {pkg.get('restraint')!r} is not one of "
                                f"{', '.join(RESTRAINTS)}")
                continue
            spec = f"{name}{RESTRAINTS[restraint]}{version}" if version else name
            fix = f"pip install {shlex.quote(spec)}"
            try:
                installed = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                problems.append(f"{spec}: not installed (fix: {fix})")
                continue
            if version and not _satisfies(installed, RESTRAINTS[restraint], version):
                problems.append(f"{spec}: {installed} is installed (fix: {fix})")
    return problems


def check_dependencies(config: dict[str, Any], where: str = "config.json") -> None:
    """Refuse a model whose ``config.json`` lists packages this interpreter does not satisfy.

    Raises:
        ModelLoadError: naming each missing or mismatched package and the ``pip install`` for it.
    """
    problems = unmet_dependencies(config)
    if not problems:
        return
    raise ModelLoadError(
        f"{where}: 'dependencies' not satisfied by the serving environment ({sys.executable}): "
        + "; ".join(problems),
        hint="mloop does not install a model's dependencies: install them into the environment that "
             "serves the model (the commands above), or remove them from config.json",
        unmet=problems)


__all__ = ["RESTRAINTS", "check_dependencies", "unmet_dependencies"]
