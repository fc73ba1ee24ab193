"""The ``mloop`` command end to end: real subprocesses, a real home folder per test."""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from helpers import (  # noqa: F401 (fixtures)
    BOTH_DATABASES, Cli, cli, database_url, kill_if_alive, process_gone, wait_until, write_job, write_workflow,
)

pytestmark = pytest.mark.timeout(120)


def only_run(cli: Cli) -> dict[str, Any]:
    runs = cli.runs()
    assert len(runs) == 1, runs
    return runs[0]


class TestHappyPath:
    def test_run_then_runs_show_logs_and_metrics_report_what_the_run_did(self, tmp_path: Path, cli: Cli) -> None:
        write_job(tmp_path / "train", """
            n = int(args.n)
            print(f"hello from train n={n}")
            with open(os.path.join(args.out, "value.txt"), "w") as fh:
                fh.write(str(n * 2))
            with open(os.path.join(args.out, "metrics.json"), "w") as fh:
                json.dump([
                    {"key": "accuracy", "title": "accuracy", "type": "float", "data": {"value": n / 10}},
                    {"key": "loss", "title": "loss", "type": "line chart", "data": {
                        "x_axis": [{"title": "step", "value": [1, 2, 3]}],
                        "y_axis": [{"title": "value", "value": [0.9, 0.5, 0.25]}]}},
                ], fh)
        """, args=("out", "n"))
        write_job(tmp_path / "evaluate", """
            print("evaluate read", open(os.path.join(args.model, "value.txt")).read())
            print("labels:", open(os.path.join(args.data, "labels.txt")).read())
        """, args=("out", "model", "data"))
        (tmp_path / "dataset").mkdir()
        (tmp_path / "dataset" / "labels.txt").write_text("cat,dog")
        write_workflow(tmp_path, """
            n = wf.Placeholder(name="n", placeholder_type=wf.PlaceholderType.INT, default=1)
            data = wf.data.OBSPlaceholder(name="data", object_type="directory")
            train = job("train", code="train", params={"n": n}, metric_file="metrics.json")
            evaluate = job("evaluate", code="evaluate", inputs={"model": train.outputs["out"].as_input(),
                                                                "data": data})
            workflow = wf.Workflow(name="happy", desc="the happy path", steps=[train, evaluate])
        """)

        result = cli("run", "flow.py", "-p", "n=7", "-p", "data=./dataset/")

        assert result.code == 0, str(result)
        assert "succeeded" in result.out
        run = only_run(cli)
        assert (run["workflow_name"], run["status"]) == ("happy", "succeeded")
        assert run["params"] == {"n": 7, "data": {"obs_url": f"{tmp_path / 'dataset'}/"}}
        run_id = run["id"]

        listing = cli.ok("runs").out
        assert run_id[:12] in listing and "happy" in listing and "succeeded" in listing

        shown = cli.ok("show", run_id[:8]).out
        assert run_id in shown and "n=7" in shown
        for line in ("train", "evaluate"):
            assert any(line in row and "succeeded" in row for row in shown.splitlines()), shown

        assert "hello from train n=7" in cli.ok("logs", run_id, "train").out
        every_log = cli.ok("logs", run_id[:8]).out  # all steps, each line prefixed with its step
        assert "[train] hello from train n=7" in every_log
        assert "[evaluate] evaluate read 14" in every_log and "[evaluate] labels: cat,dog" in every_log

        metrics = cli.ok("metrics", run_id).out
        assert any("accuracy" in row and "0.7" in row for row in metrics.splitlines()), metrics
        assert any("loss" in row and "3 points, last 0.25" in row for row in metrics.splitlines()), metrics


