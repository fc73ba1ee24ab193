"""Every name mloop accepts is matched whole: a trailing newline, a NUL or another control
character, a path separator or ``..`` never passes a name check (issue 9, item 17: ``$`` in a
regular expression matches before a final newline, so ``re.match(r"^x$", "x\\n")`` passes)."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from mloop.datasets.labeling import check_task_name
from mloop.errors import MloopError
from mloop.services.datasets import check_dataset_name
from mloop.spec.validate import VERSION_RE, check_name
from mloop.store.registry import check_alias, check_model_name, check_version
from mloop.store.services import check_service_name


def _spec_name(value: str) -> None:
    problem = check_name(value)
    if problem:
        raise ValueError(problem)


CHECKS: dict[str, tuple[Callable[[str], Any], str]] = {
    "workflow/step/placeholder name": (_spec_name, "train"),
    "dataset name": (check_dataset_name, "digits"),
    "labeling task name": (check_task_name, "pets-round1"),
    "service name": (check_service_name, "mnist"),
    "model name": (check_model_name, "mnist"),
    "model version": (check_version, "3"),
    "model alias": (check_alias, "production"),
}
HOSTILE = ["{}\n", "{}\r\n", "{}\x00", "{}\x1b[31m", "../{}", "{}/x", "/abs/{}", "{} ", "\n{}"]


@pytest.mark.parametrize("kind", sorted(CHECKS))
def test_a_good_name_passes(kind: str) -> None:
    check, good = CHECKS[kind]
    check(good)


@pytest.mark.parametrize("shape", HOSTILE, ids=repr)
@pytest.mark.parametrize("kind", sorted(CHECKS))
def test_a_name_with_a_control_character_or_a_path_in_it_is_refused(kind: str, shape: str) -> None:
    check, good = CHECKS[kind]
    with pytest.raises((MloopError, ValueError)):
        check(shape.format(good))


@pytest.mark.parametrize("version", ["1.0.0\n", "1.0.0\x00", "1.0", " 1.0.0"])
def test_algorithm_versions_are_matched_whole(version: str) -> None:
    assert VERSION_RE.fullmatch(version) is None


class TestAutomaticServiceName:
    """A ServiceStep that names no service updates one service across runs instead of starting
    a new process each run (issue 9, item 16)."""

    def test_it_is_the_workflow_and_step(self) -> None:
        from mloop.steps.service import auto_service_name

        assert auto_service_name("mnist-loop", "deploy") == "mnist-loop-deploy"

    def test_it_is_stable_and_valid_when_the_readable_name_is_not(self) -> None:
        from mloop.steps.service import auto_service_name

        long = "w" * 60
        name = auto_service_name(long, "deploy")
        assert name == auto_service_name(long, "deploy") and name.startswith("service-")
        assert check_service_name(name) == name
        assert auto_service_name(long, "other") != name
