"""Step caching's pure parts: durations, the policy extension in the SDK and the spec, and
how a miss is explained from two sets of facts (the integration tests run the jobs)."""

from __future__ import annotations

from typing import Any

import pytest

from mloop import workflow as wf
from mloop.durations import duration_seconds
from mloop.errors import SpecValidationError
from mloop.spec.io import dump_spec, load_spec
from mloop.steps.caching import FACTS_VERSION, differences


@pytest.mark.parametrize("text, seconds", [("90", 90), (90, 90), ("30m", 1800), ("1.5h", 5400), ("7d", 604800),
                                           ("2w", 1209600), ("0s", 0), ("never", None), (None, None)])
def test_durations(text: Any, seconds: float | None) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["7x", "-1d", "soon", "inf"])
def test_bad_durations_say_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        duration_seconds(text)


def _workflow(policy: Any) -> Any:
    job = wf.steps.JobStep(name="train", algorithm=wf.BaseAlgorithm(code_dir=".", boot_file="t.py"),
                           spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
                           policy=policy)
    return wf.Workflow(name="w", desc="", steps=[job])


class TestPolicyExtension:
    def test_round_trips_through_the_spec(self) -> None:
        spec = _workflow(wf.steps.StepPolicy(cache=False, cache_expiry="12h")).compile()
        dumped = dump_spec(spec)
        assert dumped["steps"][0]["policy"]["cache"] is False
        assert dumped["steps"][0]["policy"]["cache_expiry"] == "12h"
        assert dump_spec(load_spec(dumped)) == dumped

    def test_unset_it_leaves_the_spec_as_before(self) -> None:
        policy = dump_spec(_workflow(wf.steps.StepPolicy(max_execution_minutes=5)).compile())["steps"][0]["policy"]
        assert set(policy) == {"poll_interval_seconds", "max_execution_minutes", "skip_conditions"}

    def test_a_bad_expiry_is_a_problem_at_build_time(self) -> None:
        with pytest.raises(SpecValidationError, match=r"steps\[train\]\.policy\.cache_expiry"):
            _workflow(wf.steps.StepPolicy(cache_expiry="soon")).compile()


def facts(**parts: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"code": "c1", "algorithm": {"boot_file": "t.py", "env": {}}, "parameters": {"lr": 0.1},
                            "inputs": {"data": "dir:aa"}, "environment": {"python": "3.11.7"},
                            "flavor": {"id": "cpu.small", "node_count": 1}, "outputs": {"out": ["obs", []]}}
    code_files = parts.pop("code_files", {"t.py": "1"})
    inputs = parts.pop("about", {"data": {"url": "/d/"}})
    base.update(parts)
    return {"v": FACTS_VERSION, "parts": base, "code_files": code_files, "inputs": inputs}


class TestDifferences:
    def test_names_each_kind_of_change(self) -> None:
        assert differences(facts(), facts(code="c2", code_files={"t.py": "2", "u.py": "3"})) == [
            "code file 't.py' changed", "code file 'u.py' added"]
        assert differences(facts(), facts(parameters={"lr": 0.2})) == ["parameter 'lr' changed (0.1 → 0.2)"]
        assert differences(facts(), facts(inputs={"data": "dir:bb"})) == ["input 'data' content changed"]
        assert differences(facts(), facts(environment={"python": "3.12.1"})) == [
            "environment changed (python: 3.11.7 → 3.12.1)"]
        assert differences(facts(), facts(flavor={"id": "gpu.1", "node_count": 1})) == [
            "flavor changed (cpu.small → gpu.1)"]
        assert differences(facts(), facts(algorithm={"boot_file": "t.py", "env": {"SEED": "x"}})) == [
            "environment variable 'SEED' added"]

    def test_a_dataset_is_named_by_version(self) -> None:
        old = facts(inputs={"data": "dataset:1:m1"}, about={"data": {"dataset": "pets", "version": "v1"}})
        new = facts(inputs={"data": "dataset:2:m2"}, about={"data": {"dataset": "pets", "version": "v2"}})
        assert differences(old, new) == ["input 'data': dataset pets version v1 → pets version v2"]

    def test_many_changes_are_cut_short(self) -> None:
        found = differences(facts(), facts(parameters={"a": 1, "b": 2, "c": 3, "d": 4}))
        assert found == ["parameter 'a' added", "parameter 'b' added", "parameter 'c' added", "and 2 more"]

    def test_facts_of_another_version_say_so(self) -> None:
        assert differences({"v": 0}, facts()) == ["the earlier run's cache facts are of another mloop version"]