def write_three_steps(tmp_path: Path) -> Path:
    """prep -> broken -> after; ``broken`` prints a distinctive line and exits 3."""
    write_job(tmp_path / "prep", """
        with open(os.path.join(args.here, "prep_runs"), "a") as fh:
            fh.write("ran\\n")
        with open(os.path.join(args.out, "value.txt"), "w") as fh:
            fh.write("prepared")
    """, args=("out", "here"))
    broken = write_job(tmp_path / "broken", """
        print("loading", args.inp)
        print("KABOOM-7731 the data is all wrong", flush=True)
        sys.exit(3)
    """, args=("out", "inp"))
    write_job(tmp_path / "after", "print('after ran')\n")
    write_workflow(tmp_path, """
        prep = job("prep", code="prep", params={"here": str(HERE)})
        broken = job("broken", code="broken", inputs={"inp": prep.outputs["out"].as_input()})
        after = job("after", code="after", depend=[broken])
        workflow = wf.Workflow(name="fails", desc="", steps=[prep, broken, after])
    """)
    return broken


class TestFailureAndRetry:
    def test_failed_run_exits_nonzero_naming_the_step_and_its_last_log_lines(self, tmp_path: Path,
                                                                            cli: Cli) -> None:
        write_three_steps(tmp_path)

        result = cli("run", "flow.py", "--follow")

        assert result.code != 0, str(result)
        assert "[broken] loading" in result.out  # --follow streams job output, prefixed with the step
        assert "step 'broken' failed" in result.text
        assert "KABOOM-7731 the data is all wrong" in result.text
        assert "exited with code 3" in result.text
        run = only_run(cli)
        assert run["status"] == "failed"
        steps = cli.show(run["id"])["steps"]
        assert {n: s["status"] for n, s in steps.items()} == {"prep": "succeeded", "broken": "failed",
                                                              "after": "pending"}
        assert steps["broken"]["exit_code"] == 3

    def test_quiet_run_prints_the_run_id_even_when_it_fails(self, tmp_path: Path, cli: Cli) -> None:
        write_three_steps(tmp_path)

        result = cli("run", "flow.py", "-q")

        assert result.code != 0, str(result)
        assert result.out.strip() == only_run(cli)["id"]  # alone on stdout, for CI logs and scripts

    @BOTH_DATABASES
    def test_retry_after_fixing_the_script_reruns_only_the_failed_step_and_what_follows(self, tmp_path: Path,
                                                                                       cli: Cli) -> None:
        broken = write_three_steps(tmp_path)
        assert cli("run", "flow.py").code != 0
        run_id = only_run(cli)["id"]
        before = cli.show(run_id)["steps"]

        broken.write_text(broken.read_text().replace("sys.exit(3)", "print('fixed, read', "
                                                     "open(os.path.join(args.inp, 'value.txt')).read())"))
        result = cli("retry", run_id[:10])

        assert result.code == 0, str(result)
        shown = cli.show(run_id)
        steps = shown["steps"]
        assert shown["run"]["status"] == "succeeded" and shown["run"]["attempt"] == 2
        assert {n: (s["status"], s["attempt"]) for n, s in steps.items()} == {
            "prep": ("succeeded", 1), "broken": ("succeeded", 2), "after": ("succeeded", 1)}
        assert steps["prep"]["outputs"] == before["prep"]["outputs"]
        assert steps["prep"]["finished_at"] == before["prep"]["finished_at"]
        assert (tmp_path / "prep_runs").read_text() == "ran\n"  # the upstream job did not run again
        assert "fixed, read prepared" in Path(steps["broken"]["log_path"]).read_text()


