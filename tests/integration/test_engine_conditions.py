"""Skips and branches: skip conditions on placeholders and metrics, skip propagation,
ConditionStep branches and DataConsumptionSelector, on real runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import Embedded, database_url, embedded, write_job, write_workflow  # noqa: F401 (fixtures)

pytestmark = pytest.mark.timeout(60)

#: A job that leaves a mark in its output folder, so a skipped step provably did not run.
MARK = """
with open(os.path.join(args.out, "ran.txt"), "w") as fh:
    fh.write(os.environ["MLOOP_STEP_NAME"])
"""


def ran(tmp_path: Path) -> set[str]:
    """The steps whose job really ran (their mark exists)."""
    return {p.read_text() for p in (tmp_path / "out").rglob("ran.txt")} if (tmp_path / "out").exists() else set()


class TestSkipByParameter:
    @pytest.mark.parametrize(("skip", "expected"), [(True, "skipped"), (False, "succeeded")])
    def test_bool_placeholder_decides_whether_the_step_runs(self, tmp_path: Path, embedded: Embedded,
                                                            skip: bool, expected: str) -> None:
        write_job(tmp_path / "code", MARK)
        flow = write_workflow(tmp_path, """
            train = job("train", policy=skip_if_true("skip_train"))
            workflow = wf.Workflow(name="skip-param", desc="", steps=[train])
        """)

        done = embedded.run(flow, {"skip_train": skip})

        assert done.status == "succeeded", done.why()
        step = done.steps["train"]
        assert step.status == expected
        assert ran(tmp_path) == (set() if skip else {"train"})
        if skip:
            assert step.outputs_skipped
            assert "skip condition holds" in step.message and "skip_train" in step.message

    def test_bool_placeholder_given_as_text_on_the_command_line_form(self, tmp_path: Path,
                                                                     embedded: Embedded) -> None:
        write_job(tmp_path / "code", MARK)
        flow = write_workflow(tmp_path, """
            workflow = wf.Workflow(name="skip-text", desc="", steps=[job("train", policy=skip_if_true("skip"))])
        """)

        done = embedded.run(flow, {"skip": "true"})  # what `mloop run -p skip=true` passes

        assert done.steps["train"].status == "skipped", done.why()
        assert done.run.params["skip"] is True


class TestSkipByMetric:
    @pytest.mark.parametrize(("accuracy", "expected"), [(0.3, "skipped"), (0.9, "succeeded"), (0, "skipped")])
    def test_metric_below_threshold_skips_the_step(self, tmp_path: Path, embedded: Embedded, accuracy: float,
                                                   expected: str) -> None:
        write_job(tmp_path / "train", "write_metrics(args.out, accuracy=float(args.acc))\n", args=("out", "acc"))
        write_job(tmp_path / "code", MARK)
        flow = write_workflow(tmp_path, f"""
            train = job("train", code="train", params={{"acc": {accuracy!r}}}, metric_file="metrics.json")
            too_weak = wf.steps.Condition(wf.steps.ConditionTypeEnum.LT,
                                          wf.steps.MetricInfo(train.outputs["out"].as_input(), "accuracy"), 0.5)
            register = job("register", depend=[train], policy=wf.steps.StepPolicy(skip_conditions=too_weak))
            workflow = wf.Workflow(name="skip-metric", desc="", steps=[train, register])
        """)

        done = embedded.run(flow)

        assert done.status == "succeeded", done.why()
        assert done.metric("train", "accuracy") == accuracy
        step = done.steps["register"]
        assert step.status == expected, done.why()
        assert ran(tmp_path) == (set() if expected == "skipped" else {"register"})
        if expected == "skipped":
            # The value compared is shown: 0 is a value (the 1.0.0 SDK took it for "missing").
            assert f"train.accuracy (={float(accuracy)!r})" in step.message, step.message

    def test_metric_of_zero_equals_zero(self, tmp_path: Path, embedded: Embedded) -> None:
        write_job(tmp_path / "train", "write_metrics(args.out, errors=0)\n")
        write_job(tmp_path / "code", MARK)
        flow = write_workflow(tmp_path, """
            train = job("train", code="train", metric_file="metrics.json")
            perfect = wf.steps.Condition(wf.steps.ConditionTypeEnum.EQ,
                                         wf.steps.MetricInfo(train.outputs["out"].as_input(), "errors"), 0)
            debug = job("debug", depend=[train], policy=wf.steps.StepPolicy(skip_conditions=perfect))
            workflow = wf.Workflow(name="zero", desc="", steps=[train, debug])
        """)

        done = embedded.run(flow)

        assert done.statuses() == {"train": "succeeded", "debug": "skipped"}, done.why()

    def test_missing_metric_key_fails_the_gated_step(self, tmp_path: Path, embedded: Embedded) -> None:
        write_job(tmp_path / "train", "write_metrics(args.out, loss=0.1)\n")
        write_job(tmp_path / "code", MARK)
        flow = write_workflow(tmp_path, """
            train = job("train", code="train", metric_file="metrics.json")
            cond = wf.steps.Condition(wf.steps.ConditionTypeEnum.LT,
                                      wf.steps.MetricInfo(train.outputs["out"].as_input(), "accuracy"), 0.5)
            gated = job("gated", depend=[train], policy=wf.steps.StepPolicy(skip_conditions=cond))
            workflow = wf.Workflow(name="nokey", desc="", steps=[train, gated])
        """)

        done = embedded.run(flow)

        assert done.statuses() == {"train": "succeeded", "gated": "failed"}, done.why()
        assert "accuracy" in done.steps["gated"].message and "loss" in done.steps["gated"].message


class TestSkipPropagation:
    def test_step_whose_only_dependency_was_skipped_is_skipped(self, tmp_path: Path, embedded: Embedded) -> None:
        write_job(tmp_path / "code", MARK + "\nif args.inp: print('input', args.inp)\n", args=("out", "inp"))
        flow = write_workflow(tmp_path, """
            a = job("a", policy=skip_if_true("skip_a", default=True))
            b = job("b", inputs={"inp": a.outputs["out"].as_input()})
            c = job("c", depend=[b])
            other = job("other")
            mixed = job("mixed", depend=[a, other])
            workflow = wf.Workflow(name="propagate", desc="", steps=[a, b, c, other, mixed])
        """)

        done = embedded.run(flow)

        assert done.status == "succeeded", done.why()
        assert done.statuses() == {"a": "skipped", "b": "skipped", "c": "skipped", "other": "succeeded",
                                   "mixed": "succeeded"}
        assert "upstream" in done.steps["b"].message and done.steps["b"].outputs_skipped
        assert ran(tmp_path) == {"other", "mixed"}


class TestConditionStep:
    @pytest.mark.parametrize(("threshold", "taken", "lost"), [(0.5, "deploy", "retrain"), (0.9, "retrain", "deploy")])
    def test_condition_runs_one_branch_and_skips_the_other_with_its_downstream(
            self, tmp_path: Path, embedded: Embedded, threshold: float, taken: str, lost: str) -> None:
        write_job(tmp_path / "train", "write_metrics(args.out, accuracy=0.8)\n")
        write_job(tmp_path / "code", MARK)
        flow = write_workflow(tmp_path, """
            train = job("train", code="train", metric_file="metrics.json")
            good_enough = wf.steps.Condition(
                wf.steps.ConditionTypeEnum.GTE, wf.steps.MetricInfo(train.outputs["out"].as_input(), "accuracy"),
                wf.Placeholder(name="threshold", placeholder_type=wf.PlaceholderType.FLOAT, default=0.5))
            gate = wf.steps.ConditionStep(name="gate", conditions=good_enough, if_then_steps=["deploy"],
                                          else_then_steps=["retrain"], depend_steps=[train])
            deploy = job("deploy", depend=[gate])
            notify = job("notify", depend=[deploy])
            retrain = job("retrain")  # a branch waits for its condition step even without depend_steps
            workflow = wf.Workflow(name="branches", desc="", steps=[train, gate, deploy, notify, retrain])
        """)

        done = embedded.run(flow, {"threshold": threshold})

        assert done.status == "succeeded", done.why()
        statuses = done.statuses()
        assert statuses["gate"] == "succeeded"
        assert statuses[taken] == "succeeded" and statuses[lost] == "skipped"
        assert statuses["notify"] == ("succeeded" if taken == "deploy" else "skipped")
        assert ran(tmp_path) == ({"deploy", "notify"} if taken == "deploy" else {"retrain"})
        assert ("if branch" if taken == "deploy" else "else branch") in done.steps["gate"].message
        assert "gate" in done.steps[lost].message


class TestDataConsumptionSelector:
    @pytest.mark.parametrize("branch", ["a", "b"])
    def test_consumer_receives_the_output_of_the_branch_that_ran(self, tmp_path: Path, embedded: Embedded,
                                                                 branch: str) -> None:
        write_job(tmp_path / "train", """
            with open(os.path.join(args.out, "model.txt"), "w") as fh:
                fh.write("model from " + os.environ["MLOOP_STEP_NAME"])
        """)
        write_job(tmp_path / "code", """
            print("consuming", args.model_in)
            with open(os.path.join(args.out, "used.txt"), "w") as fh:
                fh.write(args.model_in + "\\n" + open(os.path.join(args.model_in, "model.txt")).read())
        """, args=("out", "model_in"))
        flow = write_workflow(tmp_path, """
            train_a = job("train_a", code="train", policy=skip_if_true("skip_a"))
            train_b = job("train_b", code="train", policy=skip_if_true("skip_b"))
            choose = wf.data.DataConsumptionSelector(
                data_list=[train_a.outputs["out"].as_input(), train_b.outputs["out"].as_input()])
            use = job("use", inputs={"model_in": choose}, depend=[train_a, train_b])
            workflow = wf.Workflow(name="selector", desc="", steps=[train_a, train_b, use])
        """)

        done = embedded.run(flow, {"skip_a": branch != "a", "skip_b": branch != "b"})

        assert done.status == "succeeded", done.why()
        other = "b" if branch == "a" else "a"
        assert done.steps[f"train_{branch}"].status == "succeeded"
        assert done.steps[f"train_{other}"].status == "skipped"
        produced = done.steps[f"train_{branch}"].outputs["out"]["url"]
        path, content = Path(done.steps["use"].outputs["out"]["url"], "used.txt").read_text().splitlines()
        assert path == produced
        assert content == f"model from train_{branch}"
        assert done.steps["use"].inputs["values"]["model_in"] == produced
