"""A step's outcome (its metrics and artifacts) lands in the same transaction as its terminal
transition: an engine killed between a job's exit and that commit leaves nothing of a
succeeded step behind, and the retry that finishes it records each output once.

The engine runs in a real subprocess that dies (``os._exit``) at the exact moment it would
commit the terminal transition of a step carrying metrics or artifacts; everything else is
the real engine, store and job process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import BOTH_DATABASES, Embedded, database_url, embedded, write_job, write_workflow  # noqa: F401

pytestmark = pytest.mark.timeout(180)

#: Runs the workflow's run RUN_ID in this process and dies when the engine commits an outcome.
DIE_AT_THE_COMMIT = textwrap.dedent("""
    import os, sys
    from mloop.engine import transitions

    real = transitions.steps

    def steps(store, run_id, changes):
        if any(c.metrics or c.artifacts for c in changes):
            sys.stderr.write("dying before the terminal commit\\n")
            sys.stderr.flush()
            os._exit(9)
        return real(store, run_id, changes)

    transitions.steps = steps
    from mloop.config import Settings
    from mloop.runs import execute_run, open_backend

    with open_backend(Settings(home=sys.argv[1], database_url=sys.argv[3] or None)) as ctx:
        execute_run(ctx, sys.argv[2])
""")

FLOW = """
train = job("train", metrics_files=["train/out/scores.json"])
workflow = wf.Workflow(name="atomic", desc="", steps=[train])
"""


@BOTH_DATABASES
def test_a_crash_before_the_terminal_commit_leaves_no_outcome_and_the_retry_records_it_once(
        tmp_path: Path, embedded: Embedded, database_url: str | None) -> None:
    write_job(tmp_path / "code", """
        write_metrics(args.out, file="scores.json", accuracy=0.75)
        with open(os.path.join(args.out, "model.bin"), "w") as fh:
            fh.write("weights")
    """)
    flow = write_workflow(tmp_path, FLOW)
    run = embedded.create(flow)

    died = subprocess.run([sys.executable, "-c", DIE_AT_THE_COMMIT, str(embedded.settings.home_path), run.id,
                           database_url or ""], capture_output=True, text=True, timeout=120)
    assert died.returncode == 9, died.stdout + died.stderr
    assert "dying before the terminal commit" in died.stderr
    job_out = tmp_path / "out" / run.id / "train" / "out"
    assert (job_out / "model.bin").read_text() == "weights"  # the job itself finished

    from mloop.runs import open_backend  # reconciles the run whose engine died

    with open_backend(embedded.settings) as ctx:
        crashed = ctx.store.get_step(run.id, "train")
        assert crashed.status == "failed" and "orphaned" in (crashed.message or "")
        assert ctx.store.list_metrics(run.id, "train") == []
        assert ctx.store.list_artifacts(run.id, "train") == []

    done = embedded.retry(run.id)
    assert done.status == "succeeded", done.why()
    assert [(m.key, m.value) for m in embedded.store.list_metrics(run.id, "train")] == [("accuracy", 0.75)]
    outputs = [a.name for a in embedded.store.list_artifacts(run.id, "train")]
    assert sorted(outputs) == sorted(set(outputs)) and "out" in outputs, outputs
