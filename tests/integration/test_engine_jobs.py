"""The engine running JobSteps in this process: the job contract, snapshots, logs, metrics,
timeouts, parallelism, retries — on real processes and a real store (SQLite, and PostgreSQL
where marked)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from helpers import (  # noqa: F401 (fixtures)
    BOTH_DATABASES, Embedded, database_url, embedded, wait_until, write_job, write_workflow,
)
from mloop.artifacts import hash_dir
from mloop.runs import execute_run, stop_run

pytestmark = pytest.mark.timeout(60)

#: A job that leaves a mark in its output folder.
MARK_RAN = "open(os.path.join(args.out, 'ran'), 'w').close()\n"

DUMP_CONTRACT = """
    seen = {
        "argv": sys.argv[1:],
        "env": {k: v for k, v in os.environ.items() if k.startswith("MLOOP_") or k == "MA_JOB_DIR"},
        "cwd": os.getcwd(),
        "file": os.path.abspath(__file__),
    }
    os.makedirs(args.model, exist_ok=True)
    with open(os.path.join(args.model, "contract.json"), "w") as fh:
        json.dump(seen, fh)
"""


class TestJobContract:
    def test_inputs_outputs_and_parameters_arrive_as_args_and_env(self, tmp_path: Path, embedded: Embedded) -> None:
        write_job(tmp_path / "prep", """
            with open(os.path.join(args.out, "data.txt"), "w") as fh:
                fh.write("rows")
        """)
        write_job(tmp_path / "code", DUMP_CONTRACT, args=("model",))
        (tmp_path / "raw").mkdir()
        flow = write_workflow(tmp_path, """
            prep = job("prep", code="prep")
            epochs = wf.Placeholder(name="epochs", placeholder_type=wf.PlaceholderType.INT, default=1)
            train = job("train", outputs=("model", "report"),
                        inputs={"data": prep.outputs["out"].as_input(),
                                "raw": wf.data.OBSPath(obs_path=str(HERE / "raw") + "/")},
                        params={"epochs": epochs, "lr": 0.5, "kind": "fast"})
            workflow = wf.Workflow(name="contract", desc="job contract", steps=[prep, train])
        """)

        done = embedded.run(flow, {"epochs": 3})

        assert done.status == "succeeded", done.why()
        train = done.steps["train"]
        data_path = done.steps["prep"].outputs["out"]["url"]
        model_path, report_path = train.outputs["model"]["url"], train.outputs["report"]["url"]
        seen = json.loads((Path(model_path) / "contract.json").read_text())
        argv, env = seen["argv"], seen["env"]
        assert f"--data={data_path}" in argv
        assert f"--raw={tmp_path / 'raw'}/" in argv
        assert f"--model={model_path}" in argv and f"--report={report_path}" in argv
        assert {"--epochs=3", "--lr=0.5", "--kind=fast"} <= set(argv)
        assert Path(data_path, "data.txt").read_text() == "rows"  # the input is the upstream output folder
        assert Path(report_path).is_dir()  # outputs exist before the job starts
        assert env["MLOOP_INPUT_DATA"] == data_path
        assert env["MLOOP_INPUT_RAW"] == f"{tmp_path / 'raw'}/"
        assert env["MLOOP_OUTPUT_MODEL"] == model_path and env["MLOOP_OUTPUT_REPORT"] == report_path
        assert (env["MLOOP_PARAM_EPOCHS"], env["MLOOP_PARAM_LR"], env["MLOOP_PARAM_KIND"]) == ("3", "0.5", "fast")
        assert env["MLOOP_RUN_ID"] == done.run.id
        assert env["MLOOP_STEP_NAME"] == "train"
        assert env["MA_JOB_DIR"] == train.workdir
        # The job runs from the snapshot of its code inside its working folder, not from code_dir.
        assert seen["cwd"].startswith(train.workdir)
        assert seen["file"].startswith(train.workdir) and not seen["file"].startswith(str(tmp_path / "code") + "/")

    def test_command_algorithm_gets_the_arguments_appended(self, tmp_path: Path, embedded: Embedded) -> None:
        write_job(tmp_path / "code", DUMP_CONTRACT, args=("model",), name="train.py")
        flow = write_workflow(tmp_path, """
            train = job("train", command="python train.py --variant=b", outputs=("model",), params={"lr": 0.1})
            workflow = wf.Workflow(name="command", desc="", steps=[train])
        """)

        done = embedded.run(flow)

        assert done.status == "succeeded", done.why()
        model_path = done.steps["train"].outputs["model"]["url"]
        argv = json.loads((Path(model_path) / "contract.json").read_text())["argv"]
        assert argv[0] == "--variant=b"  # the command's own argument first, then mloop's
        assert f"--model={model_path}" in argv[1:] and "--lr=0.1" in argv[1:]

    def test_the_job_starts_with_its_environment(self, tmp_path: Path, embedded: Embedded) -> None:
        """What an interpreter reads only at start-up (PYTHONPATH) works from the algorithm's
        environments, and the contract variables are in the process's initial environment."""
        (tmp_path / "extra").mkdir()
        (tmp_path / "extra" / "helpermod.py").write_text("VALUE = 'from PYTHONPATH'\n")
        write_job(tmp_path / "code", """
            import helpermod
            with open("/proc/self/environ", "rb") as fh:
                initial = dict(item.split(b"=", 1) for item in fh.read().split(b"\\0") if b"=" in item)
            with open(os.path.join(args.out, "env.json"), "w") as fh:
                json.dump({"helper": helpermod.VALUE, "initial": {k.decode(): v.decode() for k, v in initial.items()
                                                                  if k.startswith((b"MLOOP_", b"MY_"))}}, fh)
        """)
        flow = write_workflow(tmp_path, f"""
            algorithm = wf.BaseAlgorithm(code_dir=str(HERE / "code"), boot_file="job.py",
                                         parameters=[wf.AlgorithmParameters(name="lr", value=0.5)],
                                         environments={{"PYTHONPATH": {str(tmp_path / "extra")!r}, "MY_FLAG": "on"}})
            train = job("train", algorithm=algorithm)
            workflow = wf.Workflow(name="env", desc="", steps=[train])
        """)

        done = embedded.run(flow)

        assert done.status == "succeeded", done.why()
        seen = json.loads((Path(done.steps["train"].outputs["out"]["url"]) / "env.json").read_text())
        assert seen["helper"] == "from PYTHONPATH"
        initial = seen["initial"]
        assert initial["MY_FLAG"] == "on" and initial["MLOOP_PARAM_LR"] == "0.5"
        assert initial["MLOOP_STEP_NAME"] == "train" and initial["MLOOP_RUN_ID"] == done.run.id

    def test_stdout_and_stderr_both_land_in_the_step_log(self, tmp_path: Path, embedded: Embedded) -> None:
        write_job(tmp_path / "code", """
            print("words on stdout 4711")
            print("words on stderr 4712", file=sys.stderr)
        """)
        flow = write_workflow(tmp_path, """
            workflow = wf.Workflow(name="logs", desc="", steps=[job("talk")])
        """)

        done = embedded.run(flow)

        assert done.status == "succeeded", done.why()
        log = done.log("talk")
        assert "words on stdout 4711" in log and "words on stderr 4712" in log

    def test_running_job_keeps_using_the_code_snapshot_taken_at_launch(self, tmp_path: Path,
                                                                        embedded: Embedded) -> None:
        code = tmp_path / "code"
        write_job(code, """
            open(os.path.join(args.flags, "started"), "w").close()
            wait_for_file(os.path.join(args.flags, "go"))
            import lib
            print("lib says", lib.VALUE)
            with open(os.path.join(args.out, "value.txt"), "w") as fh:
                fh.write(lib.VALUE)
        """, args=("out", "flags"))
        (code / "lib.py").write_text('VALUE = "old code"\n')
        hash_at_launch = hash_dir(code)
        flow = write_workflow(tmp_path, """
            workflow = wf.Workflow(name="snapshot", desc="", steps=[job("train", params={"flags": str(HERE)})])
        """)
        run = embedded.create(flow)
        engine = threading.Thread(target=execute_run, args=(embedded.backend, run.id), daemon=True)
        engine.start()
        try:
            wait_until(lambda: (tmp_path / "started").exists(), 30, "the job to start")
            (code / "lib.py").write_text('VALUE = "new code"\n')
            (code / "job.py").write_text("raise SystemExit('the edited script ran')\n")
        finally:
            (tmp_path / "go").touch()
            engine.join(timeout=30)
        assert not engine.is_alive()
        done = embedded.result(run.id)

        assert done.status == "succeeded", done.why()
        assert Path(done.steps["train"].outputs["out"]["url"], "value.txt").read_text() == "old code"
        assert done.steps["train"].code_hash == hash_at_launch
        assert hash_dir(code) != hash_at_launch


