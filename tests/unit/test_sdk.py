"""The SDK's building blocks: storages, reference strings, dependencies, conditions,
placeholders, resources, algorithms, scenes and subgraphs (reference sections 3-7, 11)."""

from __future__ import annotations

from typing import Any

import pytest

from mloop import workflow as wf
from mloop.errors import SpecValidationError
from mloop.spec import dump_spec, load_spec, refs
from mloop.spec.models import WorkflowSpec

FLAVOR = {"flavor_id": "cpu.small"}


# -- helpers -----------------------------------------------------------------------------------
def job(name: str, *, outputs: Any = None, inputs: Any = None, parameters: Any = None, resource: Any = None,
        **kw: Any) -> wf.steps.JobStep:
    return wf.steps.JobStep(
        name=name,
        algorithm=wf.BaseAlgorithm(code_dir="./code", boot_file="train.py", parameters=parameters),
        inputs=inputs,
        outputs=outputs if outputs is not None else wf.steps.JobOutput(
            name="out", obs_config=wf.data.OBSOutputConfig(obs_path=f"/bucket/{name}/")),
        spec=wf.steps.JobSpec(resource=resource or wf.steps.JobResource(flavor=FLAVOR)),
        **kw,
    )


def model_step(name: str, data: Any, **kw: Any) -> wf.steps.ModelStep:
    return wf.steps.ModelStep(
        name=name,
        inputs=wf.steps.ModelInput(name="model_input", data=data),
        outputs=wf.steps.ModelOutput(name="model_output", model_config=wf.steps.ModelConfig(model_name="digits")),
        **kw,
    )


def compile_steps(*steps: Any, **kw: Any) -> WorkflowSpec:
    return wf.Workflow(name="unit", desc="unit test", steps=list(steps), **kw).compile()


def problems_of(*steps: Any, **kw: Any) -> list[str]:
    with pytest.raises(SpecValidationError) as info:
        wf.Workflow(name="unit", desc="unit test", steps=list(steps), **kw)
    return [str(p) for p in info.value.problems]


