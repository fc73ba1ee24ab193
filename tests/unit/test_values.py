"""Run-time placeholder values: coerced to the declared type, refused with a clear message."""

from __future__ import annotations

import pytest

from mloop.errors import MloopError, PlaceholderValueError
from mloop.spec.models import DataRequirementSpec, ParameterSpec, StepSpec, WorkflowSpec
from mloop.spec.values import coerce_parameter, resolve_values


def p(name: str, ptype: str, **kw: object) -> ParameterSpec:
    return ParameterSpec(name=name, type=ptype, **kw)  # type: ignore[arg-type]


def spec(*params: ParameterSpec, data: tuple[DataRequirementSpec, ...] = ()) -> WorkflowSpec:
    return WorkflowSpec(name="w", steps=[StepSpec(name="a", type="job")], parameters=list(params),
                        data_requirements=list(data))


class TestCoercion:
    @pytest.mark.parametrize("ptype,raw,expected", [
        ("int", "5", 5), ("int", 5, 5), ("int", 5.0, 5), ("float", "0.5", 0.5), ("float", 1, 1.0),
        ("bool", "true", True), ("bool", "No", False), ("bool", True, True), ("str", "x", "x"), ("str", 3, "3"),
        ("json", '{"flavor_id": "cpu.small"}', {"flavor_id": "cpu.small"}), ("list", "a,b", ["a", "b"]),
    ])
    def test_text_and_typed_values_become_the_declared_type(self, ptype: str, raw: object, expected: object) -> None:
        assert coerce_parameter(p("x", ptype), raw) == expected

    def test_list_elements_take_the_placeholder_format(self) -> None:
        assert coerce_parameter(p("x", "list", format="int"), "[1, 2]") == [1, 2]
        assert coerce_parameter(p("x", "list", format="float"), "1,2.5") == [1.0, 2.5]

    @pytest.mark.parametrize("ptype,raw", [("int", "abc"), ("int", True), ("int", 2.5), ("float", "x"),
                                           ("bool", "maybe"), ("bool", 1), ("json", "[1]"), ("json", "{bad")])
    def test_a_wrong_value_names_the_placeholder_type_and_value(self, ptype: str, raw: object) -> None:
        with pytest.raises(PlaceholderValueError) as info:
            coerce_parameter(p("epochs", ptype), raw)
        text = str(info.value)
        assert "epochs" in text and ptype.upper() in text and repr(raw) in text
        assert info.value.problems[0].placeholder == "epochs"

    def test_enum_accepts_listed_values_and_their_text(self) -> None:
        e = p("mode", "enum", enum=["NCHW", "NHWC", 3])
        assert coerce_parameter(e, "NHWC") == "NHWC"
        assert coerce_parameter(e, "3") == 3
        with pytest.raises(PlaceholderValueError, match="not one of"):
            coerce_parameter(e, "NCWH")


class TestResolveValues:
    def test_defaults_fill_in_and_given_values_win(self) -> None:
        s = spec(p("a", "int", default=1), p("b", "float", default=0.5))
        assert resolve_values(s, {"b": "0.25"}) == {"a": 1, "b": 0.25}

    def test_every_problem_is_reported_at_once(self) -> None:
        s = spec(p("a", "int", default=1), p("b", "float", used_steps=["a"]))
        with pytest.raises(PlaceholderValueError) as info:
            resolve_values(s, {"a": "x", "zz": 1})
        names = {prob.placeholder for prob in info.value.problems}
        assert names == {"a", "b", "zz"}
        assert isinstance(info.value, MloopError) and isinstance(info.value, ValueError)

    def test_release_and_run_needs_a_default_for_every_placeholder(self) -> None:
        s = spec(p("a", "int"))
        with pytest.raises(PlaceholderValueError, match="release_and_run"):
            resolve_values(s, {}, require_defaults=True)

    def test_a_placeholder_of_steps_that_do_not_run_may_stay_unset(self) -> None:
        s = spec(p("a", "int", used_steps=["other"]))
        assert resolve_values(s, {}, steps={"a"}) == {"a": None}

    def test_zero_and_false_are_values_not_missing(self) -> None:
        s = spec(p("n", "int"), p("flag", "bool"))
        assert resolve_values(s, {"n": 0, "flag": False}) == {"n": 0, "flag": False}

    def test_obs_data_placeholders_take_paths_or_dicts(self) -> None:
        s = spec(data=(DataRequirementSpec(name="d", type="obs"),))
        assert resolve_values(s, {"d": "/data/"}) == {"d": {"obs_url": "/data/"}}
        assert resolve_values(s, {"d": {"obs_path": "obs://b/x"}}) == {"d": {"obs_url": "obs://b/x"}}
        with pytest.raises(PlaceholderValueError, match="has no value"):
            resolve_values(s, {})
