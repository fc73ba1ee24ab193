"""The public surface of ``mloop.workflow`` is pinned: the ModelArts names, and their signatures.

The names come from seed 002, line 3: the documentation's list of everything imported
through ``from modelarts import workflow as wf``. The same list is reconstructed in
``tests/seed_examples/seed002_00_imports.py``, which is used when the seed is absent.
Signatures are those of reference sections 3-7 (``/work/shared/reference/workflow-api.md``).
"""

from __future__ import annotations

import enum
import inspect
import re
import runpy
from pathlib import Path
from typing import Any

import pytest

from mloop import workflow as wf

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / ".." / "shared" / "seeds" / "002_65b490c469ccf75a.txt"
IMPORTS_EXAMPLE = REPO / "tests" / "seed_examples" / "seed002_00_imports.py"
TOKEN = re.compile(r"\bwf(?:\.[A-Za-z_][A-Za-z0-9_]*)+")

#: Names mloop exports beyond the seed list, on purpose.
EXTRA_DATA = {"DataSelector", "StorageTypeEnum"}  # DataSelector: newer docs [D]; StorageTypeEnum: Storage's type
EXTRA_STEPS: set[str] = set()
EXTRA_TOP = {"data", "steps", "policy", "interface", "Workflow"}  # sub-packages, and the class wf.workflow names


def example_tokens() -> list[str]:
    """The names in the code of the reconstructed import list (its docstring left out)."""
    return TOKEN.findall(IMPORTS_EXAMPLE.read_text(encoding="utf-8").split('"""', 2)[2])


def seed_tokens() -> list[str]:
    if SEED.exists():
        line = SEED.read_text(encoding="utf-8").splitlines()[2]
        assert line.lstrip(" •").startswith("导入Workflow Data包"), "line 3 of seed 002 is the import list"
        return TOKEN.findall(line.split("from modelarts import workflow as wf", 1)[1])
    return example_tokens()


TOKENS = seed_tokens()


def by_module(prefix: str) -> list[str]:
    parts = [t.split(".") for t in TOKENS]
    if prefix:
        return [p[2] for p in parts if len(p) == 3 and p[1] == prefix]
    return [p[1] for p in parts if len(p) == 2]


def test_seed_list_has_every_section() -> None:
    assert len(by_module("data")) == 25
    assert len(by_module("steps")) == 53
    assert by_module("policy") == ["Policy", "Scene"]
    assert by_module("") == ["workflow", "Subgraph", "Placeholder", "PlaceholderType", "AlgorithmParameters",
                             "BaseAlgorithm", "Algorithm", "AIGalleryAlgorithm", "resource", "SystemEnv",
                             "add_whitelist_users", "delete_whitelist_users"]
    assert len(TOKENS) == len(set(TOKENS)) == 25 + 53 + 2 + 12


def test_imports_example_lists_the_same_names_as_the_seed() -> None:
    if not SEED.exists():
        pytest.skip(f"{SEED.resolve()} is absent")
    assert example_tokens() == TOKENS


def test_imports_example_runs() -> None:
    runpy.run_path(str(IMPORTS_EXAMPLE))


@pytest.mark.parametrize("token", TOKENS)
def test_seed_name_resolves(token: str) -> None:
    obj: Any = wf
    for attr in token.split(".")[1:]:
        assert hasattr(obj, attr), f"{token}: mloop.workflow lacks {attr!r}"
        obj = getattr(obj, attr)


def test_wf_workflow_is_the_workflow_class() -> None:
    assert wf.workflow is wf.Workflow


@pytest.mark.parametrize("module, extra", [("data", EXTRA_DATA), ("steps", EXTRA_STEPS)])
def test_all_is_exactly_the_seed_names_plus_the_allowed_extras(module: str, extra: set[str]) -> None:
    exported = getattr(wf, module).__all__
    assert len(exported) == len(set(exported)), f"wf.{module}.__all__ lists a name twice"
    seed = set(by_module(module))
    assert seed <= set(exported), f"missing from wf.{module}.__all__: {sorted(seed - set(exported))}"
    assert set(exported) - seed <= extra, f"unexpected in wf.{module}.__all__: {sorted(set(exported) - seed - extra)}"
    for name in exported:
        assert hasattr(getattr(wf, module), name)


