"""Invalid workflows are refused with every problem listed (tests/golden/invalid/*.py).

Each file in ``tests/golden/invalid/`` builds a small workflow that breaks one or more
rules and states, in comment lines at its top, what the error must say:

* ``# expect: <substring>``: the SpecValidationError message contains it (one line per
  expected problem, or per fact about a problem);
* ``# problems: <n>``: exactly n problems are reported (optional);
* ``# fields: key=value ...``: at least one problem carries all these fields (``step``,
  ``input``, ``placeholder``; optional, repeatable).

To add a case, drop a new file there; nothing here needs to change.
"""

from __future__ import annotations

import re
import runpy
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mloop import workflow as wf
from mloop.errors import MloopError, NotFoundError, Problem, SpecError, SpecValidationError

INVALID_DIR = Path(__file__).resolve().parents[1] / "golden" / "invalid"
INVALID_FILES = sorted(INVALID_DIR.glob("*.py"))


@dataclass
class Expectation:
    substrings: list[str] = field(default_factory=list)
    count: int | None = None
    fields: list[dict[str, str]] = field(default_factory=list)


def read_expectation(path: Path) -> Expectation:
    exp = Expectation()
    for line in path.read_text(encoding="utf-8").splitlines():
        if m := re.match(r"^#\s*expect:\s?(.*\S)\s*$", line):
            exp.substrings.append(m.group(1))
        elif m := re.match(r"^#\s*problems:\s*(\d+)\s*$", line):
            exp.count = int(m.group(1))
        elif m := re.match(r"^#\s*fields:\s*(.*\S)\s*$", line):
            pairs = re.split(r"\s+(?=\w+=)", m.group(1))
            exp.fields.append(dict(pair.split("=", 1) for pair in pairs))
    return exp


def build(path: Path) -> SpecValidationError:
    with pytest.raises(SpecValidationError) as info:
        runpy.run_path(str(path), run_name=f"invalid_{path.stem}")
    return info.value


def describe(err: SpecValidationError) -> str:
    rows = [f"  {p.location} | step={p.step!r} input={p.input!r} placeholder={p.placeholder!r}" for p in err.problems]
    return f"message:\n{err}\nproblems:\n" + "\n".join(rows)


def test_invalid_cases_exist() -> None:
    assert len(INVALID_FILES) >= 25, f"expected the invalid golden files in {INVALID_DIR}"


@pytest.mark.parametrize("path", INVALID_FILES, ids=[p.stem for p in INVALID_FILES])
def test_invalid_workflow_is_refused_with_stated_message(path: Path) -> None:
    exp = read_expectation(path)
    assert exp.substrings, f"{path.name} states no '# expect: <substring>' line"
    err = build(path)
    message = str(err)
    missing = [s for s in exp.substrings if s not in message]
    assert not missing, f"{path.name}: the message lacks {missing}\n{describe(err)}"
    if exp.count is not None:
        assert len(err.problems) == exp.count, f"{path.name}: expected {exp.count} problems\n{describe(err)}"
    for wanted in exp.fields:
        assert any(all(str(getattr(p, k)) == v for k, v in wanted.items()) for p in err.problems), (
            f"{path.name}: no problem carries {wanted}\n{describe(err)}")
    n = len(err.problems)
    assert f"({n} problem{'s' if n != 1 else ''})" in message.splitlines()[0], "the headline counts the problems"
    assert all(f"  - {p}" in message for p in err.problems), "every problem is printed on its own line"


@pytest.mark.parametrize("path", INVALID_FILES, ids=[p.stem for p in INVALID_FILES])
def test_every_problem_names_its_step_input_or_placeholder(path: Path) -> None:
    err = build(path)
    for p in err.problems:
        loc = p.location
        if loc.startswith("steps["):
            assert p.step, f"{loc}: no step= field\n{describe(err)}"
        if re.match(r"steps\[[^\]]*\]\.(inputs|outputs)\[", loc):
            assert p.input, f"{loc}: no input= field\n{describe(err)}"
        if loc.startswith(("parameters[", "data_requirements[")):
            assert p.placeholder, f"{loc}: no placeholder= field\n{describe(err)}"
        if not loc.startswith(("workflow.", "storages[", "policy", "sub_graphs[")):
            assert p.step or p.input or p.placeholder, f"{loc}: names nothing\n{describe(err)}"


