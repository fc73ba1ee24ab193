"""MrsJobStep on Spark: PySpark jobs in ``local[*]`` / ``local[2]`` run by the real engine.

Every JVM start costs seconds, so the Spark launches are few: one ``mloop run`` of a workflow
whose three steps (a word count, a plain job reading its output, a Spark job that fails) every
test of :class:`TestRunEndToEnd` reads, and one stop. The refusals when pyspark or Java is
missing start no JVM (nothing gets that far). Skipped cleanly without pyspark or Java.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from helpers import (  # noqa: F401 (fixtures)
    PYTHON, Cli, Embedded, Result, kill_if_alive, process_gone, wait_until, write_job, write_workflow,
)
from mloop.runs import execute_run, stop_run

HAVE_PYSPARK = importlib.util.find_spec("pyspark") is not None
HAVE_JAVA = bool(os.environ.get("JAVA_HOME")) or shutil.which("java") is not None
needs_spark = pytest.mark.skipif(not (HAVE_PYSPARK and HAVE_JAVA),
                                 reason="needs pyspark (pip install 'mloop[spark]') and Java 17")
pytestmark = [pytest.mark.spark, pytest.mark.timeout(300)]

WORDCOUNT = Path(__file__).resolve().parents[2] / "examples" / "spark_wordcount" / "wordcount.py"

TEXTS = {
    "a.txt": "the cat sat on the mat\nThe dog sat too\n",
    "b.txt": "a cat and a dog, the end\n",
    "c.txt": "one two two three three three\n",
}

#: A Spark job that fails before it asks for a SparkSession (a JVM, no Spark context).
BROKEN = """\
import sys
print("broken: about to fail", flush=True)
print("broken: on stderr too", file=sys.stderr, flush=True)
sys.exit(3)
"""

#: A Spark job that says who it is (its Python driver and the JVM above it), then waits.
SLEEPER = """\
import json, os, sys, time
here = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--here=")][0]
with open(os.path.join(here, "pids.json.tmp"), "w") as fh:
    json.dump({"python": os.getpid(), "jvm": os.getppid()}, fh)
os.replace(os.path.join(here, "pids.json.tmp"), os.path.join(here, "pids.json"))
time.sleep(120)
"""

FLOW = f"""
def mrs(name, boot, inputs=None, outputs=None, parameters=None, cluster="nowhere", depend=None):
    return wf.steps.MrsJobStep(
        name=name, inputs=inputs, outputs=outputs, cluster_id=cluster, depend_steps=depend,
        mrs_algorithm=wf.steps.MrsJobAlgorithm(boot_file=boot, parameters=[
            wf.AlgorithmParameters(name=k, value=v) for k, v in (parameters or {{}}).items()]))

wordcount = mrs("wordcount", {str(WORDCOUNT)!r},
                inputs=[wf.steps.MrsJobInput(name="text", data=wf.data.OBSPath(obs_path=str(HERE / "text") + "/"))],
                outputs=[wf.steps.MrsJobOutput(name="counts", obs_config=wf.data.OBSOutputConfig(
                    obs_path="obs://spark-test/counts/", metric_file="metrics.json"))],
                parameters={{"run_args": "--driver-memory=512m", "app_args": "--min_count=2",
                             "properties": "{{'spark.sql.shuffle.partitions': '2'}}"}})
report = job("report", inputs={{"counts": wordcount.outputs["counts"].as_input()}}, depend=[wordcount])
broken = mrs("broken", "code/broken.py", cluster="two-cores", depend=[report])
workflow = wf.Workflow(name="spark", desc="word count, then a failing Spark job", steps=[wordcount, report, broken])
"""

REPORT = """
    lines = []
    for name in sorted(os.listdir(args.counts)):
        if name.startswith("part-"):
            with open(os.path.join(args.counts, name)) as fh:
                lines += fh.read().splitlines()
    with open(os.path.join(args.out, "report.json"), "w") as fh:
        json.dump({"folder": args.counts, "lines": lines}, fh)