def test_policy_and_top_level_all() -> None:
    assert sorted(wf.policy.__all__) == sorted(by_module("policy"))
    top = set(by_module(""))
    assert top <= set(wf.__all__)
    assert set(wf.__all__) - top <= EXTRA_TOP, sorted(set(wf.__all__) - top - EXTRA_TOP)
    assert wf.resource.__all__ == ["Workspace"]
    assert wf.interface.__all__ == ["APIInterface"]


def test_star_import_gives_the_surface() -> None:
    namespace: dict[str, Any] = {}
    exec("from mloop.workflow.steps import *\nfrom mloop.workflow.data import *", namespace)  # noqa: S102
    assert set(by_module("steps")) | set(by_module("data")) <= set(namespace)


# -- constructor signatures ---------------------------------------------------------------------
R = inspect.Parameter.empty  # required (no default)
ANY = object()  # default exists but its value is not pinned


class _Enum:
    """A default that is an enum member, named lazily so the table reads like the reference."""

    def __init__(self, path: str) -> None:
        self.path = path

    def resolve(self) -> Any:
        obj: Any = wf
        for attr in self.path.split("."):
            obj = getattr(obj, attr)
        return obj


STEP_TAIL = [("title", None), ("description", None), ("policy", None), ("depend_steps", None)]

SIGNATURES: dict[str, list[tuple[str, Any]]] = {
    "Workflow": [("name", R), ("desc", R), ("steps", R), ("session", None), ("storages", None), ("policy", None),
                 ("subgraphs", None), ("extend", None), ("workspace", ANY)],
    "Placeholder": [("name", R), ("placeholder_type", R), ("default", None), ("placeholder_format", None),
                    ("delay", False), ("description", None), ("enum_list", None), ("constraint", None),
                    ("required", True)],
    "data.Storage": [("name", R), ("title", ""), ("description", ""), ("storage_type", _Enum("data.StorageTypeEnum.OBS")),
                     ("default", None), ("directory", ""), ("with_execution_id", False), ("create_dir", False),
                     ("parent", None)],
    "data.InputStorage": [("name", R), ("title", ""), ("description", ""),
                          ("storage_type", _Enum("data.StorageTypeEnum.OBS")), ("default", None), ("directory", ""),
                          ("parent", None)],
    "data.OutputStorage": [("name", R), ("title", ""), ("description", ""),
                           ("storage_type", _Enum("data.StorageTypeEnum.OBS")), ("default", None), ("directory", ""),
                           ("parent", None), ("create_dir", True)],
    "data.OBSPlaceholder": [("name", R), ("object_type", R), ("delay", False), ("default", None)],
    "steps.JobStep": [("name", R), ("algorithm", R), ("spec", R), ("kind", _Enum("steps.JobTypeEnum.JOB")),
                      ("inputs", None), ("outputs", None), ("metadata", None)] + STEP_TAIL,
    "steps.JobOutput": [("name", R), ("obs_config", None), ("model_config", None), ("metrics_config", None),
                        ("service_config", None)],
    "steps.JobResource": [("flavor_id", None), ("node_count", 1), ("policy", "regular"), ("flavor", None)],
    "BaseAlgorithm": [("id", None), ("subscription_id", None), ("item_version_id", None), ("code_dir", None),
                      ("boot_file", None), ("command", None), ("parameters", None), ("policies", None),
                      ("engine", None), ("environments", None)],
    "steps.StepPolicy": [("poll_interval_seconds", 1), ("max_execution_minutes", 10080), ("skip_conditions", None)],
    "steps.Condition": [("condition_type", R), ("left", R), ("right", R)],
    "steps.ConditionStep": [("name", R), ("conditions", R), ("if_then_steps", None), ("else_then_steps", None),
                            ("title", None), ("description", None), ("depend_steps", None)],
    "steps.ModelStep": [("name", R), ("outputs", R), ("inputs", None)] + STEP_TAIL,
    "steps.ModelConfig": [("model_type", "TensorFlow")] + [(n, None) for n in (
        "model_name", "model_version", "runtime", "source_location", "source_job_id", "source_type", "description",
        "execution_code", "input_params", "output_params", "dependencies", "model_metrics", "apis", "initial_config",
        "template", "arch", "dynamic_load_mode", "prebuild", "install_type")],
    "steps.ServiceStep": [("name", R), ("inputs", R), ("outputs", R)] + STEP_TAIL,
    "data.ServiceInputPlaceholder": [("name", R), ("model_name", R), ("model_version", None), ("envs", None),
                                     ("delay", True)],
    "steps.CreateDatasetStep": [("name", R), ("inputs", R), ("outputs", R), ("properties", R)] + STEP_TAIL,
    "steps.DatasetProperties": [("dataset_name", R), ("dataset_format", 0),
                                ("data_type", _Enum("data.DataTypeEnum.FREE_FORMAT")), ("description", None),
                                ("import_data", False), ("work_path_type", 0), ("schema", None),
                                ("import_config", None)],
    "steps.ReleaseDatasetStep": [("name", R), ("inputs", R), ("outputs", R)] + STEP_TAIL,
    "data.DatasetVersionConfig": [("version_name", None), ("version_format", "Default"),
                                  ("train_evaluate_sample_ratio", "1.00"), ("clear_hard_property", True),
                                  ("remove_sample_usage", True), ("label_task_id", None), ("label_task_type", None),
                                  ("description", None)],
    "steps.LabelingStep": [("name", R), ("inputs", R), ("outputs", R), ("properties", None)] + STEP_TAIL,
    "steps.LabelTaskProperties": [("task_type", R), ("task_name", None), ("labels", None), ("properties", None),
                                  ("auto_sync_dataset", True), ("content_labeling", True), ("description", None),
                                  ("sample_conditions", None)],
    "steps.DatasetImportStep": [("name", R), ("inputs", R), ("outputs", R), ("properties", None)] + STEP_TAIL,
    "steps.ImportDataInfo": [("annotation_format_config", None), ("excluded_labels", None),
                             ("import_annotated", False), ("import_annotations", True),
                             ("import_origin", _Enum("steps.DataOriginTypeEnum.OBS")), ("import_samples", True),
                             ("import_type", _Enum("steps.ImportTypeEnum.DIR")), ("included_labels", None),
                             ("label_format", None), ("with_column_header", False)],
    "data.MetricsConfig": [("metric_files", R), ("realtime_visualization", False), ("visualization", True)],
}


