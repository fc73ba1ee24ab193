"""Loading and dumping specs, with explicit upgrades for older schema versions.

A stored spec must load next year: every spec carries ``schema_version``; older versions
go through the ``UPGRADES`` functions (dict -> dict) one version at a time, and a spec
written by a newer mloop is refused with "upgrade mloop".
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Callable

from pydantic import ValidationError

from mloop.errors import Problem, SpecValidationError, SpecVersionError
from mloop.spec.models import SCHEMA_VERSION, WorkflowSpec
from mloop.spec.validate import validate_spec

#: UPGRADES[n] turns a version-n spec dict into a version-(n+1) spec dict.
UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def upgrade_dict(data: dict[str, Any]) -> dict[str, Any]:
    """Bring a spec dict to the current schema version.

    Raises:
        SpecVersionError: the spec is newer than this mloop, or has no usable version.
    """
    version = data.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise SpecVersionError(f"spec has no valid schema_version (got {version!r})",
                               hint="a spec written by mloop always has one; was this file edited by hand?")
    if version > SCHEMA_VERSION:
        raise SpecVersionError(
            f"spec has schema_version {version}, but this mloop reads up to {SCHEMA_VERSION}: upgrade mloop",
            hint="upgrade mloop: pip install -U mloop")
    while version < SCHEMA_VERSION:
        data = UPGRADES[version](dict(data))
        version += 1
        data["schema_version"] = version
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows (a spec's numbers are finite)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range (a spec's numbers are finite)")
    return value


def load_spec(data: dict[str, Any] | str | Path, *, validate: bool = True) -> WorkflowSpec:
    """Load a spec from a dict, a JSON string or a JSON file; upgrade and validate it."""
    if isinstance(data, Path):
        data = data.read_text()
    if isinstance(data, str):
        try:
            data = json.loads(data, parse_constant=_no_constant, parse_float=_finite_float)
        except json.JSONDecodeError as exc:
            raise SpecValidationError([Problem("spec", f"not valid JSON: {exc}")]) from exc
        except ValueError as exc:  # NaN, Infinity, 1e999
            raise SpecValidationError([Problem("spec", f"not valid JSON: {exc}")]) from None
        except RecursionError:
            raise SpecValidationError([Problem("spec", "not valid JSON: nested too deeply to read")]) from None
    if not isinstance(data, dict):
        raise SpecValidationError([Problem("spec", "a spec is a JSON object")])
    data = upgrade_dict(data)
    try:
        spec = WorkflowSpec.model_validate(data)
    except RecursionError:
        raise SpecValidationError([Problem("spec", "nested too deeply to validate")]) from None
    except ValidationError as exc:
        problems = [Problem("spec." + ".".join(str(p) for p in err["loc"]), err["msg"]) for err in exc.errors()]
        raise SpecValidationError(problems) from exc
    return validate_spec(spec) if validate else spec


def dump_spec(spec: WorkflowSpec) -> dict[str, Any]:
    """The JSON-able dict of a spec (defaults included, so the file is self-describing)."""
    return spec.model_dump(mode="json")


def canonical_json(data: Any) -> str:
    """Sorted keys, compact separators, UTF-8, no NaN: the text a spec's hash is taken of."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def spec_hash(spec: WorkflowSpec | dict[str, Any]) -> str:
    data = dump_spec(spec) if isinstance(spec, WorkflowSpec) else spec
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()