class TestMetricsFiles:
    def test_float_entry_without_value_fails_the_step_naming_file_and_problem(self, tmp_path: Path,
                                                                              embedded: Embedded) -> None:
        write_job(tmp_path / "code", """
            with open(os.path.join(args.out, "metrics.json"), "w") as fh:
                json.dump([{"key": "accuracy", "title": "accuracy", "type": "float", "data": {}}], fh)
        """)
        flow = write_workflow(tmp_path, """
            workflow = wf.Workflow(name="badmetrics", desc="", steps=[job("train", metric_file="metrics.json")])
        """)

        done = embedded.run(flow)

        step = done.steps["train"]
        assert (done.status, step.status) == ("failed", "failed"), done.why()
        assert "metrics.json" in step.message
        assert "accuracy" in step.message and "value" in step.message
        assert done.metrics == []

    def test_invalid_json_fails_the_step_naming_the_file(self, tmp_path: Path, embedded: Embedded) -> None:
        write_job(tmp_path / "code", """
            with open(os.path.join(args.out, "scores.json"), "w") as fh:
                fh.write('[{"key": "accuracy", "type": "float", "data": {"value": 0.5}')
        """)
        flow = write_workflow(tmp_path, """
            train = job("train", metrics_files=["train/out/scores.json"])
            workflow = wf.Workflow(name="badjson", desc="", steps=[train])
        """)

        done = embedded.run(flow)

        step = done.steps["train"]
        assert (done.status, step.status) == ("failed", "failed"), done.why()
        assert "scores.json" in step.message and "JSON" in step.message

    def test_metrics_config_files_are_recorded(self, tmp_path: Path, embedded: Embedded) -> None:
        write_job(tmp_path / "code", """
            write_metrics(args.out, file="scores.json", accuracy=0.25, loss=1.5)
        """)
        flow = write_workflow(tmp_path, """
            train = job("train", metrics_files=["train/out/scores.json"])
            workflow = wf.Workflow(name="goodmetrics", desc="", steps=[train])
        """)

        done = embedded.run(flow)

        assert done.status == "succeeded", done.why()
        assert (done.metric("train", "accuracy"), done.metric("train", "loss")) == (0.25, 1.5)