# -- 4.1 unified storage -----------------------------------------------------------------------
class TestStorageJoin:
    def test_join_returns_a_new_child_under_the_same_root(self) -> None:
        root = wf.data.Storage(name="work", default="/bucket/work/")
        child = root.join("train")
        assert child is not root and root.directory == ""
        assert (child.name, child.default, child.directory) == ("work", "/bucket/work/", "train")
        assert child.parent is root and child.root is root
        assert type(child) is wf.data.Storage

    def test_joins_chain(self) -> None:
        root = wf.data.Storage(name="work")
        assert root.join("a").join("b").directory == "a/b"
        assert root.join("a").join("b").join("c.json").root is root

    def test_leading_and_trailing_slashes(self) -> None:
        root = wf.data.Storage(name="work")
        assert root.join("/input/data/").directory == "input/data/"  # trailing '/' marks a folder
        assert root.join("a/").join("/b").directory == "a/b"
        assert root.join("a/").join("b/").directory == "a/b/"

    @pytest.mark.parametrize("directory", ["", "/", "//", None])
    def test_empty_directory_raises(self, directory: Any) -> None:
        with pytest.raises(SpecValidationError, match="directory must be a non-empty path") as info:
            wf.data.Storage(name="work").join(directory)
        assert isinstance(info.value, ValueError)

    def test_with_execution_id_can_be_switched_on_but_not_off(self) -> None:
        plain = wf.data.Storage(name="work")
        assert plain.join("a").with_execution_id is False
        on = plain.join("a", with_execution_id=True)
        assert on.with_execution_id is True
        assert on.join("b").with_execution_id is True
        assert on.join("b", with_execution_id=False).with_execution_id is True
        rooted = wf.data.Storage(name="work", with_execution_id=True)
        assert rooted.join("a", with_execution_id=False).with_execution_id is True

    def test_create_dir_is_inherited_unless_given(self) -> None:
        creating = wf.data.Storage(name="work", create_dir=True)
        assert creating.join("a").create_dir is True
        assert creating.join("metrics.json", create_dir=False).create_dir is False
        plain = wf.data.Storage(name="work")
        assert plain.join("a").create_dir is False
        assert plain.join("a", create_dir=True).join("b").create_dir is True
        assert plain.join("a", create_dir=True).join("b", create_dir=False).create_dir is False

    def test_input_storage_ignores_the_flags(self) -> None:
        root = wf.data.InputStorage(name="inputs")
        assert (root.with_execution_id, root.create_dir) == (False, False)
        child = root.join("a", with_execution_id=True, create_dir=True)
        assert (child.with_execution_id, child.create_dir) == (False, False)
        grandchild = child.join("b", True, True)
        assert (grandchild.with_execution_id, grandchild.create_dir, grandchild.directory) == (False, False, "a/b")
        assert isinstance(grandchild, wf.data.InputStorage)

    def test_output_storage_keeps_the_execution_id(self) -> None:
        root = wf.data.OutputStorage(name="out")
        assert (root.with_execution_id, root.create_dir) == (True, True)
        assert root.join("a", with_execution_id=False).with_execution_id is True
        assert root.join("a").join("b", with_execution_id=False).with_execution_id is True
        assert root.join("metrics.json", create_dir=False).create_dir is False
        assert isinstance(root.join("a"), wf.data.OutputStorage)

    def test_output_storage_join_passes_create_dir_on(self) -> None:
        root = wf.data.OutputStorage(name="out", create_dir=False)
        assert root.create_dir is False
        assert root.join("a").create_dir is True  # OutputStorage.join(create_dir=True) by default
        assert root.join("a", create_dir=False).create_dir is False

    def test_title_defaults_to_name(self) -> None:
        assert wf.data.Storage(name="work").title == "work"
        assert wf.data.Storage(name="work", title="Work").title == "Work"

    def test_joined_storage_ref_in_the_spec(self) -> None:
        out = wf.data.OutputStorage(name="out", default="/bucket/out/")
        work = wf.data.Storage(name="work")
        step = job("train", outputs=[
            wf.steps.JobOutput(name="train_url", obs_config=wf.data.OBSOutputConfig(obs_path=out.join("/train/"))),
            wf.steps.JobOutput(name="metrics", metrics_config=wf.data.MetricsConfig(
                metric_files=out.join("train/metrics.json", create_dir=False))),
            wf.steps.JobOutput(name="plain", obs_config=wf.data.OBSOutputConfig(obs_path=work)),
        ])
        spec = compile_steps(step, storages=[out, work])
        outs = {o.name: o.config for o in spec.step("train").outputs}
        assert outs["train_url"]["obs_url"] == "$ref/storages(with_execution_id=true,create_dir=true)/out/train/"
        assert outs["metrics"]["metric_files"] == [
            "$ref/storages(with_execution_id=true,create_dir=false)/out/train/metrics.json"]
        assert outs["plain"]["obs_url"] == "$ref/storages(with_execution_id=false,create_dir=false)/work"
        assert [s.model_dump() for s in spec.storages] == [
            {"name": "out", "type": "obs", "title": "out", "description": "", "path": "/bucket/out/",
             "with_execution_id": True, "create_dir": True},
            {"name": "work", "type": "obs", "title": "work", "description": "", "path": None,
             "with_execution_id": False, "create_dir": False},
        ]

    def test_storage_used_by_a_step_is_found_without_storages_argument(self) -> None:
        out = wf.data.OutputStorage(name="out")
        spec = compile_steps(job("train", outputs=wf.steps.JobOutput(
            name="o", obs_config=wf.data.OBSOutputConfig(obs_path=out.join("x")))))
        assert [s.name for s in spec.storages] == ["out"]

    def test_two_different_storages_with_one_name_are_refused(self) -> None:
        a, b = wf.data.Storage(name="s", default="/a/"), wf.data.Storage(name="s", default="/b/")
        step = job("train", outputs=[
            wf.steps.JobOutput(name="o1", obs_config=wf.data.OBSOutputConfig(obs_path=a.join("x"))),
            wf.steps.JobOutput(name="o2", obs_config=wf.data.OBSOutputConfig(obs_path=b.join("y"))),
        ])
        assert any("two different storages are named 's'" in p for p in problems_of(step))

    def test_storage_name_and_description_are_checked(self) -> None:
        bad = wf.data.Storage(name="1bad", description="x" * 501)
        found = problems_of(job("train", outputs=wf.steps.JobOutput(
            name="o", obs_config=wf.data.OBSOutputConfig(obs_path=bad.join("x")))))
        assert any(p.startswith("storages[1bad]: name '1bad' is not allowed") for p in found)
        assert any("description is longer than 500 characters" in p for p in found)