class TestPlaceholderValues:
    @pytest.mark.parametrize(("args", "expected"), [
        (["-p", "epochs=abc", "-p", "lr=0.1"], ["epochs", "INT", "'abc'"]),
        (["-p", "epoch=3", "-p", "lr=0.1"], ["epoch", "no placeholder named", "epochs"]),
        (["-p", "mode=turbo", "-p", "lr=0.1"], ["mode", "'turbo'", "fast", "slow"]),
        ([], ["lr", "FLOAT", "no value"]),
    ], ids=["wrong-type", "unknown-name", "enum-outside-list", "missing-required"])
    def test_bad_value_exits_2_naming_the_placeholder_and_records_no_run(self, tmp_path: Path, cli: Cli,
                                                                         args: list[str],
                                                                         expected: list[str]) -> None:
        write_job(tmp_path / "code", "print('must not run')\n", args=("out", "epochs", "mode", "lr"))
        write_workflow(tmp_path, """
            epochs = wf.Placeholder(name="epochs", placeholder_type=wf.PlaceholderType.INT, default=1)
            mode = wf.Placeholder(name="mode", placeholder_type=wf.PlaceholderType.ENUM, default="fast",
                                  enum_list=["fast", "slow"])
            lr = wf.Placeholder(name="lr", placeholder_type=wf.PlaceholderType.FLOAT)
            train = job("train", params={"epochs": epochs, "mode": mode, "lr": lr})
            workflow = wf.Workflow(name="values", desc="", steps=[train])
        """)

        result = cli("run", "flow.py", *args)

        assert result.code == 2, str(result)
        for fragment in expected:
            assert fragment in result.err, f"{fragment!r} missing from:\n{result}"
        assert cli.runs() == []
        assert not (tmp_path / "out").exists()


class TestPartialRuns:
    @pytest.fixture
    def abc(self, tmp_path: Path) -> None:
        write_job(tmp_path / "code", """
            with open(os.path.join(args.out, "ran.txt"), "w") as fh:
                fh.write(os.environ["MLOOP_STEP_NAME"])
        """)
        write_workflow(tmp_path, """
            a = job("a")
            lr = wf.Placeholder(name="lr", placeholder_type=wf.PlaceholderType.FLOAT)  # no default; used by b
            b = job("b", depend=[a], params={"lr": lr})
            c = job("c", depend=[b])
            workflow = wf.Workflow(name="partial", desc="", steps=[a, b, c],
                                   policy=wf.policy.Policy(scenes=[wf.policy.Scene("just_b", [b])]))
        """)

    @staticmethod
    def ran(tmp_path: Path, run_id: str) -> set[str]:
        return {p.read_text() for p in (tmp_path / "out" / run_id).rglob("ran.txt")}

    def test_steps_option_runs_only_those_steps(self, tmp_path: Path, cli: Cli, abc: None) -> None:
        result = cli("run", "flow.py", "-q", "--steps", "a,c")  # b's placeholder needs no value: b does not run
        assert result.code == 0, str(result)
        run_id = result.out.strip()
        assert set(cli.show(run_id)["steps"]) == {"a", "c"}
        assert self.ran(tmp_path, run_id) == {"a", "c"}

    def test_unknown_step_name_is_refused(self, tmp_path: Path, cli: Cli, abc: None) -> None:
        result = cli("run", "flow.py", "--steps", "a,zzz")
        assert result.code == 2, str(result)
        assert "zzz" in result.err and "a, b, c" in result.err
        assert cli.runs() == []

    def test_scene_runs_the_steps_it_names(self, tmp_path: Path, cli: Cli, abc: None) -> None:
        result = cli("run", "flow.py", "-q", "--scene", "just_b", "-p", "lr=0.1")
        assert result.code == 0, str(result)
        run_id = result.out.strip()
        assert {n: s["status"] for n, s in cli.show(run_id)["steps"].items()} == {"b": "succeeded"}
        assert self.ran(tmp_path, run_id) == {"b"}


#: A job that starts a child process, records both pids, then sleeps (until stopped) on attempt 1.
SLEEPER = """
if os.environ["MLOOP_ATTEMPT"] == "1":
    child = subprocess.Popen(["sleep", "60"])
    with open(os.path.join(args.here, "pids.tmp"), "w") as fh:
        json.dump({"job": os.getpid(), "child": child.pid}, fh)
    os.replace(os.path.join(args.here, "pids.tmp"), os.path.join(args.here, "pids.json"))
    time.sleep(60)
print("finished on attempt", os.environ["MLOOP_ATTEMPT"])
"""