class TestLimits:
    def test_max_execution_minutes_fails_a_step_that_runs_too_long(self, tmp_path: Path,
                                                                   embedded: Embedded) -> None:
        write_job(tmp_path / "code", """
            print("going to sleep", flush=True)
            time.sleep(60)
        """)
        flow = write_workflow(tmp_path, """
            slow = job("slow", policy=wf.steps.StepPolicy(max_execution_minutes=0.02))
            workflow = wf.Workflow(name="timeout", desc="", steps=[slow])
        """)
        began = time.monotonic()

        done = embedded.run(flow)

        assert time.monotonic() - began < 20
        step = done.steps["slow"]
        assert (done.status, step.status) == ("failed", "failed"), done.why()
        assert "timed out" in step.message and "max_execution_minutes" in step.message

    def test_a_failure_lets_running_steps_finish_but_starts_no_new_ones(self, tmp_path: Path,
                                                                        embedded: Embedded) -> None:
        write_job(tmp_path / "fail", "sys.exit('failing at once')\n")
        write_job(tmp_path / "code", "time.sleep(1)\n" + MARK_RAN)
        flow = write_workflow(tmp_path, """
            fail = job("fail", code="fail")
            slow = job("slow")
            later = job("later", depend=[slow])
            workflow = wf.Workflow(name="failfast", desc="", steps=[fail, slow, later])
        """)

        done = embedded.run(flow)

        assert done.statuses() == {"fail": "failed", "slow": "succeeded", "later": "pending"}, done.why()
        assert done.status == "failed" and "fail" in done.run.message
        assert "failing at once" in done.log("fail")

    def test_four_jobs_with_max_parallel_two_run_two_at_a_time(self, tmp_path: Path) -> None:
        # Overlap of the recorded step intervals, not wall time: a busy machine must not fail it.
        finished = self._four_sleepers(tmp_path, max_parallel=2, seconds=1.0)
        assert max_overlap(finished) == 2

    def test_max_parallel_one_runs_jobs_one_at_a_time(self, tmp_path: Path) -> None:
        finished = self._four_sleepers(tmp_path, max_parallel=1, seconds=0.3)
        spans = sorted((s.started_at, s.finished_at) for s in finished.steps.values())
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert start >= end, f"steps overlapped: {spans}"

    @staticmethod
    def _four_sleepers(tmp_path: Path, max_parallel: int, seconds: float):  # type: ignore[no-untyped-def]
        write_job(tmp_path / "code", f"time.sleep({seconds})\n")
        flow = write_workflow(tmp_path, """
            workflow = wf.Workflow(name="sleepers", desc="", steps=[job(f"sleep{i}", outputs=()) for i in range(4)])
        """)
        backend = Embedded(tmp_path / ".mloop", max_parallel=max_parallel)
        try:
            done = backend.run(flow)
        finally:
            backend.close()
        assert done.status == "succeeded", done.why()
        return done