# -- 11. reference strings ---------------------------------------------------------------------
REF_CASES = [
    (refs.ParameterRef("epochs"), "$ref/parameters/epochs"),
    (refs.DataRef("obs_1a2b3c4d5e"), "$ref/data/obs_1a2b3c4d5e"),
    (refs.DataRequirementRef("raw_data"), "$ref/data_requirements/raw_data"),
    (refs.ConsumptionRef("train", "train_url"), "$ref/consumptions/train/train_url"),
    (refs.SelectorRef((refs.ConsumptionRef("a", "out"), refs.ConsumptionRef("b", "out"))),
     "$ref/consumptions/[a/out,b/out]"),
    (refs.SelectorRef((refs.ConsumptionRef("a", "out"),)), "$ref/consumptions/[a/out]"),
    (refs.OutputVariableRef("deploy", "service_output", "access_address"),
     "$ref/consumptions/deploy/service_output/access_address"),
    (refs.MetricRef("train", "metrics", "accuracy"), "$ref/metric_consumption/train/metrics/accuracy"),
    (refs.StorageRef("out", "", True, True), "$ref/storages(with_execution_id=true,create_dir=true)/out"),
    (refs.StorageRef("out", "train/metrics.json", True, False),
     "$ref/storages(with_execution_id=true,create_dir=false)/out/train/metrics.json"),
    (refs.StorageRef("in", "data/", False, False), "$ref/storages(with_execution_id=false,create_dir=false)/in/data/"),
    (refs.StorageRef("w", "a", False, True), "$ref/storages(with_execution_id=false,create_dir=true)/w/a"),
    (refs.SystemEnvRef("workflow_name"), "$ref/system_env/workflow_name"),
]


class TestRefs:
    @pytest.mark.parametrize("ref, text", REF_CASES, ids=[type(r).__name__ + str(i) for i, (r, _) in enumerate(REF_CASES)])
    def test_format_and_parse_round_trip(self, ref: refs.Ref, text: str) -> None:
        assert refs.format_ref(ref) == text
        assert refs.parse_ref(text) == ref
        assert refs.is_ref(text)

    def test_every_ref_kind_is_covered(self) -> None:
        kinds = {type(r) for r, _ in REF_CASES}
        assert kinds == set(refs.Ref.__args__)  # type: ignore[attr-defined]

    @pytest.mark.parametrize("text", [
        "epochs", "$ref/", "$ref/parameters/", "$ref/consumptions/train", "$ref/consumptions/a/b/c/d",
        "$ref/metric_consumption/train/metrics", "$ref/storages/out", "$ref/assets/resnet",
        "$ref/storages(with_execution_id=yes,create_dir=true)/out",
    ])
    def test_unknown_or_malformed_refs_raise_value_error(self, text: str) -> None:
        with pytest.raises(ValueError):
            refs.parse_ref(text)

    def test_format_rejects_non_refs(self) -> None:
        with pytest.raises(TypeError):
            refs.format_ref("$ref/parameters/x")  # type: ignore[arg-type]

    def test_walk_refs_finds_nested_references(self) -> None:
        value = {"a": ["$ref/parameters/x", {"b": "$ref/data/y"}], "c": "plain", "d": 3,
                 "e": ("$ref/system_env/workflow_name",)}
        assert refs.walk_refs(value) == ["$ref/parameters/x", "$ref/data/y", "$ref/system_env/workflow_name"]

    def test_empty_selector_round_trips(self) -> None:
        assert refs.parse_ref(refs.format_ref(refs.SelectorRef(()))) == refs.SelectorRef(())

    def test_empty_selector_is_reported_clearly(self) -> None:
        found = problems_of(model_step("register", wf.data.DataConsumptionSelector(data_list=[])))
        assert any("DataConsumptionSelector needs at least one output" in p for p in found), found