"""

TOML = """\
[mloop.spark_clusters.two-cores]
master = "local[2]"
conf = { "spark.driver.memory" = "512m" }
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder: the workflow, its text files, the failing job, a spark_clusters entry."""
    root = tmp_path_factory.mktemp("spark")
    for name, text in TEXTS.items():
        (root / "text").mkdir(exist_ok=True)
        (root / "text" / name).write_text(text)
    (root / "code").mkdir()
    (root / "code" / "broken.py").write_text(BROKEN)
    (root / "code" / "sleeper.py").write_text(SLEEPER)
    write_job(root / "code", REPORT, args=("counts", "out"))
    write_workflow(root, FLOW)
    (root / "mloop.toml").write_text(TOML)
    return root


@pytest.fixture(scope="module")
def ran(project: Path) -> tuple[Cli, Result, Any]:
    """``mloop run flow.py`` once: (the CLI, its result, the run's records)."""
    if not (HAVE_PYSPARK and HAVE_JAVA):
        pytest.skip("needs pyspark and Java")
    cli = Cli(project, project / ".mloop")
    result = cli("run", "flow.py", timeout=280)
    runs = cli.runs()
    assert len(runs) == 1, str(result)
    backend = Embedded(project / ".mloop")
    try:
        done = backend.result(runs[0]["id"])
    finally:
        backend.close()
    return cli, result, done


@needs_spark
class TestRunEndToEnd:
    def test_word_count_reads_its_input_and_writes_its_output_into_the_store(self, ran: Any, project: Path) -> None:
        _, _, done = ran
        assert done.steps["wordcount"].status == "succeeded", done.why()
        counts_url = done.steps["wordcount"].outputs["counts"]["url"]
        store = project / ".mloop" / "artifacts" / "obs" / "spark-test"
        assert counts_url.startswith(str(store)), counts_url
        lines = [line for part in sorted(Path(counts_url).glob("part-*")) for line in part.read_text().splitlines()]
        words = Counter(w.strip(",") for text in TEXTS.values() for w in text.lower().split())
        expected = sorted(((w, n) for w, n in words.items() if n >= 2), key=lambda wn: (-wn[1], wn[0]))
        assert lines == [f"{w}\t{n}" for w, n in expected]  # --min_count=2 (app_args) reached the script
        assert done.metric("wordcount", "words") == sum(words.values())  # metric_file of the output
        assert done.metric("wordcount", "distinct_words") == len(words)

    def test_command_is_run_args_then_boot_file_then_app_args_then_inputs_and_outputs(self, ran: Any) -> None:
        _, _, done = ran
        argv = done.steps["wordcount"].inputs["argv"]
        command = argv[2]  # /bin/sh -c '<command> "$@"' mloop-job --text=... --counts=...
        assert command.startswith("exec ") and "spark-submit" in command.split()[1]
        words = command.split()
        assert words.index("--driver-memory=512m") < words.index("wordcount.py") < words.index("--min_count=2")
        assert "spark.sql.shuffle.partitions=2" in words and "spark.ui.enabled=false" in words
        assert [a.split("=")[0] for a in argv[4:]] == ["--text", "--counts"]

    def test_a_plain_job_downstream_reads_the_spark_output(self, ran: Any) -> None:
        _, _, done = ran
        assert done.steps["report"].status == "succeeded", done.why()
        report = json.loads((Path(done.steps["report"].outputs["out"]["url"]) / "report.json").read_text())
        assert report["folder"].rstrip("/") == done.steps["wordcount"].outputs["counts"]["url"].rstrip("/")
        assert report["lines"][0] == "the\t4"

    def test_the_log_has_the_jobs_output_and_where_it_ran_without_spark_info_noise(self, ran: Any) -> None:
        cli, _, done = ran
        log = done.log("wordcount")
        assert "cluster_id 'nowhere' is not in spark_clusters: local mode here" in log
        assert "master local[*]" in log
        words = Counter(w.strip(",") for text in TEXTS.values() for w in text.lower().split())
        assert f"wordcount: {sum(words.values())} words, {len(words)} distinct; most frequent: the (4)" in log
        assert " INFO " not in log, log  # Spark's console at WARN
        assert "master local[2] (cluster 'two-cores')" in done.log("broken")  # from mloop.toml
        assert f"wordcount: {sum(words.values())} words" in cli.ok("logs", done.run.id, "wordcount").out

    def test_a_failing_spark_job_fails_the_step_and_the_run_with_its_exit_code_and_log_tail(self, ran: Any) -> None:
        _, result, done = ran
        assert result.code != 0, str(result)
        assert done.status == "failed", done.why()
        broken = done.steps["broken"]
        assert (broken.status, broken.exit_code) == ("failed", 3), done.why()
        assert broken.message == "the Spark job exited with code 3"
        assert "the Spark job exited with code 3" in result.text
        assert "broken: about to fail" in result.text and "broken: on stderr too" in result.text  # the tail


@needs_spark
def test_stop_kills_the_spark_job_s_process_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  project: Path) -> None:
    monkeypatch.chdir(tmp_path)
    flow = write_workflow(tmp_path, f"""
        sleeper = wf.steps.MrsJobStep(name="sleeper", inputs=None, outputs=None, cluster_id="local",
            mrs_algorithm=wf.steps.MrsJobAlgorithm(boot_file={str(project / "code" / "sleeper.py")!r}, parameters=[
                wf.AlgorithmParameters(name="app_args", value="--here=" + str(HERE))]))
        workflow = wf.Workflow(name="sleepy", desc="a Spark job to stop", steps=[sleeper])
    """)
    backend = Embedded(tmp_path / ".mloop", stop_grace_seconds=2)
    pids: list[int] = []
    try:
        run = backend.create(flow)
        engine = threading.Thread(target=execute_run, args=(backend.backend, run.id), daemon=True)
        engine.start()
        found = tmp_path / "pids.json"
        wait_until(found.exists, 120, lambda: f"the Spark job to start; log:\n{_log(backend, run.id)}")
        started = json.loads(found.read_text())
        pids = [started["python"], started["jvm"]]
        assert not any(process_gone(p) for p in pids)

        stopped = stop_run(backend.backend, run.id)

        engine.join(timeout=60)
        assert not engine.is_alive()
        done = backend.result(run.id)
        assert stopped.status == "stopped"
        assert (done.status, done.steps["sleeper"].status) == ("stopped", "stopped"), done.why()
        wait_until(lambda: all(process_gone(p) for p in pids), 20, "the JVM and its Python driver to end")
    finally:
        kill_if_alive(pids)
        backend.close()


