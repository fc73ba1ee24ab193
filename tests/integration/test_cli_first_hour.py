"""Issue 9, the first hour of a new user: what `mloop` says when something is not as it
should be (validate's pre-flight, partial runs' missing inputs, register errors, `show`'s
outputs, tables on an 80-column terminal). Real `mloop` subprocesses through :class:`Cli`."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import Cli, cli, database_url, write_job, write_workflow  # noqa: F401 (fixtures)

pytestmark = pytest.mark.timeout(120)


class TestValidateRunsThePreflightChecks:
    """Item 18: `validate` said "ok" for what `run` then refused."""

    def test_missing_code_dir_and_unknown_flavor_are_refused_like_a_run_refuses_them(
            self, tmp_path: Path, cli: Cli) -> None:
        write_job(tmp_path / "code", "pass")
        write_workflow(tmp_path, """
            a = job("a", code="nosuch")
            b = job("b", flavor="cpu.huge")
            c = job("c")
            workflow = wf.Workflow(name="pre", desc="", steps=[a, b, c])
        """)

        result = cli("validate", "flow.py")

        assert result.code == 2, str(result)
        assert "steps[a]" in result.err and "nosuch" in result.err and "not a folder" in result.err
        assert "steps[b]" in result.err and "unknown resource flavor 'cpu.huge'" in result.err
        assert "steps[c]" not in result.err
        assert not (tmp_path / ".mloop").exists()  # nothing started, nothing created
        assert not (tmp_path / "out").exists()

    def test_gpu_flavor_on_a_machine_without_one_warns_but_validates(self, tmp_path: Path, cli: Cli) -> None:
        write_job(tmp_path / "code", "pass")
        write_workflow(tmp_path, """
            workflow = wf.Workflow(name="gpu", desc="", steps=[job("train", flavor="gpu.1")])
        """)

        result = cli("validate", "flow.py", MLOOP_GPUS="0")
        assert result.code == 0, str(result)
        assert "ok" in result.out
        assert "warning" in result.err and "'gpu.1'" in result.err and "GPU" in result.err

        assert "warning" not in cli("validate", "flow.py", MLOOP_GPUS="1").err
        ran = cli("run", "flow.py", "-q", MLOOP_GPUS="0")  # warned before running, and runs
        assert ran.code == 0, str(ran)
        assert "'gpu.1'" in ran.err


class TestPartialRunInputs:
    """Item 13: `--steps evaluate` ran evaluate on train's never-written output folder."""

    @pytest.fixture
    def flow(self, tmp_path: Path) -> None:
        write_job(tmp_path / "train", """
            with open(os.path.join(args.out, "value.txt"), "w") as fh:
                fh.write("trained in " + args.out)
        """)
        write_job(tmp_path / "evaluate", """
            print("evaluate read", open(os.path.join(args.model, "value.txt")).read())
        """, args=("out", "model"))
        write_workflow(tmp_path, """
            train = job("train", code="train")
            evaluate = job("evaluate", code="evaluate", inputs={"model": train.outputs["out"].as_input()})
            workflow = wf.Workflow(name="partial", desc="", steps=[train, evaluate])
        """)

    def test_missing_upstream_output_is_refused_naming_it(self, cli: Cli, flow: None) -> None:
        result = cli("run", "flow.py", "--steps", "evaluate")

        assert result.code == 2, str(result)
        assert "train.out" in result.err and "evaluate" in result.err and "--from-run" in result.err
        assert cli.runs() == []

    def test_from_run_takes_the_recorded_outputs_of_that_run(self, tmp_path: Path, cli: Cli, flow: None) -> None:
        first = cli("run", "flow.py", "-q")
        assert first.code == 0, str(first)
        first_id = first.out.strip()
        train_out = cli.show(first_id)["steps"]["train"]["outputs"]["out"]

        partial = cli("run", "flow.py", "-q", "--steps", "evaluate", "--from-run", first_id[:8])

        assert partial.code == 0, str(partial)
        partial_id = partial.out.strip()
        shown = cli.show(partial_id)
        assert set(shown["steps"]) == {"evaluate"}
        assert f"evaluate read trained in {tmp_path / 'out' / first_id / 'train' / 'out'}" in cli.ok("logs", partial_id, "evaluate").out
        assert shown["run"]["origin"]["from_run"]["steps"]["train"]["out"] == train_out

        # A run in which train did not run can't provide its output: refused, naming it.
        again = cli("run", "flow.py", "--steps", "evaluate", "--from-run", partial_id)
        assert again.code == 2, str(again)
        assert "train" in again.err and partial_id in again.err