# -- 5.1 consumptions and the implied dependency -----------------------------------------------
class TestDependencies:
    def test_as_input_without_depend_steps_adds_the_edge(self) -> None:
        train = job("train")
        register = model_step("register", train.outputs["out"].as_input())
        spec = compile_steps(train, register)
        assert spec.step("register").depend_steps == ["train"]
        assert spec.step("register").inputs[0].data == "$ref/consumptions/train/out"
        assert spec.step("register").inputs[0].type == "obs"

    def test_explicit_dependency_is_not_duplicated(self) -> None:
        train = job("train")
        register = model_step("register", train.outputs["out"].as_input(), depend_steps=[train])
        assert compile_steps(train, register).step("register").depend_steps == ["train"]

    def test_metric_in_skip_conditions_implies_the_edge(self) -> None:
        train = job("train", outputs=wf.steps.JobOutput(
            name="metrics", metrics_config=wf.data.MetricsConfig(metric_files="/bucket/m.json")))
        later = job("later", policy=wf.steps.StepPolicy(skip_conditions=wf.steps.Condition(
            wf.steps.ConditionTypeEnum.LT, wf.steps.MetricInfo(train.outputs["metrics"].as_input(), "accuracy"), 0.5)))
        assert compile_steps(train, later).step("later").depend_steps == ["train"]

    def test_metric_in_condition_step_implies_the_edge(self) -> None:
        train = job("train", outputs=wf.steps.JobOutput(
            name="metrics", metrics_config=wf.data.MetricsConfig(metric_files="/bucket/m.json")))
        gate = wf.steps.ConditionStep(name="gate", conditions=wf.steps.Condition(
            wf.steps.ConditionTypeEnum.GTE, wf.steps.MetricInfo(train.outputs["metrics"].as_input(), "accuracy"), 0.9))
        assert compile_steps(train, gate).step("gate").depend_steps == ["train"]

    def test_consuming_a_step_of_the_same_name_that_is_not_in_the_workflow_is_refused(self) -> None:
        impostor = job("train")
        train = job("train")
        register = model_step("register", impostor.outputs["out"].as_input())
        found = problems_of(train, register)
        assert any("not the step of that name in this workflow" in p for p in found), found

    def test_duplicate_dependency_is_refused(self) -> None:
        train = job("train")
        found = problems_of(train, job("later", depend_steps=[train, train]))
        assert found == ["steps[later].depend_steps: lists 'train' twice"]

    def test_selector_implies_the_edges(self) -> None:
        a, b = job("a"), job("b")
        register = model_step("register", wf.data.DataConsumptionSelector(
            data_list=[a.outputs["out"].as_input(), b.outputs["out"].as_input()]))
        assert compile_steps(a, b, register).step("register").depend_steps == ["a", "b"]

    def test_output_variable_implies_the_edge(self) -> None:
        deploy = wf.steps.ServiceStep(
            name="deploy",
            inputs=wf.steps.ServiceInput(name="service_input", data=wf.data.ServiceInputPlaceholder(
                name="service_model", model_name="digits")),
            outputs=wf.steps.ServiceOutput(name="service_output"))
        probe = job("probe", parameters=[wf.AlgorithmParameters(
            name="url", value=deploy.outputs["service_output"].get_output_variable("access_address"))])
        assert compile_steps(deploy, probe).step("probe").depend_steps == ["deploy"]

    def test_output_variable_ref_string(self) -> None:
        deploy = wf.steps.ServiceStep(
            name="deploy",
            inputs=wf.steps.ServiceInput(name="service_input", data=wf.data.ServiceInputPlaceholder(
                name="service_model", model_name="digits")),
            outputs=wf.steps.ServiceOutput(name="service_output"))
        probe = job("probe", depend_steps=deploy, parameters=[wf.AlgorithmParameters(
            name="url", value=deploy.outputs["service_output"].get_output_variable("access_address"))])
        algo = compile_steps(deploy, probe).step("probe").properties["algorithm"]
        assert algo["parameters"][0]["value"] == "$ref/consumptions/deploy/service_output/access_address"


# -- 6.2 conditions ------------------------------------------------------------------------------
OPERATORS = [("EQ", "Equals", "=="), ("GT", "GreaterThan", ">"), ("GTE", "GreaterThanOrEqualTo", ">="),
             ("IN", "In", "in"), ("LT", "LessThan", "<"), ("LTE", "LessThanOrEqualTo", "<="),
             ("NOT", "Not", "!="), ("OR", "Or", "or")]


def _gate(condition: Any) -> WorkflowSpec:
    train = job("train")
    gate = wf.steps.ConditionStep(name="gate", conditions=condition, if_then_steps=[train])
    train.depend_steps.append(gate)
    return compile_steps(gate, train)


def _operands(member: str) -> tuple[Any, Any]:
    if member == "IN":
        return wf.Placeholder(name="mode", placeholder_type=wf.PlaceholderType.STR, default="a"), ["a", "b"]
    if member == "OR":
        go = wf.Placeholder(name="go", placeholder_type=wf.PlaceholderType.BOOL, default=True)
        return (wf.steps.Condition(wf.steps.ConditionTypeEnum.EQ, go, True),
                wf.steps.Condition(wf.steps.ConditionTypeEnum.NOT, go, False))
    return wf.Placeholder(name="level", placeholder_type=wf.PlaceholderType.INT, default=1), 2