def _log(backend: Embedded, run_id: str) -> str:
    steps = backend.store.list_steps(run_id)
    path = steps[0].log_path if steps else None
    return Path(path).read_text() if path and os.path.exists(path) else "(no log yet)"


class TestMissingSparkOrJava:
    """The refusals start nothing: no JVM, no job folder."""

    @pytest.mark.skipif(not HAVE_PYSPARK, reason="the Java check comes after pyspark's")
    def test_without_java_validate_and_run_refuse_naming_a_java_17_package(self, tmp_path: Path,
                                                                           project: Path) -> None:
        no_java = tmp_path / "bin"
        no_java.mkdir()
        cli = Cli(project, tmp_path / ".mloop", {"PATH": str(no_java), "JAVA_HOME": ""})

        checked = cli("validate", "flow.py")
        ran = cli("run", "flow.py")

        for result in (checked, ran):
            assert result.code != 0, str(result)
            assert "there is no java on PATH" in result.text, str(result)
            assert "apt-get install openjdk-17-jre-headless" in result.text, str(result)
        assert "steps[wordcount]" in checked.text and "steps[broken]" in checked.text
        assert not list((tmp_path / ".mloop" / "runs").glob("*/steps/*/attempt-*"))  # nothing started

    def test_without_pyspark_the_error_says_pip_install_mloop_spark(self, tmp_path: Path, project: Path) -> None:
        # This interpreter, made one without pyspark: its import system refuses to find it.
        block = ("import sys\n"
                 "class NoPyspark:\n"
                 "    def find_spec(self, name, path=None, target=None):\n"
                 "        if name == 'pyspark' or name.startswith('pyspark.'):\n"
                 "            raise ModuleNotFoundError(\"No module named 'pyspark'\", name=name)\n"
                 "sys.meta_path.insert(0, NoPyspark())\n"
                 "from mloop.cli import main\n"
                 "main()\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_") and k != "SPARK_HOME"}
        env.update(PATH="/usr/bin:/bin", MLOOP_HOME=str(tmp_path / ".mloop"), COLUMNS="250", NO_COLOR="1")
        proc = subprocess.run([PYTHON, "-c", block, "validate", "flow.py"], cwd=project, env=env,
                              capture_output=True, text=True, timeout=90)
        text = proc.stdout + proc.stderr
        assert proc.returncode != 0, text
        assert f"pyspark is not installed in {sys.executable}" in text, text
        assert "pip install 'mloop[spark]'" in text, text
