"""Step caching: a job whose code, inputs, parameters, environment and flavor match an
earlier succeeded job reuses its outputs and metrics; every other job says why it ran.

Real job processes, a real SQLite store; each job appends its name to ``ran.log`` (outside
its inputs and outputs), so a test sees which jobs really ran.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import (  # noqa: F401 (fixtures)
    BOTH_DATABASES, Cli, Embedded, Finished, cli, database_url, embedded, pets, write_job, write_workflow,
)

pytestmark = pytest.mark.timeout(120)

#: prep reads the raw folder and writes rows; train reads them and writes a metric.
PREP = """
    rows = sorted(os.listdir(args.raw))
    with open(os.path.join(args.out, "rows.txt"), "w") as fh:
        fh.write("\\n".join(rows) + "\\n")
    with open(os.path.join(os.environ["RAN_LOG"], "ran.log"), "a") as fh:
        fh.write("prep\\n")
"""
TRAIN = """
    rows = open(os.path.join(args.data, "rows.txt")).read().split()
    write_metrics(args.out, accuracy=0.25 * len(rows) + float(args.epochs) / 100)
    with open(os.path.join(os.environ["RAN_LOG"], "ran.log"), "a") as fh:
        fh.write("train\\n")
"""
#: A job that runs only when train's accuracy is high enough (a condition on a metric).
DEPLOY = """
    with open(os.path.join(os.environ["RAN_LOG"], "ran.log"), "a") as fh:
        fh.write("deploy\\n")
"""

FLOW = """
    epochs = wf.Placeholder(name="epochs", placeholder_type=wf.PlaceholderType.INT, default=1)
    env = {{"RAN_LOG": str(HERE)}}
    prep = job("prep", code="prep", inputs={{"raw": wf.data.OBSPath(obs_path=str(HERE / "raw") + "/")}},
               algorithm=wf.BaseAlgorithm(code_dir=str(HERE / "prep"), boot_file="job.py", environments=env),
               flavor={prep_flavor!r}, policy={prep_policy})
    train = job("train", code="train", inputs={{"data": prep.outputs["out"].as_input()}},
                metric_file="metrics.json", policy={train_policy},
                algorithm=wf.BaseAlgorithm(code_dir=str(HERE / "train"), boot_file="job.py", environments=env,
                                           parameters=[wf.AlgorithmParameters(name="epochs", value=epochs)]))
    low = wf.steps.Condition(wf.steps.ConditionTypeEnum.LT,
                             wf.steps.MetricInfo(train.outputs["out"].as_input(), "accuracy"), 0.5)
    deploy = job("deploy", code="deploy", depend=[train], policy=wf.steps.StepPolicy(skip_conditions=low),
                 algorithm=wf.BaseAlgorithm(code_dir=str(HERE / "deploy"), boot_file="job.py", environments=env))
    workflow = wf.Workflow(name="cached", desc="step caching", steps=[prep, train, deploy])