class TestConditions:
    def test_enum_is_complete(self) -> None:
        assert [(m.name, m.value) for m in wf.steps.ConditionTypeEnum] == [(n, v) for n, v, _ in OPERATORS]

    @pytest.mark.parametrize("member, value, op", OPERATORS)
    def test_operator_on_the_wire(self, member: str, value: str, op: str) -> None:
        left, right = _operands(member)
        cond = _gate(wf.steps.Condition(wf.steps.ConditionTypeEnum[member], left, right)).step("gate").conditions[0]
        assert cond.type == op

    @pytest.mark.parametrize("member, value, op", OPERATORS)
    def test_enum_value_and_member_name_strings_are_accepted(self, member: str, value: str, op: str) -> None:
        for spelled in (value, member):
            left, right = _operands(member)
            assert _gate(wf.steps.Condition(spelled, left, right)).step("gate").conditions[0].type == op

    def test_nested_conditions_serialise_and_round_trip(self) -> None:
        left, right = _operands("OR")
        spec = _gate(wf.steps.Condition(wf.steps.ConditionTypeEnum.OR, left, right))
        cond = spec.step("gate").conditions[0].model_dump()
        assert cond == {"type": "or",
                        "left": {"type": "==", "left": "$ref/parameters/go", "right": True},
                        "right": {"type": "!=", "left": "$ref/parameters/go", "right": False}}
        assert load_spec(dump_spec(spec)) == spec

    def test_conditions_are_a_list_combined_with_and(self) -> None:
        go = wf.Placeholder(name="go", placeholder_type=wf.PlaceholderType.BOOL, default=True)
        spec = _gate([wf.steps.Condition(wf.steps.ConditionTypeEnum.EQ, go, True),
                      wf.steps.Condition(wf.steps.ConditionTypeEnum.NOT, go, False)])
        assert [c.type for c in spec.step("gate").conditions] == ["==", "!="]
        assert spec.step("gate").if_then_steps == ["train"] and spec.step("gate").else_then_steps == []

    def test_metric_info_ref_string(self) -> None:
        train = job("train", outputs=wf.steps.JobOutput(
            name="metrics", metrics_config=wf.data.MetricsConfig(metric_files="/bucket/m.json")))
        register = model_step("register", wf.data.OBSPath(obs_path="/bucket/model/"), depend_steps=train,
                              policy=wf.steps.StepPolicy(skip_conditions=wf.steps.Condition(
                                  wf.steps.ConditionTypeEnum.LT,
                                  wf.steps.MetricInfo(train.outputs["metrics"].as_input(), "accuracy"), 0.5)))
        cond = compile_steps(train, register).step("register").policy.skip_conditions[0]
        assert (cond.type, cond.left, cond.right) == ("<", "$ref/metric_consumption/train/metrics/accuracy", 0.5)

    def test_metric_info_on_obs_output_needs_metric_file(self) -> None:
        train = job("train", outputs=[
            wf.steps.JobOutput(name="with_file", obs_config=wf.data.OBSOutputConfig(
                obs_path="/bucket/a/", metric_file="metrics.json")),
            wf.steps.JobOutput(name="without", obs_config=wf.data.OBSOutputConfig(obs_path="/bucket/b/")),
            wf.steps.JobOutput(name="model", model_config=wf.steps.ModelConfig(model_name="m")),
        ])
        gate = wf.steps.ConditionStep(name="gate", conditions=[
            wf.steps.Condition(wf.steps.ConditionTypeEnum.LT,
                               wf.steps.MetricInfo(train.outputs[name].as_input(), "accuracy"), 0.5)
            for name in ("with_file", "without", "model")])
        found = problems_of(train, gate)
        assert len(found) == 2, found
        assert "MetricInfo reads obs output train.without, which has no metric_file" in found[0]
        assert "MetricInfo reads train.model, a 'model' output" in found[1]

    def test_metric_info_needs_a_consumption(self) -> None:
        train = job("train")
        found = problems_of(train, job("later", depend_steps=train, policy=wf.steps.StepPolicy(
            skip_conditions=wf.steps.Condition(wf.steps.ConditionTypeEnum.LT,
                                               wf.steps.MetricInfo("not a consumption", "accuracy"), 0.5))))
        assert any("MetricInfo needs a job output's as_input()" in p for p in found), found

    def test_skip_conditions_default_policy_values(self) -> None:
        policy = compile_steps(job("train", policy=wf.steps.StepPolicy())).step("train").policy
        assert (policy.poll_interval_seconds, policy.max_execution_minutes, policy.skip_conditions) == (1, 10080, [])
        policy = compile_steps(job("train", policy=wf.steps.StepPolicy(0, -5))).step("train").policy
        assert (policy.poll_interval_seconds, policy.max_execution_minutes) == (1, 10080), "<= 0 means default"


# -- 4.9 DataConsumptionSelector ----------------------------------------------------------------
class TestSelector:
    def test_selector_ref_string_and_type(self) -> None:
        a, b = job("a"), job("b")
        register = model_step("register", wf.data.DataConsumptionSelector(
            data_list=[a.outputs["out"].as_input(), b.outputs["out"].as_input()]), depend_steps=[a, b])
        inp = compile_steps(a, b, register).step("register").inputs[0]
        assert (inp.type, inp.data) == ("obs", "$ref/consumptions/[a/out,b/out]")
        assert refs.parse_ref(inp.data) == refs.SelectorRef(
            (refs.ConsumptionRef("a", "out"), refs.ConsumptionRef("b", "out")))

    def test_selector_needs_a_list(self) -> None:
        a = job("a")
        found = problems_of(a, model_step("register", wf.data.DataConsumptionSelector(
            data_list=a.outputs["out"].as_input()), depend_steps=a))
        assert any("must be a list of output.as_input() values" in p for p in found), found