def max_overlap(done) -> int:  # type: ignore[no-untyped-def]
    edges = []
    for s in done.steps.values():
        edges += [(s.started_at, 1), (s.finished_at, -1)]
    level = peak = 0
    for _, delta in sorted(edges, key=lambda e: (e[0], e[1])):
        level += delta
        peak = max(peak, level)
    return peak


class TestSetupProblems:
    def test_unknown_flavor_fails_the_run_before_any_job_runs(self, tmp_path: Path, embedded: Embedded) -> None:
        write_job(tmp_path / "code", MARK_RAN)
        flow = write_workflow(tmp_path, """
            first = job("first")
            big = job("big", flavor="gpu.enormous", depend=[first])
            workflow = wf.Workflow(name="flavors", desc="", steps=[first, big])
        """)

        done = embedded.run(flow)

        assert done.status == "failed", done.why()
        assert done.statuses() == {"first": "pending", "big": "failed"}
        message = done.steps["big"].message
        assert "gpu.enormous" in message and "cpu.small" in message and "modelarts.vm.cpu.2u" in message
        assert not list((tmp_path / "out").rglob("ran"))

    def test_unknown_algorithm_id_fails_the_run_naming_it(self, tmp_path: Path, embedded: Embedded) -> None:
        write_job(tmp_path / "code", MARK_RAN)
        flow = write_workflow(tmp_path, """
            first = job("first")
            other = job("other", algorithm=wf.Algorithm(algorithm_id="no-such-algo"), depend=[first])
            workflow = wf.Workflow(name="algos", desc="", steps=[first, other])
        """)

        done = embedded.run(flow)

        assert done.status == "failed", done.why()
        assert done.statuses() == {"first": "pending", "other": "failed"}
        assert "no-such-algo" in done.steps["other"].message
        assert not list((tmp_path / "out").rglob("ran"))

    def test_parameter_from_an_upstream_output_variable_is_checked_when_the_step_starts(
            self, tmp_path: Path, embedded: Embedded) -> None:
        write_job(tmp_path / "code", MARK_RAN)
        flow = write_workflow(tmp_path, """
            first = job("first")
            second = job("second", params={"address": first.outputs["out"].get_output_variable("address")},
                         depend=[first])
            workflow = wf.Workflow(name="variables", desc="", steps=[first, second])
        """)

        done = embedded.run(flow)  # used to raise from the engine and leave the run 'running'

        assert done.status == "failed", done.why()
        assert done.statuses() == {"first": "succeeded", "second": "failed"}
        assert "first" in done.steps["second"].message and "'address'" in done.steps["second"].message

    def test_model_step_refuses_a_job_output_that_holds_no_model(self, tmp_path: Path, embedded: Embedded) -> None:
        write_job(tmp_path / "code", "open(os.path.join(args.out, 'model.bin'), 'w').close()\n")
        flow = write_workflow(tmp_path, """
            train = job("train")
            register = wf.steps.ModelStep(
                name="register",
                inputs=wf.steps.ModelInput(name="model_input", data=train.outputs["out"].as_input()),
                outputs=wf.steps.ModelOutput(name="model_output", model_config=wf.steps.ModelConfig(
                    model_name="m", model_type="PyTorch")),
                depend_steps=train)
            workflow = wf.Workflow(name="not-a-model", desc="", steps=[train, register])
        """)

        done = embedded.run(flow)

        assert done.statuses() == {"train": "succeeded", "register": "failed"}, done.why()
        assert done.status == "failed"
        assert "has no TorchScript file (model.pt)" in done.steps["register"].message