def test_many_problems_are_all_reported_at_once() -> None:
    err = build(INVALID_DIR / "many_problems.py")
    assert len(err.problems) == 8
    assert str(err).splitlines()[0] == "workflow 'many-problems' is invalid (8 problems):"
    assert {p.placeholder for p in err.problems} >= {"epochs", "mode", "raw"}
    assert {p.step for p in err.problems} >= {"2prepare", "train"}


def test_error_carries_first_problem_fields_and_serialises() -> None:
    err = build(INVALID_DIR / "duplicate_input_names.py")
    assert (err.step, err.input) == ("train", "data_url")
    data = err.to_dict()
    assert data["code"] == "spec_invalid" and data["type"] == "SpecValidationError"
    assert data["problems"][0]["location"] == "steps[train].inputs[data_url]"


# -- the error classes -----------------------------------------------------------------------
def test_validation_errors_are_mloop_errors_and_value_errors() -> None:
    assert issubclass(SpecValidationError, MloopError)
    assert issubclass(SpecValidationError, SpecError)
    assert issubclass(SpecValidationError, ValueError)
    with pytest.raises(ValueError) as info:  # callers who only know the builtin still catch it
        runpy.run_path(str(INVALID_DIR / "name_with_space.py"))
    assert isinstance(info.value, MloopError)
    assert isinstance(info.value.problems[0], Problem)


def test_unknown_output_raises_not_found_naming_available_outputs() -> None:
    train = wf.steps.JobStep(
        name="train",
        algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py"),
        outputs=[
            wf.steps.JobOutput(name="train_url", obs_config=wf.data.OBSOutputConfig(obs_path="/bucket/m/")),
            wf.steps.JobOutput(name="metrics", metrics_config=wf.data.MetricsConfig(metric_files="/bucket/m.json")),
        ],
        spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
    )
    with pytest.raises(NotFoundError) as info:
        train.outputs["nope"]
    err = info.value
    assert isinstance(err, MloopError) and isinstance(err, LookupError)
    assert "'nope'" in str(err) and "'train_url'" in str(err) and "'metrics'" in str(err)
    assert err.step == "train"


def test_as_input_of_an_output_outside_any_step_raises_not_found() -> None:
    with pytest.raises(NotFoundError, match="does not belong to a step"):
        wf.steps.JobOutput(name="loose", obs_config=wf.data.OBSOutputConfig(obs_path="/b/")).as_input()


def test_empty_storage_directory_is_refused_at_join() -> None:
    with pytest.raises(SpecValidationError, match="directory must be a non-empty path"):
        wf.data.Storage(name="work").join("")


# -- positive counterparts ---------------------------------------------------------------------
def _job_with(placeholder: wf.Placeholder) -> wf.Workflow:
    return wf.Workflow(name="ok", desc="positive case", steps=[wf.steps.JobStep(
        name="train",
        algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py",
                                   parameters=[wf.AlgorithmParameters(name=placeholder.name, value=placeholder)]),
        spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
    )])


def test_float_placeholder_accepts_an_int_default() -> None:
    spec = _job_with(wf.Placeholder(name="lr", placeholder_type=wf.PlaceholderType.FLOAT, default=1)).compile()
    default = spec.parameter("lr").default
    assert default == 1.0 and isinstance(default, float)


def test_float_placeholder_refuses_a_bool_default() -> None:
    with pytest.raises(SpecValidationError, match=r"default True \(bool\) is not of type FLOAT"):
        _job_with(wf.Placeholder(name="lr", placeholder_type=wf.PlaceholderType.FLOAT, default=True))