# -- 3.2 placeholders -------------------------------------------------------------------------
class TestPlaceholders:
    def test_discovered_with_used_steps_in_order(self) -> None:
        epochs = wf.Placeholder(name="epochs", placeholder_type=wf.PlaceholderType.INT, default=3)
        same_again = wf.Placeholder(name="epochs", placeholder_type=wf.PlaceholderType.INT, default=3)
        go = wf.Placeholder(name="go", placeholder_type=wf.PlaceholderType.BOOL, default=True)
        model_name = wf.Placeholder(name="model_name", placeholder_type=wf.PlaceholderType.STR, default="digits")
        a = job("a", parameters=[wf.AlgorithmParameters(name="epochs", value=epochs)])
        b = job("b", parameters=[wf.AlgorithmParameters(name="epochs", value=same_again)],
                policy=wf.steps.StepPolicy(skip_conditions=wf.steps.Condition(wf.steps.ConditionTypeEnum.EQ, go, True)))
        register = wf.steps.ModelStep(
            name="register", depend_steps=a,
            inputs=wf.steps.ModelInput(name="model_input", data=a.outputs["out"].as_input()),
            outputs=wf.steps.ModelOutput(name="model_output",
                                         model_config=wf.steps.ModelConfig(model_name=model_name)))
        deploy = wf.steps.ServiceStep(
            name="deploy", depend_steps=register,
            inputs=wf.steps.ServiceInput(name="service_input", data=wf.data.ServiceInputPlaceholder(
                name="service_model", model_name=model_name)),
            outputs=wf.steps.ServiceOutput(name="service_output"))
        spec = compile_steps(a, b, register, deploy)
        assert [(p.name, p.used_steps) for p in spec.parameters] == [
            ("epochs", ["a", "b"]), ("go", ["b"]), ("model_name", ["register", "deploy"])]
        service_model = spec.data_requirement("service_model")
        assert service_model.type == "model_list" and service_model.delay is True
        assert service_model.conditions == [
            {"attribute": "model_name", "operator": "equal", "value": "$ref/parameters/model_name"}]

    def test_data_placeholders_and_concrete_data(self) -> None:
        raw = wf.data.OBSPlaceholder(name="raw", object_type="directory",
                                     default=wf.data.OBSPath(obs_path="/bucket/raw/"))
        a = job("a", inputs=wf.steps.JobInput(name="data_url", data=raw))
        b = job("b", inputs=[wf.steps.JobInput(name="data_url", data=raw),
                             wf.steps.JobInput(name="extra", data=wf.data.OBSPath(obs_path="/bucket/extra/"))])
        spec = compile_steps(a, b)
        assert [(d.name, d.type, d.used_steps, d.default) for d in spec.data_requirements] == [
            ("raw", "obs", ["a", "b"], {"obs_url": "/bucket/raw/"})]
        assert len(spec.data) == 1 and spec.data[0].value == {"obs_url": "/bucket/extra/"}
        assert spec.data[0].used_steps == ["b"]
        assert spec.step("b").inputs[1].data == f"$ref/data/{spec.data[0].name}"

    def test_placeholder_and_data_placeholder_may_not_share_a_name(self) -> None:
        clash = wf.Placeholder(name="raw", placeholder_type=wf.PlaceholderType.STR, default="x")
        step = job("a", inputs=wf.steps.JobInput(name="data_url", data=wf.data.OBSPlaceholder(
            name="raw", object_type="directory")), parameters=[wf.AlgorithmParameters(name="p", value=clash)])
        assert any("placeholder name 'raw' is defined more than once" in p for p in problems_of(step))

    def test_wire_type_strings_and_unknown_types(self) -> None:
        ok = job("a", parameters=[wf.AlgorithmParameters(name="p", value=wf.Placeholder(name="p", placeholder_type="int",
                                                                                          default=1))])
        assert compile_steps(ok).parameter("p").type == "int"
        bad = job("a", parameters=[wf.AlgorithmParameters(name="p", value=wf.Placeholder(name="p",
                                                                                           placeholder_type="integer"))])
        assert any("unknown placeholder_type 'integer'" in p for p in problems_of(bad))

    def test_ref_and_value(self) -> None:
        ph = wf.Placeholder(name="epochs", placeholder_type=wf.PlaceholderType.INT, default=3)
        assert ph.ref() == "$ref/parameters/epochs" and ph.value == 3

    def test_system_env_string_is_a_checked_ref(self) -> None:
        assert wf.SystemEnv.WORKFLOW_NAME.env() == "$ref/system_env/workflow_name"
        step = job("a", parameters=[wf.AlgorithmParameters(name="run", value=wf.SystemEnv.EXECUTION_UUID.env())])
        params = compile_steps(step).step("a").properties["algorithm"]["parameters"]
        assert params == [{"name": "run", "value": "$ref/system_env/execution_uuid"}]
        bad = job("a", parameters=[wf.AlgorithmParameters(name="run", value="$ref/system_env/nope")])
        assert any("unknown system value 'nope'" in p for p in problems_of(bad))

    def test_system_env_member_becomes_a_ref(self) -> None:
        step = job("a", parameters=[wf.AlgorithmParameters(name="run", value=wf.SystemEnv.EXECUTION_UUID)])
        data = dump_spec(compile_steps(step))
        assert data["steps"][0]["properties"]["algorithm"]["parameters"] == [
            {"name": "run", "value": "$ref/system_env/execution_uuid"}]