class TestStopAndCrash:
    @pytest.fixture
    def sleeper(self, tmp_path: Path) -> Any:
        write_job(tmp_path / "quick", "print('quick ran')\n")
        write_job(tmp_path / "code", SLEEPER, args=("out", "here"))
        write_workflow(tmp_path, """
            quick = job("quick", code="quick")
            slow = job("slow", params={"here": str(HERE)}, depend=[quick])
            workflow = wf.Workflow(name="sleepy", desc="", steps=[quick, slow])
        """)
        pids: dict[str, int] = {}
        yield pids
        kill_if_alive(pids.values())

    @staticmethod
    def start_until_slow_runs(tmp_path: Path, cli: Cli, pids: dict[str, int]) -> tuple[Any, str]:
        """Start ``mloop run`` in the background; returns it and the run id once ``slow`` is running."""
        engine = cli.start("run", "flow.py")
        pids_file = tmp_path / "pids.json"
        wait_until(pids_file.exists, 60, lambda: f"the job to start; mloop run said:\n{engine.output()}")
        pids.update(json.loads(pids_file.read_text()))
        run_id = only_run(cli)["id"]
        last: dict[str, Any] = {}

        def slow_is_running() -> bool:
            last.update(cli.show(run_id)["steps"]["slow"])
            return last["status"] == "running"

        wait_until(slow_is_running, 60, lambda: f"slow to be running; last seen {last}; mloop run said:\n"
                                                f"{engine.output()}")
        assert not process_gone(pids["job"]) and not process_gone(pids["child"])
        return engine, run_id

    def test_stop_ends_the_job_and_its_children_and_marks_the_run_stopped(self, tmp_path: Path, cli: Cli,
                                                                         sleeper: dict[str, int]) -> None:
        engine, run_id = self.start_until_slow_runs(tmp_path, cli, sleeper)

        stopped = cli("stop", run_id)

        assert stopped.code == 0, str(stopped)
        assert "stopped" in stopped.out
        again = cli("stop", run_id)
        assert again.code != 0 and "already ended" in again.err, str(again)
        finished = engine.wait(timeout=30)
        assert finished.code != 0, str(finished)
        shown = cli.show(run_id)
        assert shown["run"]["status"] == "stopped"
        assert shown["steps"]["slow"]["status"] == "stopped"
        assert shown["steps"]["quick"]["status"] == "succeeded"
        wait_until(lambda: process_gone(sleeper["job"]) and process_gone(sleeper["child"]), 30,
                   "the job and its child to end")

        retried = cli("retry", run_id)  # a stopped run continues from the stopped step

        assert retried.code == 0, str(retried)
        assert {n: (s["status"], s["attempt"]) for n, s in cli.show(run_id)["steps"].items()} == {
            "quick": ("succeeded", 1), "slow": ("succeeded", 2)}

    def test_ctrl_c_stops_the_run(self, tmp_path: Path, cli: Cli, sleeper: dict[str, int]) -> None:
        engine, run_id = self.start_until_slow_runs(tmp_path, cli, sleeper)

        os.kill(engine.pid, signal.SIGINT)

        finished = engine.wait(timeout=30)
        assert finished.code != 0, str(finished)
        assert "stopped" in finished.out
        shown = cli.show(run_id)
        assert shown["run"]["status"] == "stopped"
        assert shown["steps"]["slow"]["status"] == "stopped", shown["steps"]["slow"]
        wait_until(lambda: process_gone(sleeper["job"]) and process_gone(sleeper["child"]), 30,
                   "the job and its child to end")

    def test_killed_engine_is_reconciled_by_the_next_command_and_retry_completes(
            self, tmp_path: Path, cli: Cli, sleeper: dict[str, int]) -> None:
        engine, run_id = self.start_until_slow_runs(tmp_path, cli, sleeper)

        os.kill(engine.pid, signal.SIGKILL)  # no handler runs, the job is left behind
        # Not reaped yet (as under a parent that has not waited): a zombie engine is a dead one.
        wait_until(lambda: psutil.Process(engine.pid).status() == psutil.STATUS_ZOMBIE, 10, "the engine to die")
        assert not process_gone(sleeper["job"]), "the job should outlive its engine"

        run = only_run(cli)  # any command reconciles

        assert run["status"] == "failed"
        assert "engine" in run["message"] and "retry" in run["message"]
        slow = cli.show(run_id)["steps"]["slow"]
        assert slow["status"] == "failed"
        assert "orphaned" in slow["message"] and "engine process" in slow["message"]
        wait_until(lambda: process_gone(sleeper["job"]) and process_gone(sleeper["child"]), 30,
                   "the leftover job and its child to be killed")

        result = cli("retry", run_id)

        assert result.code == 0, str(result)
        shown = cli.show(run_id)
        assert shown["run"]["status"] == "succeeded"
        assert {n: (s["status"], s["attempt"]) for n, s in shown["steps"].items()} == {
            "quick": ("succeeded", 1), "slow": ("succeeded", 2)}
        assert "finished on attempt 2" in Path(shown["steps"]["slow"]["log_path"]).read_text()


