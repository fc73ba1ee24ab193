"""Regression tests for bugs found in review."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from mloop import workflow as wf
from mloop.artifacts.transfer import walk_local
from mloop.engine.conditions import evaluate
from mloop.spec.models import ConditionSpec, ParameterSpec
from mloop.spec.values import coerce_parameter


def test_step_outputs_keep_the_dict_items_method() -> None:
    step = wf.steps.JobStep(
        name="t", algorithm=wf.BaseAlgorithm(code_dir=".", boot_file="t.py"),
        outputs=[wf.steps.JobOutput(name="a", obs_config=wf.data.OBSOutputConfig(obs_path="/x/"))],
        spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})))
    assert [name for name, _ in step.outputs.items()] == ["a"]


def test_list_values_given_as_text_are_trimmed() -> None:
    p = ParameterSpec(name="tags", type="list")
    assert coerce_parameter(p, "a, b ,c") == ["a", "b", "c"]


class _Run:
    def resolve(self, v: Any) -> Any:
        if v == "$ref/metric_consumption/skipped/m/acc":
            raise AssertionError("the right side of a true 'or' was resolved")
        return v


def test_or_does_not_resolve_its_right_side_when_the_left_holds() -> None:
    cond = ConditionSpec(type="or", left=ConditionSpec(type="==", left=1, right=1),
                         right=ConditionSpec(type=">", left="$ref/metric_consumption/skipped/m/acc", right=0.5))
    assert evaluate(cond, _Run()) is True  # type: ignore[arg-type]


def test_links_between_sibling_folders_are_followed_once(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "f.txt").write_text("x")
    os.symlink(tmp_path / "b", tmp_path / "a" / "to_b")
    os.symlink(tmp_path / "a", tmp_path / "b" / "to_a")
    tree = walk_local(str(tmp_path))
    files = [f[0] if isinstance(f, tuple) else f for f in tree.files]
    assert len(files) <= 2, files  # a/f.txt, and at most once more through a link


@pytest.mark.parametrize("folder", ["mloop_examples", "mloopx"])
def test_a_user_folder_named_like_the_package_is_the_workflow_source(tmp_path: Path, folder: str) -> None:
    import runpy

    import mloop

    sibling = Path(mloop.__file__).resolve().parent.parent / folder
    if sibling.exists() or not os.access(sibling.parent, os.W_OK):
        pytest.skip("cannot create a sibling folder of the package here")
    sibling.mkdir()
    try:
        (sibling / "w.py").write_text(
            "from mloop import workflow as wf\n"
            "s = wf.steps.JobStep(name='t', algorithm=wf.BaseAlgorithm(code_dir='.', boot_file='t.py'),\n"
            "    spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={'flavor_id': 'cpu.small'})))\n"
            "workflow = wf.Workflow(name='w', desc='', steps=[s])\n")
        spec = runpy.run_path(str(sibling / "w.py"))["workflow"].compile()
        assert spec.source_dir == str(sibling)
    finally:
        for f in sibling.iterdir():
            f.unlink()
        sibling.rmdir()