# -- 6.3 JobResource and algorithms --------------------------------------------------------------
class TestJobResourceAndAlgorithms:
    def test_plain_dict_flavor(self) -> None:
        resource = compile_steps(job("a")).step("a").properties["spec"]["resource"]
        assert resource == {"flavor": FLAVOR, "node_count": 1, "policy": "regular"}

    def test_flavor_placeholder_gets_train_flavor_format(self) -> None:
        flavor = wf.Placeholder(name="train_flavor", placeholder_type=wf.PlaceholderType.JSON, default=FLAVOR)
        spec = compile_steps(job("a", resource=wf.steps.JobResource(flavor=flavor)))
        assert flavor.placeholder_format == "train_flavor"
        assert spec.parameter("train_flavor").format == "train_flavor"
        assert spec.step("a").properties["spec"]["resource"]["flavor"] == "$ref/parameters/train_flavor"

    def test_flavor_id_placeholder_gets_flavor_format(self) -> None:
        flavor_id = wf.Placeholder(name="flavor_id", placeholder_type=wf.PlaceholderType.STR,
                                   default="modelarts.vm.cpu.8u")
        spec = compile_steps(job("a", resource=wf.steps.JobResource(flavor_id=flavor_id, node_count=2)))
        assert spec.parameter("flavor_id").format == "flavor"
        assert spec.step("a").properties["spec"]["resource"] == {
            "flavor_id": "$ref/parameters/flavor_id", "node_count": 2, "policy": "regular"}

    def test_algorithm_none_is_reported(self) -> None:
        step = wf.steps.JobStep(name="a", algorithm=wf.Algorithm(None),  # type: ignore[arg-type]
                                spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor=FLAVOR)))
        found = problems_of(step)
        assert len(found) == 1 and "an algorithm needs exactly one of: id" in found[0]

    def test_algorithm_forms(self) -> None:
        spec_of = lambda algo: compile_steps(wf.steps.JobStep(  # noqa: E731
            name="a", algorithm=algo, spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor=FLAVOR)))
        ).step("a").properties["algorithm"]
        assert spec_of(wf.Algorithm("algo-1")) == {"id": "algo-1", "parameters": []}
        assert spec_of(wf.AIGalleryAlgorithm("sub", "1.0.0")) == {
            "subscription_id": "sub", "item_version_id": "1.0.0", "parameters": []}
        assert spec_of(wf.BaseAlgorithm(code_dir="./c", command="python t.py",
                                        engine=wf.steps.JobEngine(image_url="org/img:1"), environments={"A": "1"})) == {
            "code_dir": "./c", "command": "python t.py", "engine": {"image_url": "org/img:1"},
            "environments": {"A": "1"}, "parameters": []}

    def test_gallery_algorithm_needs_both_ids_and_one_form(self) -> None:
        found = problems_of(wf.steps.JobStep(
            name="a", algorithm=wf.BaseAlgorithm(id="x", subscription_id="sub"),
            spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor=FLAVOR))))
        assert any("an algorithm needs exactly one of" in p for p in found)
        assert any("AIGalleryAlgorithm needs both subscription_id and item_version_id" in p for p in found)

    def test_duplicate_algorithm_parameter(self) -> None:
        found = problems_of(job("a", parameters=[wf.AlgorithmParameters(name="lr", value=0.1),
                                                 wf.AlgorithmParameters(name="lr", value=0.2)]))
        assert any("algorithm parameter 'lr' is given twice" in p for p in found)