class TestCrashDuringRetry:
    def test_engine_killed_during_a_retry_leaves_no_job_of_that_attempt_running(
            self, tmp_path: Path, cli: Cli) -> None:
        """The pid-reuse guard must judge a retried step by its current attempt's start."""
        first_fails = 'if os.environ["MLOOP_ATTEMPT"] == "1":\n    sys.exit("first attempt fails at once")\n'
        write_job(tmp_path / "code", first_fails + SLEEPER.replace('== "1"', '== "2"'), args=("out", "here"))
        write_workflow(tmp_path, """
            workflow = wf.Workflow(name="retry-crash", desc="", steps=[job("slow", params={"here": str(HERE)})])
        """)
        assert cli("run", "flow.py").code != 0
        run_id = only_run(cli)["id"]
        time.sleep(1.5)  # attempt 2 starts well after attempt 1 did
        retry = cli.start("retry", run_id)
        pids_file = tmp_path / "pids.json"
        wait_until(pids_file.exists, 60, lambda: f"attempt 2 to start; mloop retry said:\n{retry.output()}")
        pids = json.loads(pids_file.read_text())
        try:
            wait_until(lambda: cli.show(run_id)["steps"]["slow"]["status"] == "running", 60, "slow to be running")
            retry.kill()

            run = only_run(cli)  # reconciles

            assert run["status"] == "failed"
            slow = cli.show(run_id)["steps"]["slow"]
            assert (slow["status"], slow["attempt"]) == ("failed", 2) and "orphaned" in slow["message"]
            wait_until(lambda: process_gone(pids["job"]) and process_gone(pids["child"]), 30,
                       "attempt 2's job and its child to be killed")
        finally:
            kill_if_alive(pids.values())


class TestAlgorithmRegistry:
    def test_registered_algorithms_run_by_id_and_by_subscription_version(self, tmp_path: Path, cli: Cli) -> None:
        dump = """
            with open(os.path.join(args.out, "seen.json"), "w") as fh:
                json.dump({"version": VERSION, "argv": sys.argv[1:]}, fh)
        """
        write_job(tmp_path / "algo_v1", "VERSION = 'v1'\n" + textwrap.dedent(dump))
        write_job(tmp_path / "algo_v2", "VERSION = 'v2'\n" + textwrap.dedent(dump))
        cli.ok("algorithm", "register", "trainer", "--code-dir", "algo_v1", "--boot-file", "job.py",
               "--param", "lr=0.5", "--param", "epochs=3", "--subscription-id", "sub-123", "--version", "1.0.0")
        cli.ok("algorithm", "register", "trainer", "--code-dir", "algo_v2", "--boot-file", "job.py",
               "--param", "lr=0.5", "--subscription-id", "sub-123", "--version", "2.0.0", "--id", "trainer-2")
        write_workflow(tmp_path, """
            by_id = job("by_id", algorithm=wf.Algorithm(algorithm_id="trainer", parameters=[
                wf.AlgorithmParameters(name="epochs", value=7)]))
            by_subscription = job("by_subscription", algorithm=wf.AIGalleryAlgorithm("sub-123", "1.0.0"))
            workflow = wf.Workflow(name="registry", desc="", steps=[by_id, by_subscription])
        """)

        result = cli("run", "flow.py", "-q")

        assert result.code == 0, str(result)
        steps = cli.show(result.out.strip())["steps"]
        seen = {n: json.loads(Path(s["outputs"]["out"]["url"], "seen.json").read_text()) for n, s in steps.items()}
        assert seen["by_id"]["version"] == "v1"
        assert {"--lr=0.5", "--epochs=7"} <= set(seen["by_id"]["argv"])  # the default is filled in
        assert seen["by_subscription"]["version"] == "v1"
        assert {"--lr=0.5", "--epochs=3"} <= set(seen["by_subscription"]["argv"])
        assert steps["by_id"]["inputs"]["algorithm"].startswith("registry:trainer@1.0.0")