class TestRegisterNotTorchScript:
    """Item 15: a file that is not TorchScript was reported as missing."""

    @pytest.mark.parametrize("content, what", [
        (b"just some text\n", "not a zip archive"),
        (b"\x80\x02}q\x00.", "a pickle"),
        ("zip-data.pkl", "a torch.save() archive"),
    ])
    def test_the_error_says_what_the_file_is_and_how_it_was_checked(
            self, tmp_path: Path, cli: Cli, content: bytes | str, what: str) -> None:
        import zipfile

        model = tmp_path / "model"
        model.mkdir()
        if isinstance(content, str):
            with zipfile.ZipFile(model / "model.pt", "w") as archive:
                archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        else:
            (model / "model.pt").write_bytes(content)

        result = cli("model", "register", "net", "--from", "model", "--type", "torchscript")

        assert result.code == 2, str(result)
        assert "model.pt is not TorchScript" in result.err and what in result.err
        assert "code/ and constants.pkl" in result.err  # how it was checked
        assert "has no" not in result.err  # not "missing"

    def test_a_file_given_for_the_folder_is_called_a_file(self, tmp_path: Path, cli: Cli) -> None:
        (tmp_path / "model").mkdir()
        (tmp_path / "model" / "model.pt").write_bytes(b"text")

        result = cli("model", "register", "net", "--from", "model/model.pt", "--type", "torchscript")

        assert result.code == 2, str(result)
        assert "is a file" in result.err and "--from model" in result.err and "does not exist" not in result.err


class TestTablesOn80Columns:
    """Item 21: on an 80-column terminal run ids and URLs were cut or wrapped mid-word."""

    @staticmethod
    def whole_on_one_line(text: str, *values: str) -> None:
        lines = text.splitlines()
        assert all(len(line) <= 80 for line in lines), text
        for value in values:
            assert any(value in line for line in lines), f"{value!r} is not whole on one line:\n{text}"

    def test_runs_and_flavors(self, tmp_path: Path, cli: Cli) -> None:
        write_job(tmp_path / "code", "pass")
        write_workflow(tmp_path, """
            long = job("train_the_model_with_a_long_name", script="nosuch.py")
            workflow = wf.Workflow(name="a-rather-long-workflow-name-for-the-table", desc="", steps=[long])
        """)
        for _ in range(2):
            assert cli("run", "flow.py", "-q").code == 1  # failed at pre-flight, with a long message
        ids = [r["id"][:12] for r in cli.runs()]

        listing = cli.ok("runs", COLUMNS="80").out
        self.whole_on_one_line(listing, *ids)
        assert "…" in listing  # the free text gave way

        from mloop.config import Settings

        flavors = cli.ok("flavors", COLUMNS="80").out
        self.whole_on_one_line(flavors, *Settings().flavors)

    def test_service_list(self, tmp_path: Path, cli: Cli) -> None:
        from mloop.config import Settings
        from mloop.runs import open_backend

        names = ["mnist-classifier-production", "sentiment-analysis-canary"]
        with open_backend(Settings(home=cli.home)) as backend:
            for i, name in enumerate(names):
                rec = backend.store.services.create(name, host="127.0.0.1", log_path=str(tmp_path / f"{i}.log"))
                backend.store.services.update(rec.id, status="stopped", url=f"http://127.0.0.1:{54321 + i}",
                                              model_name="a-model-with-a-long-name", model_version=str(12 + i),
                                              restarts=3)
        listing = cli.ok("service", "list", COLUMNS="80").out
        self.whole_on_one_line(listing, *names, "http://127.0.0.1:54321", "http://127.0.0.1:54322",
                               "a-model-with-a-long-name:12", "a-model-with-a-long-name:13")

    def test_a_failed_steps_message_and_hint_are_printed_whole_after_the_live_table(
            self, tmp_path: Path, cli: Cli) -> None:
        write_job(tmp_path / "code", "pass")
        script = "a_boot_file_with_a_long_name_that_is_not_there_" + "x" * 40 + ".py"
        write_workflow(tmp_path, f"""
            workflow = wf.Workflow(name="hint", desc="", steps=[job("train", script={script!r})])
        """)

        # FORCE_COLOR makes rich treat the pipe as a terminal: the live table is drawn.
        result = cli("run", "flow.py", COLUMNS="80", FORCE_COLOR="1")

        assert result.code == 1, str(result)
        assert "┃ note" in result.out and "…" in result.out  # the live table, its note cut
        self.whole_on_one_line(result.out.split("└")[0], "train")
        after = result.out.split("┘")[-1]
        assert f"boot_file '{script}' is not in" in after.replace("\n", "")  # whole, after the table