@BOTH_DATABASES
class TestOnBothDatabases:
    def test_pipeline_passes_outputs_downstream_and_records_metrics(self, tmp_path: Path,
                                                                    embedded: Embedded) -> None:
        write_job(tmp_path / "code", """
            n = int(args.n)
            with open(os.path.join(args.out, "value.txt"), "w") as fh:
                fh.write(str(n * 2))
            write_metrics(args.out, accuracy=n / 10)
        """, args=("out", "n"))
        write_job(tmp_path / "use", """
            value = open(os.path.join(args.inp, "value.txt")).read()
            print("upstream value", value)
            with open(os.path.join(args.out, "got.txt"), "w") as fh:
                fh.write(value)
        """, args=("out", "inp"))
        flow = write_workflow(tmp_path, """
            n = wf.Placeholder(name="n", placeholder_type=wf.PlaceholderType.INT, default=1)
            make = job("make", params={"n": n}, metric_file="metrics.json")
            use = job("use", code="use", inputs={"inp": make.outputs["out"].as_input()})
            workflow = wf.Workflow(name="pipeline", desc="", steps=[make, use])
        """)

        done = embedded.run(flow, {"n": 4})

        assert done.statuses() == {"make": "succeeded", "use": "succeeded"}, done.why()
        assert done.status == "succeeded"
        assert Path(done.steps["use"].outputs["out"]["url"], "got.txt").read_text() == "8"
        assert "upstream value 8" in done.log("use")
        assert done.metric("make", "accuracy") == 0.4
        events = [(e.step_name, e.to_status) for e in embedded.store.list_events(done.run.id)]
        assert events.index(("make", "succeeded")) < events.index(("use", "running"))

    def test_retry_reruns_only_failed_steps_and_reuses_outputs(self, tmp_path: Path, embedded: Embedded) -> None:
        write_job(tmp_path / "code", """
            with open(os.path.join(args.here, "make_runs"), "a") as fh:
                fh.write("ran\\n")
            with open(os.path.join(args.out, "value.txt"), "w") as fh:
                fh.write("made once")
        """, args=("out", "here"))
        flaky = write_job(tmp_path / "flaky", """
            print("flaky job says it is broken")
            sys.exit(3)
        """, args=("out", "inp"))
        write_job(tmp_path / "after", "print('after ran')\n")
        flow = write_workflow(tmp_path, """
            make = job("make", params={"here": str(HERE)})
            flaky = job("flaky", code="flaky", inputs={"inp": make.outputs["out"].as_input()})
            after = job("after", code="after", depend=[flaky])
            workflow = wf.Workflow(name="retry", desc="", steps=[make, flaky, after])
        """)

        first = embedded.run(flow)

        assert first.statuses() == {"make": "succeeded", "flaky": "failed", "after": "pending"}, first.why()
        assert first.status == "failed"
        assert "exited with code 3" in first.steps["flaky"].message
        assert "flaky job says it is broken" in first.log("flaky")

        flaky.write_text(flaky.read_text().replace("sys.exit(3)", """
with open(os.path.join(args.out, "got.txt"), "w") as fh:
    fh.write(open(os.path.join(args.inp, "value.txt")).read())
"""))
        second = embedded.retry(first.run.id)

        assert second.status == "succeeded", second.why()
        assert second.run.id == first.run.id and second.run.attempt == 2
        assert {n: s.attempt for n, s in second.steps.items()} == {"make": 1, "flaky": 2, "after": 1}
        assert second.steps["make"].outputs == first.steps["make"].outputs
        assert second.steps["make"].finished_at == first.steps["make"].finished_at
        assert Path(second.steps["flaky"].outputs["out"]["url"], "got.txt").read_text() == "made once"
        assert (tmp_path / "make_runs").read_text() == "ran\n"  # the upstream job ran once


class TestStopInProcess:
    @pytest.mark.parametrize("ignores_sigterm", [False, True], ids=["plain-job", "job-ignoring-sigterm"])
    def test_stop_from_the_engines_own_process_ends_the_run_stopped(self, tmp_path: Path,
                                                                    ignores_sigterm: bool) -> None:
        """What a server (or an SDK user with a thread) does: stop_run where the engine runs.

        A job ignoring SIGTERM is killed once the grace period is over.
        """
        write_job(tmp_path / "code", f"""
            import signal
            if {ignores_sigterm}:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            open(os.path.join(args.here, "started"), "w").close()
            time.sleep(60)
        """, args=("out", "here"))
        flow = write_workflow(tmp_path, """
            workflow = wf.Workflow(name="stubborn", desc="", steps=[job("stubborn", params={"here": str(HERE)})])
        """)
        backend = Embedded(tmp_path / ".mloop", stop_grace_seconds=0.5)
        try:
            run = backend.create(flow)
            engine = threading.Thread(target=execute_run, args=(backend.backend, run.id), daemon=True)
            engine.start()
            wait_until((tmp_path / "started").exists, 30, "the job to start")
            began = time.monotonic()

            stopped = stop_run(backend.backend, run.id)

            engine.join(timeout=30)
            assert not engine.is_alive()
            done = backend.result(run.id)
        finally:
            backend.close()
        assert time.monotonic() - began < 15
        assert stopped.status == "stopped"
        assert (done.status, done.steps["stubborn"].status) == ("stopped", "stopped"), done.why()