class TestUsageErrors:
    def test_filters_that_name_nothing_are_refused(self, tmp_path: Path, cli: Cli) -> None:
        write_workflow(tmp_path, """
            workflow = wf.Workflow(name="usage", desc="", steps=[job("train", outputs=())])
        """)
        write_job(tmp_path / "code", "print('ok')\n", args=())
        run_id = cli.ok("run", "flow.py", "-q").out.strip()

        bogus = cli("runs", "--status", "bogus")
        assert bogus.code == 2 and "no run status 'bogus'" in bogus.text and "waiting_input" in bogus.text
        nosuch = cli("runs", "-w", "nosuch")
        assert nosuch.code == 3 and "no workflow named 'nosuch'" in nosuch.text and "usage" in nosuch.text
        nope = cli("metrics", run_id, "--step", "nope")
        assert nope.code == 3 and "no step 'nope'" in nope.text and "train" in nope.text

    def test_unknown_option_prints_the_usage_and_exits_2(self, tmp_path: Path, cli: Cli) -> None:
        write_workflow(tmp_path, """
            workflow = wf.Workflow(name="usage", desc="", steps=[job("train")])
        """)

        result = cli("run", "flow.py", "--no-such-option")

        assert result.code == 2, str(result)
        assert "No such option" in result.err and "Traceback" not in result.err
        assert cli.runs() == []


class TestLiveAndConcurrent:
    def test_logs_follow_streams_new_lines_until_the_step_ends(self, tmp_path: Path, cli: Cli) -> None:
        write_job(tmp_path / "code", """
            print("first line", flush=True)
            open(os.path.join(args.here, "started"), "w").close()
            wait_for_file(os.path.join(args.here, "go"))
            print("second line", flush=True)
        """, args=("out", "here"))
        write_workflow(tmp_path, """
            workflow = wf.Workflow(name="follow", desc="", steps=[job("talk", params={"here": str(HERE)})])
        """)
        engine = cli.start("run", "flow.py")
        try:
            wait_until((tmp_path / "started").exists, 60,
                       lambda: f"the job to start; mloop run said:\n{engine.output()}")
            run_id = only_run(cli)["id"]
            follower = cli.start("logs", run_id, "talk", "-f")
            wait_until(lambda: "first line" in follower.output(), 30,
                       lambda: f"the follower to print the first line; it said:\n{follower.output()}")
            assert follower.proc.poll() is None, "logs -f ended while the step still runs"
        finally:
            (tmp_path / "go").touch()

        followed = follower.wait(timeout=30)

        assert followed.code == 0, str(followed)
        assert followed.out.index("first line") < followed.out.index("second line")
        assert engine.wait(timeout=30).code == 0

    def test_two_runs_at_once_share_one_home(self, tmp_path: Path, cli: Cli) -> None:
        write_job(tmp_path / "code", "time.sleep(0.3)\nprint('run', os.environ['MLOOP_RUN_ID'])\n")
        write_workflow(tmp_path, """
            a = job("a")
            workflow = wf.Workflow(name="twice", desc="", steps=[a, job("b", depend=[a]), job("c")])
        """)

        engines = [cli.start("run", "flow.py"), cli.start("run", "flow.py")]
        results = [engine.wait(timeout=60) for engine in engines]

        assert all(r.code == 0 for r in results), "\n".join(map(str, results))
        runs = cli.runs()
        assert sorted(r["number"] for r in runs) == [1, 2]
        assert {r["status"] for r in runs} == {"succeeded"}