"""


def pipeline(tmp_path: Path, *, prep_flavor: str = "cpu.small", prep_policy: str = "None",
             train_policy: str = "None") -> Path:
    """The three-job pipeline, its code and its raw data (three rows) in ``tmp_path``."""
    write_job(tmp_path / "prep", PREP, args=("raw", "out"))
    write_job(tmp_path / "train", TRAIN, args=("data", "out", "epochs"))
    write_job(tmp_path / "deploy", DEPLOY)
    raw = tmp_path / "raw"
    if not raw.exists():
        raw.mkdir()
        for name in ("a", "b", "c"):
            (raw / name).write_text(name)
    return write_workflow(tmp_path, FLOW.format(prep_flavor=prep_flavor, prep_policy=prep_policy,
                                                train_policy=train_policy))


def ran(tmp_path: Path) -> list[str]:
    """The jobs that really ran so far, in order (and forget them)."""
    log = tmp_path / "ran.log"
    found = log.read_text().split() if log.exists() else []
    log.unlink(missing_ok=True)
    return found


def reason(done: Finished, step: str) -> str:
    """Why ``step`` ran instead of reusing an earlier result."""
    record = done.steps[step]
    assert record.cached_from is None, f"{step} was cached from {record.cached_from}"
    return str((record.cache_facts or {}).get("reason"))


def assert_cached(done: Finished, step: str, origin: Finished) -> None:
    record = done.steps[step]
    assert record.status == "succeeded", done.why()
    assert record.cached_from == {"run_id": origin.run.id, "step": step}, (step, record.cache_facts)
    assert record.message == f"cached from run {origin.run.id[:12]}, step {step}"
    assert record.outputs == origin.steps[step].outputs  # the earlier locations, not copies
    assert record.cache_key == origin.steps[step].cache_key


class TestHits:
    @BOTH_DATABASES
    def test_a_rerun_with_nothing_changed_reuses_every_job(self, tmp_path: Path, embedded: Embedded) -> None:
        flow = pipeline(tmp_path)
        first = embedded.run(flow)
        assert first.status == "succeeded", first.why()
        assert ran(tmp_path) == ["prep", "train", "deploy"]
        assert reason(first, "prep") == "no earlier run of this step"

        again = embedded.run(flow)

        assert again.status == "succeeded", again.why()
        assert ran(tmp_path) == []
        for step in ("prep", "train", "deploy"):
            assert_cached(again, step, first)
        # The metrics are this run's too, so the condition on accuracy held as before.
        assert again.metric("train", "accuracy") == first.metric("train", "accuracy") == 0.76
        assert again.steps["deploy"].status == "succeeded"
        assert again.steps["train"].log_path == first.steps["train"].log_path  # the log of the job that ran

    def test_a_cached_run_is_reused_from_the_job_that_ran(self, tmp_path: Path, embedded: Embedded) -> None:
        flow = pipeline(tmp_path)
        first = embedded.run(flow)
        embedded.run(flow)

        third = embedded.run(flow)

        assert ran(tmp_path) == ["prep", "train", "deploy"]  # the first run's only
        assert_cached(third, "train", first)

    def test_a_skip_by_metric_downstream_holds_on_cached_metrics(self, tmp_path: Path,
                                                                 embedded: Embedded) -> None:
        (tmp_path / "raw").mkdir()
        (tmp_path / "raw" / "only").write_text("x")  # one row: accuracy 0.26, deploy is skipped
        flow = pipeline(tmp_path)
        first = embedded.run(flow)
        assert first.steps["deploy"].status == "skipped", first.why()

        again = embedded.run(flow)

        assert_cached(again, "train", first)
        assert again.metric("train", "accuracy") == 0.26
        assert again.steps["deploy"].status == "skipped"
        assert "accuracy" in str(again.steps["deploy"].message)

    def test_an_upstream_that_reruns_to_the_same_bytes_leaves_downstream_cached(
            self, tmp_path: Path, embedded: Embedded) -> None:
        flow = pipeline(tmp_path)
        first = embedded.run(flow)
        with open(tmp_path / "prep" / "job.py", "a") as fh:
            fh.write("# a comment changes the code, not the rows\n")
        ran(tmp_path)

        again = embedded.run(flow)

        assert ran(tmp_path) == ["prep"]
        assert reason(again, "prep") == "code file 'job.py' changed"
        # prep wrote the same rows into this run's folder: train's input has the same content.
        assert again.steps["prep"].outputs != first.steps["prep"].outputs
        assert_cached(again, "train", first)


class TestMisses:
    @pytest.fixture
    def first(self, tmp_path: Path, embedded: Embedded) -> Finished:
        done = embedded.run(pipeline(tmp_path))
        assert done.status == "succeeded", done.why()
        ran(tmp_path)
        return done

    def test_changed_code_file_is_named(self, tmp_path: Path, embedded: Embedded, first: Finished) -> None:
        (tmp_path / "train" / "helper.py").write_text("X = 1\n")
        with open(tmp_path / "train" / "job.py", "a") as fh:
            fh.write("pass\n")

        again = embedded.run(tmp_path / "flow.py")

        assert ran(tmp_path) == ["train"]
        assert reason(again, "train") == "code file 'helper.py' added; code file 'job.py' changed"
        assert_cached(again, "prep", first)
        assert_cached(again, "deploy", first)  # it reads nothing train wrote: its facts are the same

    def test_changed_input_content(self, tmp_path: Path, embedded: Embedded, first: Finished) -> None:
        (tmp_path / "raw" / "d").write_text("d")

        again = embedded.run(tmp_path / "flow.py")

        assert ran(tmp_path) == ["prep", "train"]
        assert reason(again, "prep") == "input 'raw' content changed"
        assert reason(again, "train") == "input 'data' content changed"
        assert again.metric("train", "accuracy") == 1.01

    def test_changed_parameter(self, tmp_path: Path, embedded: Embedded, first: Finished) -> None:
        again = embedded.run(tmp_path / "flow.py", {"epochs": 3})

        assert ran(tmp_path) == ["train"]
        assert reason(again, "train") == "parameter 'epochs' changed (1 → 3)"
        assert again.metric("train", "accuracy") == 0.78

    def test_changed_flavor(self, tmp_path: Path, embedded: Embedded, first: Finished) -> None:
        flow = pipeline(tmp_path, prep_flavor="cpu.medium")

        again = embedded.run(flow)

        assert reason(again, "prep") == "flavor changed (cpu.small → cpu.medium)"
        assert_cached(again, "train", first)  # same rows

    def test_changed_environment(self, tmp_path: Path, embedded: Embedded, first: Finished) -> None:
        # Something this interpreter has: the job runs in it, no environment is built.
        (tmp_path / "prep" / "requirements.txt").write_text("pydantic\n")

        again = embedded.run(tmp_path / "flow.py")

        why = reason(again, "prep")
        assert "code file 'requirements.txt' added" in why
        assert "environment changed (requirements: none →" in why

    def test_expired_result(self, tmp_path: Path, embedded: Embedded, first: Finished) -> None:
        flow = pipeline(tmp_path, train_policy='wf.steps.StepPolicy(cache_expiry="0s")')

        again = embedded.run(flow)

        assert ran(tmp_path) == ["train"]
        assert reason(again, "train").startswith(f"the result of run {first.run.id[:12]}, step train expired (")
        assert reason(again, "train").endswith("old; cache_expiry is 0s)")
        assert_cached(again, "deploy", first)

    def test_deleted_output_is_a_miss_and_the_job_runs(self, tmp_path: Path, embedded: Embedded,
                                                       first: Finished) -> None:
        gone = first.steps["prep"].outputs["out"]["url"]
        shutil.rmtree(gone)

        again = embedded.run(tmp_path / "flow.py")

        assert again.status == "succeeded", again.why()
        assert ran(tmp_path) == ["prep"]
        assert reason(again, "prep") == (f"output 'out' of run {first.run.id[:12]}, step prep is gone "
                                         f"from the store ({gone})")
        assert_cached(again, "train", first)

    def test_overwritten_output_is_a_miss(self, tmp_path: Path, embedded: Embedded, first: Finished) -> None:
        rows = Path(first.steps["prep"].outputs["out"]["url"], "rows.txt")
        rows.write_text("x\ny\nz\n")  # same size, other bytes

        again = embedded.run(tmp_path / "flow.py")

        assert ran(tmp_path) == ["prep"]
        assert "step prep was changed since it was written" in reason(again, "prep")

    def test_no_cache_runs_everything_and_later_runs_reuse_it(self, tmp_path: Path, embedded: Embedded,
                                                             first: Finished) -> None:
        forced = embedded.run(tmp_path / "flow.py", cache=False)

        assert ran(tmp_path) == ["prep", "train", "deploy"]
        assert reason(forced, "prep") == "caching is off for this run (--no-cache)"
        latest = embedded.run(tmp_path / "flow.py")
        assert ran(tmp_path) == []
        assert_cached(latest, "train", forced)  # the freshest result

    def test_caching_off_for_one_step(self, tmp_path: Path, embedded: Embedded, first: Finished) -> None:
        flow = pipeline(tmp_path, train_policy="wf.steps.StepPolicy(cache=False)")

        again = embedded.run(flow)

        assert ran(tmp_path) == ["train"]
        assert reason(again, "train") == "caching is off for this step (StepPolicy cache=False)"
        assert again.steps["train"].cache_key is None
        assert_cached(again, "deploy", first)

    def test_caching_off_in_settings(self, tmp_path: Path, first: Finished) -> None:
        off = Embedded(tmp_path / ".mloop", step_cache=False)
        try:
            again = off.run(tmp_path / "flow.py")
        finally:
            off.close()

        assert ran(tmp_path) == ["prep", "train", "deploy"]
        assert reason(again, "prep") == "caching is off (the step_cache setting)"


class TestDatasetInputs:
    def test_a_new_dataset_version_is_a_miss_naming_both(self, tmp_path: Path, embedded: Embedded) -> None:
        from mloop.services.datasets import create_dataset, import_data

        create_dataset(embedded.backend, "pets", pets(tmp_path / "v1"))
        write_job(tmp_path / "code", "open(os.path.join(args.out, 'n'), 'w').write('1')\n", args=("data", "out"))
        flow = write_workflow(tmp_path, """
            train = job("train", inputs={"data": wf.data.DatasetPlaceholder(name="data")})
            workflow = wf.Workflow(name="on_pets", desc="", steps=[train])
        """)
        first = embedded.run(flow, {"data": "pets"})
        assert_cached(embedded.run(flow, {"data": "pets"}), "train", first)
        extra = tmp_path / "v2" / "cat"
        extra.mkdir(parents=True)
        shutil.copy(tmp_path / "v1" / "dog" / "dog0.png", extra / "new.png")
        import_data(embedded.backend, "pets", tmp_path / "v2")

        again = embedded.run(flow, {"data": "pets"})

        assert reason(again, "train") == "input 'data': dataset pets version v1 → pets version v2"


class TestShow:
    def test_show_says_where_each_result_came_from_or_why_it_ran(self, tmp_path: Path, cli: Cli) -> None:
        flow = pipeline(tmp_path)
        first = cli.ok("run", str(flow), "-q").out.split()[0]
        forced = cli.ok("run", str(flow), "-q", "--no-cache").out.split()[0]
        again = cli.ok("run", str(flow), "-q", "-p", "epochs=2").out.split()[0]

        shown = cli.ok("show", again).out
        assert f"prep: cached from run {forced[:12]}, step prep" in shown
        assert "train: ran: not cached because parameter 'epochs' changed (1 → 2)" in shown
        assert "cache: off for this run (--no-cache)" in cli.ok("show", forced).out
        assert "prep: ran: not cached because no earlier run of this step" in cli.ok("show", first).out
        assert cli.show(again)["steps"]["prep"]["cached_from"] == {"run_id": forced, "step": "prep"}
