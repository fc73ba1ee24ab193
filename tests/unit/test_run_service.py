"""The run service's own rules: which launcher the settings ask for, and how every door's data
paths are resolved (against the folder the person typed them in)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mloop import workflow as wf
from mloop.config import Settings
from mloop.context import open_context
from mloop.errors import ConfigError, NotSupportedYetError
from mloop.runs.service import InProcessLauncher, create_run, launcher_for, resolve_data_paths


def _spec(tmp_path: Path):  # type: ignore[no-untyped-def]
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "job.py").write_text("import sys\n")
    data = wf.data.OBSPlaceholder(name="data", object_type="directory")
    job = wf.steps.JobStep(
        name="train", algorithm=wf.BaseAlgorithm(code_dir=str(code), boot_file="job.py"),
        inputs=wf.steps.JobInput(name="data_url", data=data),
        spec=wf.steps.JobSpec(resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})))
    return wf.Workflow(name="paths", desc="", steps=[job]).compile()


class TestLauncher:
    def test_embedded_settings_run_in_this_process(self, tmp_path: Path) -> None:
        assert isinstance(launcher_for(Settings(home=tmp_path)), InProcessLauncher)

    def test_a_server_url_is_refused_until_client_mode_exists(self, tmp_path: Path) -> None:
        with pytest.raises(NotSupportedYetError, match="client mode") as caught:
            launcher_for(Settings(home=tmp_path, server_url="http://127.0.0.1:8080"))
        assert "MLOOP_SERVER_URL" in (caught.value.hint or "")

    def test_a_token_without_a_server_is_a_configuration_error(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="no server_url"):
            launcher_for(Settings(home=tmp_path, token="abc"))


class TestDataPaths:
    @pytest.mark.parametrize("given, expected", [
        ("data", "{base}/data"),
        ("./a/../data/", "{base}/data/"),
        ("{tmp}/abs/data", "{tmp}/abs/data"),  # absolute, its first folder exists here: local
        ("/no-such-bucket-xyz/data", "{obs}/no-such-bucket-xyz/data"),  # ModelArts' /bucket/ notation
        ("memory://bucket/data", "memory://bucket/data"),
        ('{"obs_url": "x"}', '{"obs_url": "x"}'),
    ])
    def test_relative_paths_resolve_against_the_doors_folder(self, tmp_path: Path, given: str,
                                                             expected: str) -> None:
        base = tmp_path / "where-typed"
        with open_context(Settings(home=tmp_path / ".mloop")) as ctx:
            out = resolve_data_paths(ctx, _spec(tmp_path), {"data": given.replace("{tmp}", str(tmp_path))}, str(base))
            obs = str(ctx.settings.resolved_obs_root).rstrip("/")
        assert out["data"] == expected.replace("{base}", str(base)).replace("{tmp}", str(tmp_path)).replace("{obs}", obs)

    def test_no_base_folder_leaves_values_as_given(self, tmp_path: Path) -> None:
        with open_context(Settings(home=tmp_path / ".mloop")) as ctx:
            assert resolve_data_paths(ctx, _spec(tmp_path), {"data": "rel"}, None) == {"data": "rel"}

    def test_the_created_run_records_the_resolved_path(self, tmp_path: Path) -> None:
        with open_context(Settings(home=tmp_path / ".mloop")) as ctx:
            run = create_run(ctx, _spec(tmp_path), {"data": "inputs"}, base_dir=str(tmp_path / "cwd"))
        assert run.params["data"] == {"obs_url": str(tmp_path / "cwd" / "inputs")}


class TestQueries:
    """Filters that would quietly match nothing are refused, naming what exists (issue 9, item 12)."""

    def test_an_unknown_status_is_refused_with_the_known_ones(self, tmp_path: Path) -> None:
        from mloop.errors import BadArgumentError
        from mloop.runs import list_runs

        with open_context(Settings(home=tmp_path / ".mloop")) as ctx:
            with pytest.raises(BadArgumentError, match="no run status 'bogus'") as caught:
                list_runs(ctx, status=["running", "bogus"])
        assert caught.value.exit_code == 2 and "waiting_input" in (caught.value.hint or "")

    def test_an_unknown_workflow_is_refused_naming_the_known_ones(self, tmp_path: Path) -> None:
        from mloop.errors import NotFoundError
        from mloop.runs import list_runs

        with open_context(Settings(home=tmp_path / ".mloop")) as ctx:
            create_run(ctx, _spec(tmp_path), {"data": "x"})
            assert [r.workflow_name for r in list_runs(ctx, workflow="paths")] == ["paths"]
            with pytest.raises(NotFoundError, match="no workflow named 'nosuch'") as caught:
                list_runs(ctx, workflow="nosuch")
        assert "workflows: paths" in (caught.value.hint or "")

    def test_metrics_of_an_unknown_step_are_refused_naming_the_steps(self, tmp_path: Path) -> None:
        from mloop.errors import NotFoundError
        from mloop.runs import run_metrics

        with open_context(Settings(home=tmp_path / ".mloop")) as ctx:
            run = create_run(ctx, _spec(tmp_path), {"data": "x"})
            assert run_metrics(ctx, run.id, "train") == []
            with pytest.raises(NotFoundError, match="no step 'nope'") as caught:
                run_metrics(ctx, run.id, "nope")
        assert "train" in (caught.value.hint or "")


@pytest.mark.parametrize("value, shown", [
    ({"type": "dataset", "dataset_name": "digits", "version_name": "v2", "samples": 1797},
     "dataset digits:v2 (1797 samples"),
    ({"type": "service", "service_name": "mnist", "model_name": "mnist", "model_version": "3",
      "variables": {"access_address": "http://127.0.0.1:9000"}}, "service mnist serving mnist:3 at http://127.0.0.1:9000"),
    ({"type": "label_task", "dataset_name": "pets", "task_name": "t1", "version_name": "v4"},
     "labeling task pets:t1, labeled version v4"),
    ({"type": "model", "name": "m", "version": "2"}, "model m:2"),
    ({"type": "obs", "url": "/data/out/"}, "/data/out/"),
    ({"type": "bool", "value": True}, "True"),
    ({"type": "other", "a": 1}, '{"type": "other", "a": 1}'),
])
def test_show_names_every_kind_of_output(value: dict[str, object], shown: str) -> None:
    """`mloop show` printed None for dataset, release and service outputs (issue 9, item 14)."""
    from mloop.commands.remote import output_text as _output_text

    text = _output_text(value)
    assert shown in text and "None" not in text