@pytest.mark.parametrize("ptype, default", [
    (wf.PlaceholderType.INT, 3), (wf.PlaceholderType.STR, "3"), (wf.PlaceholderType.BOOL, False),
    (wf.PlaceholderType.FLOAT, 0.5), (wf.PlaceholderType.JSON, {"flavor_id": "cpu.small"}),
])
def test_placeholder_defaults_of_the_right_type_pass(ptype: wf.PlaceholderType, default: object) -> None:
    spec = _job_with(wf.Placeholder(name="p", placeholder_type=ptype, default=default)).compile()
    assert spec.parameter("p").default == default


def test_enum_default_inside_enum_list_passes() -> None:
    ph = wf.Placeholder(name="fmt", placeholder_type=wf.PlaceholderType.ENUM, default="NHWC", enum_list=["NCHW", "NHWC"])
    assert _job_with(ph).compile().parameter("fmt").enum == ["NCHW", "NHWC"]


def test_list_placeholder_with_element_format_passes() -> None:
    ph = wf.Placeholder(name="layers", placeholder_type=wf.PlaceholderType.LIST, placeholder_format="int",
                        default=[64, 32])
    assert _job_with(ph).compile().parameter("layers").default == [64, 32]


def test_optional_placeholder_that_is_not_delayed_passes() -> None:
    ph = wf.Placeholder(name="note", placeholder_type=wf.PlaceholderType.STR, required=False)
    assert _job_with(ph).compile().parameter("note").required is False


# -- names that are missing altogether --------------------------------------------------------
def _service(output: wf.steps.ServiceOutput) -> wf.steps.ServiceStep:
    return wf.steps.ServiceStep(
        name="deploy",
        inputs=wf.steps.ServiceInput(name="service_input",
                                     data=wf.data.ServiceInputPlaceholder(name="service_model", model_name="digits")),
        outputs=output,
    )


def _job_named(name: object) -> wf.steps.JobStep:
    return wf.steps.JobStep(
        name=name,  # type: ignore[arg-type]
        algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py"),
        spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})),
    )


_MISSING_NAMES = {
    # ServiceOutput(name=None) / ModelOutput(name=None) are allowed by the signature (reference 13)
    "service_output_without_name": (lambda: wf.Workflow(name="w", desc="d", steps=[_service(wf.steps.ServiceOutput())]),
                                    "steps[deploy].outputs[]: output name is empty"),
    "model_output_without_name": (lambda: wf.Workflow(name="w", desc="d", steps=[wf.steps.ModelStep(
        name="register", inputs=wf.steps.ModelInput(name="model_input", data=wf.data.OBSPath(obs_path="/bucket/m/")),
        outputs=wf.steps.ModelOutput(model_config=wf.steps.ModelConfig(model_name="digits")))]),
                                  "steps[register].outputs[]: output name is empty"),
    "step_name_none": (lambda: wf.Workflow(name="w", desc="d", steps=[_job_named(None)]), "steps[]: step name is empty"),
    "input_name_none": (lambda: wf.Workflow(name="w", desc="d", steps=[wf.steps.JobStep(
        name="train", algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py"),
        inputs=wf.steps.JobInput(name=None, data=wf.data.OBSPath(obs_path="/bucket/d/")),  # type: ignore[arg-type]
        spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})))]),
                        "steps[train].inputs[]: input name is empty"),
    "placeholder_name_none": (lambda: _job_with(wf.Placeholder(name=None, placeholder_type=wf.PlaceholderType.STR)),  # type: ignore[arg-type]
                              "parameters[]: placeholder name is empty"),
    "scene_name_none": (lambda: wf.Workflow(name="w", desc="d", steps=[_job_named("train")],
                                            policy=wf.policy.Policy(scenes=[wf.policy.Scene(None, ["train"])])),
                        "policy.scenes[]"),
}


@pytest.mark.parametrize("case", sorted(_MISSING_NAMES))
def test_missing_names_are_reported_as_problems(case: str) -> None:
    build_it, expected = _MISSING_NAMES[case]
    with pytest.raises(SpecValidationError) as info:  # not a raw pydantic ValidationError
        build_it()
    assert expected in str(info.value), describe(info.value)


def test_selector_problem_names_its_input() -> None:
    err = build(INVALID_DIR / "selector_mixed_types.py")
    assert (err.problems[0].step, err.problems[0].input) == ("register", "model_input")
