"""Specs stored today must load next year (STYLE section 3).

``tests/compat/v<N>/*.spec.json`` are frozen copies of specs written with schema_version
N. They are never regenerated: if one stops loading, add an upgrade function to
``mloop.spec.io.UPGRADES`` rather than editing the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mloop.errors import MloopError, SpecError, SpecValidationError, SpecVersionError
from mloop.spec import SCHEMA_VERSION, dump_spec, load_spec, refs
from mloop.spec.models import WorkflowSpec

COMPAT_DIR = Path(__file__).resolve().parents[1] / "compat"
FROZEN = sorted(COMPAT_DIR.glob("v*/*.spec.json"))


def test_frozen_specs_exist() -> None:
    assert len(list(COMPAT_DIR.glob("v1/*.spec.json"))) >= 2


@pytest.mark.parametrize("path", FROZEN, ids=[f"{p.parent.name}/{p.name}" for p in FROZEN])
def test_frozen_spec_still_loads(path: Path) -> None:
    raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    assert raw["schema_version"] == int(path.parent.name[1:]), "a frozen spec sits in the folder of its version"
    spec = load_spec(path)
    assert isinstance(spec, WorkflowSpec)
    assert spec.schema_version == SCHEMA_VERSION
    # what the file said survives the upgrade
    assert spec.name == raw["name"]
    assert [s.name for s in spec.steps] == [s["name"] for s in raw["steps"]]
    assert [(s.name, s.type, s.depend_steps) for s in spec.steps] == [
        (s["name"], s["type"], s["depend_steps"]) for s in raw["steps"]]
    assert [p.name for p in spec.parameters] == [p["name"] for p in raw["parameters"]]
    for text in refs.walk_refs(dump_spec(spec)):
        refs.parse_ref(text)  # every reference is still understood


def test_frozen_v1_specs_are_lossless_under_v1() -> None:
    if SCHEMA_VERSION != 1:
        pytest.skip("v1 specs are upgraded by the current mloop; the previous test covers them")
    for path in COMPAT_DIR.glob("v1/*.spec.json"):
        raw = json.loads(path.read_text(encoding="utf-8"))
        data = dump_spec(load_spec(raw))
        data.pop("source_dir")
        assert data == raw, path.name


def _frozen() -> dict[str, Any]:
    return json.loads(FROZEN[0].read_text(encoding="utf-8"))


def test_newer_spec_is_refused_with_upgrade_hint() -> None:
    data = _frozen()
    data["schema_version"] = 999
    with pytest.raises(SpecVersionError) as info:
        load_spec(data)
    err = info.value
    assert isinstance(err, SpecError) and isinstance(err, MloopError)
    assert "999" in str(err)
    assert "upgrade mloop" in f"{err} {err.hint}"
    assert err.hint is not None and "upgrade mloop" in err.hint


@pytest.mark.parametrize("version", [None, 0, -1, "1", 1.5])
def test_spec_without_valid_version_is_refused(version: Any) -> None:
    data = _frozen()
    if version is None:
        del data["schema_version"]
    else:
        data["schema_version"] = version
    with pytest.raises(SpecVersionError, match="no valid schema_version"):
        load_spec(data)


def test_unknown_fields_and_bad_json_are_validation_errors() -> None:
    data = _frozen()
    data["surprise"] = True
    with pytest.raises(SpecValidationError, match="surprise"):
        load_spec(data)
    with pytest.raises(SpecValidationError, match="not valid JSON"):
        load_spec("{not json")
    with pytest.raises(SpecValidationError, match="a spec is a JSON object"):
        load_spec("[]")


def test_loaded_specs_are_validated() -> None:
    data = _frozen()
    data["steps"][0]["depend_steps"] = ["ghost"]
    with pytest.raises(SpecValidationError, match="depends on 'ghost'"):
        load_spec(data)
    assert load_spec(data, validate=False).steps[0].depend_steps == ["ghost"]