#: mloop's own parameters, keyword-only after the reference ones (so positional calls written
#: for ModelArts mean the same): name -> default.
EXTENSIONS: dict[str, list[tuple[str, Any]]] = {
    "steps.StepPolicy": [("cache", None), ("cache_expiry", None)],  # step caching
}


def resolve(path: str) -> Any:
    obj: Any = wf
    for attr in path.split("."):
        obj = getattr(obj, attr)
    return obj


@pytest.mark.parametrize("path", sorted(SIGNATURES))
def test_constructor_signature_matches_reference(path: str) -> None:
    params = list(inspect.signature(resolve(path)).parameters.values())
    extensions = EXTENSIONS.get(path, [])
    if extensions:
        tail = params[len(params) - len(extensions):]
        assert [(p.name, p.kind, p.default) for p in tail] == [
            (n, inspect.Parameter.KEYWORD_ONLY, d) for n, d in extensions], f"wf.{path}: mloop's extensions differ"
        params = params[:len(params) - len(extensions)]
    assert [p.name for p in params] == [n for n, _ in SIGNATURES[path]], f"wf.{path}: parameter names/order differ"
    for param, (name, default) in zip(params, SIGNATURES[path]):
        assert param.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, f"wf.{path}({name}) must be positional-or-keyword"
        if default is ANY:
            assert param.default is not R, f"wf.{path}({name}) must be optional"
            continue
        expected = default.resolve() if isinstance(default, _Enum) else default
        assert param.default == expected and type(param.default) is type(expected), (
            f"wf.{path}({name}) default is {param.default!r}, reference says {expected!r}")
        if isinstance(expected, enum.Enum):
            assert param.default is expected


def test_every_signature_class_is_exported() -> None:
    for path in SIGNATURES:
        module, _, name = path.rpartition(".")
        exported = getattr(wf, module).__all__ if module else wf.__all__
        assert name in exported, f"{path} is not in __all__"
