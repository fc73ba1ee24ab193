"""The Ray executor on a real local Ray cluster (a head, and a second node on 127.0.0.2 with a
``special`` resource): resources honoured, an impossible flavor refused before the run starts,
stop, a node lost mid-job then retried, 2 ranks with the torchrun contract, the MNIST
example's train.py trained with DDP on 2 ranks, one per node, and an engine killed mid-job
leaving no job running after reconcile.

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


MNIST_CODE = Path(__file__).resolve().parents[2] / "examples" / "mnist" / "code"


def test_mnist_example_trains_with_ddp_on_two_ranks_across_the_two_nodes(tmp_path: Path,
                                                                          backend: Embedded) -> None:
    """The MNIST example's train.py as a 2-rank job (one rank per node: SPREAD, 0.5 CPU each)
    reaches about the accuracy of the same script run alone with the same budget."""
    import json
    import os
    import re
    import subprocess
    import sys

    pytest.importorskip("torch")
    data = tmp_path / "idx"
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT")}
    subprocess.run([sys.executable, str(MNIST_CODE / "prepare_data.py"), f"--output_url={data}", "--format=idx"],
                   check=True, capture_output=True, env=env, timeout=120)
    budget = ["--epochs=2", "--batch_size=32", "--num_threads=1"]
    alone = subprocess.run([sys.executable, str(MNIST_CODE / "train.py"), f"--data_url={data}",
                            f"--train_url={tmp_path / 'alone'}", *budget], capture_output=True, text=True,
                           env=env, timeout=300)
    assert alone.returncode == 0, alone.stderr
    assert "ddp:" not in alone.stdout  # no WORLD_SIZE: the plain single-process run
    flow = write_workflow(tmp_path, f"""
step = job("train", script="train.py", code={str(MNIST_CODE)!r}, flavor="ray.tiny", outputs=("train_url",),
           params={{"epochs": 2, "batch_size": 32, "num_threads": 1}},
           inputs={{"data_url": wf.data.OBSPath(obs_path={str(data) + "/"!r})}},
           metrics_files=["train/train_url/metrics.json"])
step.spec.resource.node_count = 2
workflow = wf.Workflow(name="mnist-ddp", desc="", steps=[step])
""")
    done = backend.run(flow)
    assert done.status == "succeeded", done.why()
    rank0 = done.log("train")
    # One rank per node. (On the head, Ray's get_node_ip_address, the executor's MLOOP_NODE_IP,
    # says the machine's own address rather than 127.0.0.1; the second node's is 127.0.0.2.)
    node0 = re.search(r"ddp: rank 0 of 2 on node (\S+)", rank0)
    assert node0 and node0.group(1) != "127.0.0.2", rank0
    rank1_logs = [p for p in tmp_path.rglob("*.rank1") if p.is_file()]
    assert len(rank1_logs) == 1, rank1_logs
    rank1 = rank1_logs[0].read_text()
    assert "ddp: rank 1 of 2 on node 127.0.0.2" in rank1 and "done: rank 1 trained on 718 images" in rank1, rank1
    # Rank 0's model and metrics are the step's; rank 1 wrote none.
    models = list((tmp_path / "out").glob("*/train/train_url/model.pt"))
    assert len(models) == 1, models
    model = models[0].parent
    assert {"model.pt", "model_state.pt", "config.json", "metrics.json"} <= {p.name for p in model.iterdir()}
    assert [p for p in tmp_path.rglob("model.pt") if "rank1" in str(p)] == []
    metrics = {e["key"]: e for e in json.loads((model / "metrics.json").read_text())}
    accuracy = metrics["accuracy"]["data"]["value"]
    assert done.metric("train", "accuracy") == pytest.approx(accuracy)  # rank 0's metrics are the step's
    alone_metrics = {e["key"]: e for e in json.loads((tmp_path / "alone" / "metrics.json").read_text())}
    alone_accuracy = alone_metrics["accuracy"]["data"]["value"]
    print(f"accuracy: 2 ranks {accuracy:.4f}, 1 rank {alone_accuracy:.4f}")
    # 2 epochs: ~0.94 either way here; 2 ranks take half the optimizer steps (a global batch of 64).
    assert accuracy > 0.8 and abs(accuracy - alone_accuracy) <= 0.1, (accuracy, alone_accuracy)


def test_an_engine_killed_mid_job_leaves_no_job_running_after_reconcile(tmp_path: Path, cluster: RayCluster,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """``mloop run --executor ray`` is SIGKILLed while its job runs on the cluster: the job's
    process ends (its task's owner is gone, and reconcile looks on every node for what is left),
    the step is not left running, and no node holds a process of the run."""
    import json
    import os

    import psutil
    from helpers import Cli

    from mloop.executors.ray import RayExecutor
    from mloop.runs.reconcile import reconcile_orphans

    write_job(tmp_path / "code", """
import os, time
from pathlib import Path
Path(args.out, "pid").write_text(str(os.getpid()))
time.sleep(120)
""")
    write_workflow(tmp_path, """
workflow = wf.Workflow(name="orphan", desc="", steps=[job("long", flavor="ray.tiny")])
""")
    env = {"MLOOP_EXECUTOR": "ray", "MLOOP_RAY_ADDRESS": cluster.address, "MLOOP_FLAVORS": json.dumps(FLAVORS),
           **AUTH_ENV}
    cli = Cli(tmp_path, tmp_path / "home", extra_env=env)
    try:
        engine = cli.start("run", "flow.py")
        pid_file = wait_until(lambda: next(iter((tmp_path / "out").rglob("long/out/pid")), None), 90, engine.output)
        job_pid = int(wait_until(lambda: pid_file.read_text().strip(), 10, "the pid"))
        assert psutil.pid_exists(job_pid)
        os.kill(engine.proc.pid, signal.SIGKILL)
        engine.proc.wait(timeout=30)

        monkeypatch.setenv("MLOOP_RAY_ADDRESS", cluster.address)
        emb = Embedded(tmp_path / "home", executor="ray", ray_address=cluster.address, flavors=FLAVORS)
        try:
            (run,) = emb.store.list_runs()
            reconcile_orphans(emb.backend)
            wait_until(lambda: not psutil.pid_exists(job_pid) or psutil.Process(job_pid).status() == psutil.STATUS_ZOMBIE,
                       30, "the job process to end")
            step = emb.store.get_step(run.id, "long")
            assert step.status in ("failed", "stopped"), step
            assert emb.store.get_run(run.id).status in ("failed", "stopped")
            assert RayExecutor(cluster.address).jobs_of_run(run.id) == []
        finally:
            emb.close()
    finally:
        cli.cleanup()
