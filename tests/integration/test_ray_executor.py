"""The Ray executor on a real local Ray cluster (a head, and a second node on 127.0.0.2 with a
``special`` resource): resources honoured, an impossible flavor refused before the run starts,
stop, a node lost mid-job then retried, and 2 ranks with the torchrun contract.

One cluster for the whole module (it takes seconds to start and ~0.5 GB).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

pytest.importorskip("ray")

from helpers import Embedded, wait_until, write_job, write_workflow  # noqa: E402
from ray_helpers import AUTH_ENV, RayCluster, start_cluster  # noqa: E402

pytestmark = pytest.mark.ray

FLAVORS = {"ray.special": {"cpu": 1, "memory_gb": 0.1, "resources": {"special": 1}},
           "ray.tiny": {"cpu": 0.5, "memory_gb": 0.1},
           "ray.huge": {"cpu": 64, "memory_gb": 0.1, "resources": {"special": 1}}}


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    import ray

    found = start_cluster(head_cpus=2)
    mp = pytest.MonkeyPatch()
    try:
        for key, value in AUTH_ENV.items():  # this process (the engine) joins it too
            mp.setenv(key, value)
        found.add_node("127.0.0.2", cpus=1, resources='{"special": 1}')
        yield found
    finally:
        if ray.is_initialized():
            ray.shutdown()
        mp.undo()
        found.stop()


@pytest.fixture
def backend(tmp_path: Path, cluster: RayCluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[Embedded]:
    monkeypatch.setenv("MLOOP_RAY_ADDRESS", cluster.address)  # (conftest clears MLOOP_* per test)
    emb = Embedded(tmp_path / "home", executor="ray", ray_address=cluster.address, flavors=FLAVORS)
    yield emb
    emb.close()


def test_step_needing_a_custom_resource_lands_on_the_node_that_has_it(tmp_path: Path, backend: Embedded) -> None:
    write_job(tmp_path / "code", """
import os
from pathlib import Path
Path(args.out, "where.txt").write_text(os.environ["MLOOP_NODE_IP"])
print("on", os.environ["MLOOP_NODE_IP"], flush=True)
""")
    flow = write_workflow(tmp_path, """
workflow = wf.Workflow(name="placed", desc="", steps=[job("special", flavor="ray.special"), job("tiny", flavor="ray.tiny")])
""")
    done = backend.run(flow)
    assert done.status == "succeeded", done.why()
    assert _out(tmp_path, "special", "where.txt").read_text() == "127.0.0.2"
    assert "on 127.0.0.2" in done.log("special")  # the log came back, line by line, to the step's log


def test_impossible_flavor_is_refused_before_the_run_starts(tmp_path: Path, backend: Embedded) -> None:
    write_job(tmp_path / "code", "open(args.out + '/ran', 'w').close()\n")
    flow = write_workflow(tmp_path, """
workflow = wf.Workflow(name="huge", desc="", steps=[job("a", flavor="ray.tiny"), job("big", flavor="ray.huge")])
""")
    done = backend.run(flow)
    assert done.status == "failed"
    message = done.steps["big"].message or ""
    assert "ray.huge" in message and "cpu=64" in message and "special=1" in message, message
    assert "node 2" in message  # the cluster's resources are named
    assert not list((tmp_path / "out").glob("*/a/out/ran"))  # nothing started


def _out(tmp_path: Path, step: str, name: str) -> Path:
    """A file the step wrote in its output ``out`` (under ``out/<run id>/``)."""
    found = list((tmp_path / "out").glob(f"*/{step}/out/{name}"))
    assert len(found) == 1, found
    return found[0]


def _in_thread(fn: Any, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=fn, args=args, daemon=True)
    thread.start()
    return thread


def test_stop_cancels_the_task_and_its_process_tree(tmp_path: Path, backend: Embedded) -> None:
    from mloop.runs import execute_run, stop_run

    write_job(tmp_path / "code", """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(os.path.join(args.out, "pids"), "w").write(f"{os.getpid()} {child.pid}")
time.sleep(600)
""")
    flow = write_workflow(tmp_path, 'workflow = wf.Workflow(name="stop", desc="", steps=[job("long", flavor="ray.tiny")])\n')
    run = backend.create(flow)
    thread = _in_thread(execute_run, backend.backend, run.id)
    wait_until(lambda: list((tmp_path / "out").glob("*/long/out/pids")), 60, "the job to start")
    pids_file = _out(tmp_path, "long", "pids")
    wait_until(lambda: pids_file.read_text().strip(), 10, "the job to write its pids")
    pids = [int(p) for p in pids_file.read_text().split()]
    stop_run(backend.backend, run.id)
    thread.join(60)
    assert not thread.is_alive()
    import psutil

    wait_until(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                               for p in pids), 20, "the job's processes to end")
    assert backend.result(run.id).status == "stopped"


def test_node_lost_mid_job_fails_the_step_and_retry_reschedules_it(tmp_path: Path, backend: Embedded,
                                                                   cluster: RayCluster) -> None:
    from mloop.runs import execute_run

    seen = str(tmp_path / "seen")  # the first attempt waits to be lost, the retry finishes
    write_job(tmp_path / "code", f"""
import os, time
first = not os.path.exists({seen!r})
open({seen!r}, "a").close()
open(os.path.join(args.out, "started"), "w").close()
if first:
    time.sleep(600)
print("second attempt done", flush=True)
""")
    flow = write_workflow(tmp_path, 'workflow = wf.Workflow(name="lost", desc="", steps=[job("s", flavor="ray.special")])\n')
    run = backend.create(flow)
    thread = _in_thread(execute_run, backend.backend, run.id)
    wait_until(lambda: list((tmp_path / "out").glob("*/s/out/started")), 60, "the job to start")
    raylet = cluster.raylet("127.0.0.2")
    assert raylet is not None
    raylet.send_signal(signal.SIGKILL)
    thread.join(120)
    assert not thread.is_alive()
    failed = backend.result(run.id)
    assert failed.status == "failed", failed.why()
    assert "lost" in (failed.steps["s"].message or ""), failed.why()
    cluster.add_node("127.0.0.2", cpus=1, resources='{"special": 1}')  # the node comes back
    again = backend.retry(run.id)
    assert again.status == "succeeded", again.why()
    assert "second attempt done" in again.log("s")


def test_two_ranks_get_the_torchrun_contract(tmp_path: Path, backend: Embedded) -> None:
    write_job(tmp_path / "code", """
import json, os
keys = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
seen = {k: os.environ[k] for k in keys}
open(os.path.join(args.out, "rank.json"), "w").write(json.dumps(seen))
print("rank", seen["RANK"], flush=True)
""")
    flow = write_workflow(tmp_path, """
step = job("ddp", flavor="ray.tiny")
step.spec.resource.node_count = 2
workflow = wf.Workflow(name="ranks", desc="", steps=[step])
""")
    done = backend.run(flow)
    assert done.status == "succeeded", done.why()
    import json

    seen = json.loads(_out(tmp_path, "ddp", "rank.json").read_text())
    assert seen["RANK"] == "0" and seen["WORLD_SIZE"] == "2" and int(seen["MASTER_PORT"]) > 0
    assert "rank 0" in done.log("ddp")