# -- 7. policy scenes and 3.4 subgraphs ----------------------------------------------------------
class TestScenesAndSubgraphs:
    def steps(self) -> list[wf.steps.JobStep]:
        a = job("a")
        b = job("b", depend_steps=a)
        c = job("c", depend_steps=b)
        return [a, b, c]

    def test_valid_scenes_serialise(self) -> None:
        a, b, c = self.steps()
        policy = wf.policy.Policy(scenes=[wf.policy.Scene("train_only", [a]), wf.policy.Scene("tail", [b, "c"])])
        spec = compile_steps(a, b, c, policy=policy)
        assert spec.policy.model_dump() == {"scenes": [{"name": "train_only", "steps": ["a"]},
                                                       {"name": "tail", "steps": ["b", "c"]}]}

    def test_scene_rules(self) -> None:
        a, b, c = self.steps()
        policy = wf.policy.Policy(scenes=[wf.policy.Scene("s", [a, a]), wf.policy.Scene("s", []),
                                          wf.policy.Scene("t", ["zz"]), "not a scene"])
        found = problems_of(a, b, c, policy=policy)
        assert found == [
            "policy.scenes[3]: expected wf.policy.Scene, got 'not a scene'",
            "policy.scenes[s]: scene name 's' is used twice",
            "policy.scenes[s][a]: step 'a' is listed twice in the scene",
            "policy.scenes[s]: a scene needs at least one step",
            "policy.scenes[t]: 'zz' is not a step of this workflow",
        ]

    def test_policy_must_be_a_policy(self) -> None:
        a, b, c = self.steps()
        assert problems_of(a, b, c, policy={"scenes": []}) == [  # type: ignore[arg-type]
            "workflow.policy: expected wf.policy.Policy, got {'scenes': []}"]

    def test_valid_subgraphs_serialise(self) -> None:
        a, b, c = self.steps()
        spec = compile_steps(a, b, c, subgraphs=[wf.Subgraph("head", [a, b]), wf.Subgraph("tail", ["c"])])
        assert [g.model_dump() for g in spec.sub_graphs] == [{"name": "head", "steps": ["a", "b"]},
                                                             {"name": "tail", "steps": ["c"]}]

    def test_subgraph_rules(self) -> None:
        a, b, c = self.steps()
        found = problems_of(a, b, c, subgraphs=[wf.Subgraph("g", [a, "zz"]), wf.Subgraph("g", [b]),
                                                 wf.Subgraph("c", [a]), wf.Subgraph("9x", []),
                                                 wf.Subgraph("n", None)])
        assert "workflow.subgraphs[4]: expected wf.Subgraph(name, steps)" in found
        assert "sub_graphs[g]: subgraph name 'g' is used twice" in found
        assert "sub_graphs[g]: 'zz' is not a step of this workflow" in found
        assert "sub_graphs[c]: subgraph 'c' has the name of a step" in found
        assert "sub_graphs[c]: step 'a' is already in subgraph 'g'" in found
        assert any(p.startswith("sub_graphs[9x]: subgraph name '9x' is not allowed") for p in found)

    def test_subgraph_collapse_must_stay_acyclic(self) -> None:
        a, b, c = self.steps()
        found = problems_of(a, b, c, subgraphs=[wf.Subgraph("ends", [a, c])])
        assert any("cycle" in p for p in found), found


# -- workflow-level behaviour --------------------------------------------------------------------
class TestWorkflow:
    def test_to_definition_json_is_the_dumped_spec(self) -> None:
        w = wf.Workflow(name="unit", desc="d", steps=[job("a")])
        assert w.to_definition_json() == w.to_spec() == dump_spec(w.compile())

    def test_validate_sees_changes_made_after_construction(self) -> None:
        a = job("a")
        w = wf.Workflow(name="unit", desc="d", steps=[a])
        a.depend_steps.append(a)
        with pytest.raises(SpecValidationError, match="a step cannot depend on itself"):
            w.to_spec()
        assert w.check_dag()[0] is False

    def test_workflow_name_and_empty_steps(self) -> None:
        with pytest.raises(SpecValidationError) as info:
            wf.Workflow(name="my workflow", desc="d", steps=[])
        assert [p.location for p in info.value.problems] == ["workflow.name", "workflow.steps"]

    def test_non_step_objects_are_reported(self) -> None:
        found = problems_of("not a step", job("a"))
        assert found[0] == "workflow.steps[0]: expected a step object, got 'not a step'"

    def test_title_defaults_to_name_and_extend_workspace_are_kept(self) -> None:
        w = wf.Workflow(name="unit", desc="d", steps=[job("a", title=None)], extend={"git_commit_id": "abc"},
                        workspace=wf.resource.Workspace("ws-1"))
        spec = w.compile()
        assert spec.step("a").title == "a"
        assert (spec.extend, spec.workspace_id) == ({"git_commit_id": "abc"}, "ws-1")
