"""Jobs as Ray tasks, with the CPU/GPU/memory (and custom resources) of their flavor (``mloop[ray]``).

Each job is a Ray task that starts the same job runner (:mod:`mloop.runner`) the local
executor starts, as a child process in its own session: the runner stages the job in, runs
it, uploads outputs and writes the log itself, so lines reach the log as they are written
rather than through Ray's driver log forwarding (which drops lines). The runner dies with
the task's worker (``PR_SET_PDEATHSIG``), so a lost node or a killed worker leaves no job
behind; a cancelled task kills the runner's whole process tree.

A job with ``node_count=N`` is N ranks in a placement group (``SPREAD``: over nodes where
possible), each started with the torchrun contract (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``). Rank 0 is the step's job (its
outputs, metrics and log); the other ranks work in folders of their own next to it. Any rank
failing fails the job and stops the others.

Refs are ``ray:<run id>/<step>/<attempt>``, the marker every job process carries in its
environment: another process (``mloop stop``, reconcile) finds the job's processes on the
cluster's nodes by it, with a zero-CPU task pinned to each node.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from mloop.errors import ConfigError, MissingExtraError
from mloop.executors.base import (
    JOB_MARKER, ExitCallback, Executor, JobExit, JobHandle, JobRequest, Resources, register_executor,
    runner_argument,
)

#: Exit code the task reports when the job ran past its time limit and was killed.
_TIMED_OUT = "timed_out"


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise MissingExtraError("ray", "ray") from exc
    return ray


def _pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Make the runner die with the Ray worker that started it (Linux), and lead its session."""
    os.setsid()
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_job(wire: dict[str, Any], env_extra: dict[str, str], grace_seconds: float = 5.0) -> dict[str, Any]:
    """The body of a job's Ray task (runs on a node of the cluster): start the runner for
    ``wire`` as a child process, wait for it, and kill its process tree when the task is
    cancelled or the time limit passes. Returns ``{"code": ..., "signal": ..., "timed_out": ...}``."""
    import subprocess

    from mloop.executors.local import kill_tree
    from mloop.runner import local_path

    parent = os.path.dirname(wire["workdir"].rstrip(os.sep))
    os.makedirs(parent, exist_ok=True)
    payload = runner_argument(wire)
    env = dict(os.environ)
    env.update(env_extra)
    env["PYTHONUNBUFFERED"] = "1"
    try:  # where the job runs (the node's address), for the job and its log
        import ray

        env["MLOOP_NODE_IP"] = ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - not in a Ray worker (a test calling it directly)
        pass
    log_path = local_path(wire["log_url"])
    log: Any = subprocess.DEVNULL
    if log_path is not None:
        os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
        log = open(log_path, "ab", buffering=0)  # noqa: SIM115 - the child holds its own descriptor
    try:
        proc = subprocess.Popen([sys.executable, "-m", "mloop.runner", payload], cwd=parent, env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=_pdeathsig, close_fds=True)
    finally:
        if log is not subprocess.DEVNULL:
            log.close()
    timeout = wire.get("timeout_seconds")
    deadline = time.monotonic() + timeout if timeout else None
    try:
        while True:
            try:
                code = proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if deadline is not None and time.monotonic() > deadline:
                    kill_tree(proc.pid, grace_seconds)
                    proc.wait()
                    return {"code": None, "signal": None, "timed_out": True}
    except BaseException:  # ray.cancel: KeyboardInterrupt in the task
        kill_tree(proc.pid, grace_seconds)
        raise
    return {"code": code if code >= 0 else None, "signal": -code if code < 0 else None, "timed_out": False}


def scan_jobs(prefix: str, kill: bool, grace_seconds: float = 5.0) -> list[str]:
    """Markers of job processes on this node whose marker starts with ``prefix``; with
    ``kill``, their process trees are stopped too. Runs as a zero-CPU task on each node."""
    import psutil

    from mloop.executors.local import kill_tree

    wanted = f"{JOB_MARKER}={prefix}".encode()
    found: dict[str, list[int]] = {}
    for proc in psutil.process_iter(["pid"]):
        try:
            with open(f"/proc/{proc.info['pid']}/environ", "rb") as fh:
                environ = fh.read()
        except OSError:
            continue
        for item in environ.split(b"\0"):
            if item.startswith(wanted):
                found.setdefault(item.split(b"=", 1)[1].decode(), []).append(proc.info["pid"])
    if kill:
        for pids in found.values():
            for pid in pids:
                kill_tree(pid, grace_seconds)
    return sorted(found)


def describe(need: dict[str, float]) -> str:
    """``cpu=2, memory=2.0GiB, special=1`` (what a request or a node has)."""
    parts = []
    for key, value in need.items():
        if key == "memory":
            parts.append(f"memory={value / 2**30:.1f}GiB")
        elif key.startswith("node:") or key.startswith("accelerator_type") or key == "object_store_memory":
            continue
        else:
            parts.append(f"{key.lower() if key in ('CPU', 'GPU') else key}={value:g}")
    return ", ".join(parts) or "nothing"


def needs(resources: Resources) -> dict[str, float]:
    """The Ray resources one rank of a job with ``resources`` asks for (zeros left out)."""
    need = {"CPU": float(resources.cpu), "GPU": float(resources.gpu), "memory": float(resources.memory_gb) * 2**30}
    need.update({str(k): float(v) for k, v in resources.custom.items()})
    return {k: v for k, v in need.items() if v > 0}


@dataclass
class _Job:
    handle: JobHandle
    on_exit: ExitCallback | None
    refs: list[Any]  # one ObjectRef per rank; rank 0 first
    pg: Any = None  # the placement group of a multi-rank job
    results: dict[int, Any] = field(default_factory=dict)  # rank -> result dict or exception


class RayExecutor(Executor):
    """Runs each job as a Ray task on the cluster at ``MLOOP_RAY_ADDRESS`` (``auto`` or
    ``host:port``); with none, on a Ray this process starts (and Ray stops at exit)."""

    name = "ray"

    def __init__(self, address: str | None = None) -> None:
        _ray()
        self._address = address
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}  # jobs this process launched, still running
        self._ended: dict[str, JobExit] = {}
        self._watcher: threading.Thread | None = None
        self._wake = threading.Event()
        self._task: Any = None
        self._scanner: Any = None

    # -- the cluster -----------------------------------------------------------------------
    def connect(self) -> Any:
        """Connect this process to the cluster once (the ray module, ready)."""
        ray = _ray()
        if ray.is_initialized():
            return ray
        address = self._address
        if address is None:
            from mloop.config import Settings

            address = Settings().ray_address
        try:
            if address:
                ray.init(address=address, namespace="mloop", log_to_driver=False, logging_level="WARNING",
                         ignore_reinit_error=True)
            else:  # no cluster named: a Ray of our own for as long as this process lives
                ray.init(address="local", namespace="mloop", log_to_driver=False, logging_level="WARNING",
                         include_dashboard=False, ignore_reinit_error=True)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"cannot connect to the Ray cluster at {address or 'a local Ray'}: {exc}",
                              hint="start it (ray start --head --port <port>) and set MLOOP_RAY_ADDRESS to "
                                   "its host:port, or unset MLOOP_RAY_ADDRESS to start a local Ray") from exc
        return ray

    def check_resources(self, resources: Resources) -> None:
        """Refuse a flavor no node of the cluster can hold (Ray would queue its task forever)."""
        ray = self.connect()
        need = needs(resources)
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        fits = sum(_fits(node, need) for node in nodes)
        if fits >= resources.node_count:
            return
        ranks = f" for each of {resources.node_count} ranks" if resources.node_count > 1 else ""
        have = "; ".join(f"node {i + 1}: {describe(node)}" for i, node in enumerate(nodes)) or "no live node"
        raise ConfigError(f"flavor {resources.flavor_id!r} asks for {describe(need)}{ranks}, which no node of "
                          f"the Ray cluster has ({have})",
                          hint="pick a smaller flavor, or add a node with those resources to the cluster")

    # -- launch ----------------------------------------------------------------------------
    def launch(self, request: JobRequest, on_exit: ExitCallback | None = None) -> JobHandle:
        ray = self.connect()
        marker = f"{request.run_id}/{request.step_name}/{request.attempt}"
        ref = f"ray:{marker}"
        res = request.resources
        need = needs(res)
        options: dict[str, Any] = {"num_cpus": need.get("CPU", 0), "num_gpus": need.get("GPU", 0),
                                   "memory": need.get("memory") or None, "max_retries": 0,
                                   "resources": {k: v for k, v in need.items() if k not in ("CPU", "GPU", "memory")},
                                   "name": f"mloop:{marker}"}
        if self._task is None:  # made once: each ray.remote exports the function again
            self._task = ray.remote(run_job)
        task = self._task
        wire = request.to_dict()
        env = {JOB_MARKER: marker}
        pg = None
        if res.node_count <= 1:
            refs = [task.options(**options).remote(wire, env)]
        else:
            pg, refs = self._launch_ranks(ray, task, options, need, request, wire, env)
        handle = JobHandle(request, ref, None, refs[0])
        with self._lock:
            self._jobs[ref] = _Job(handle, on_exit, refs, pg)
            self._ended.pop(ref, None)
            if self._watcher is None:
                self._watcher = threading.Thread(target=self._watch, name="ray-jobs", daemon=True)
                self._watcher.start()
        self._wake.set()
        return handle

    def _launch_ranks(self, ray: Any, task: Any, options: dict[str, Any], need: dict[str, float],
                      request: JobRequest, wire: dict[str, Any], env: dict[str, str]) -> tuple[Any, list[Any]]:
        """N ranks in a SPREAD placement group, rank 0 the step's job; the rendezvous is a
        free port on rank 0's node."""
        from ray.util.placement_group import placement_group, placement_group_table
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        n = request.resources.node_count
        pg = placement_group([dict(need) for _ in range(n)], strategy="SPREAD")
        ray.get(pg.ready())
        nodes = placement_group_table(pg)["bundles_to_node_id"]
        probe = ray.remote(_node_and_port).options(
            num_cpus=0, scheduling_strategy=PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=0))
        master_addr, master_port = ray.get(probe.remote())
        local_ranks: dict[str, int] = {}
        per_node = {node: list(nodes.values()).count(node) for node in nodes.values()}
        refs = []
        for rank in range(n):
            node = nodes[rank]
            local_rank = local_ranks.get(node, 0)
            local_ranks[node] = local_rank + 1
            rank_wire = wire if rank == 0 else _rank_wire(wire, rank)
            rank_env = dict(env, RANK=str(rank), LOCAL_RANK=str(local_rank), WORLD_SIZE=str(n),
                            LOCAL_WORLD_SIZE=str(per_node[node]), MASTER_ADDR=master_addr,
                            MASTER_PORT=str(master_port))
            rank_wire = dict(rank_wire, env=dict(rank_wire.get("env") or {}, **{k: v for k, v in rank_env.items()
                                                                                 if k != JOB_MARKER}))
            strategy = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=rank)
            refs.append(task.options(**dict(options, scheduling_strategy=strategy,
                                            name=f"{options['name']}:rank{rank}")).remote(rank_wire, rank_env))
        return pg, refs

    # -- ending ----------------------------------------------------------------------------
    def _watch(self) -> None:
        """One thread hears every job of this process end (``ray.wait`` over all their tasks)."""
        ray = _ray()
        while True:
            with self._lock:
                pending = {id(r): (ref, rank, r) for ref, job in self._jobs.items()
                           for rank, r in enumerate(job.refs) if rank not in job.results}
            if not pending:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            objs = [entry[2] for entry in pending.values()]
            try:
                done, _ = ray.wait(objs, num_returns=1, timeout=0.5)
            except BaseException:  # noqa: BLE001 - ray.shutdown (SystemExit), or the cluster went away
                if not ray.is_initialized():
                    with self._lock:
                        self._watcher = None
                    return
                done = objs
            for obj in done:
                ref, rank, _ = pending[id(obj)]
                try:
                    result: Any = ray.get(obj)
                except Exception as exc:  # noqa: BLE001 - task cancelled, worker or node lost
                    result = exc
                self._rank_ended(ref, rank, result)

    def _rank_ended(self, ref: str, rank: int, result: Any) -> None:
        with self._lock:
            job = self._jobs.get(ref)
            if job is None:
                return
            job.results[rank] = result
            failed = isinstance(result, Exception) or result.get("code") != 0
            finished = len(job.results) == len(job.refs)
        if failed and not finished:
            for other, obj in enumerate(job.refs):  # any rank failing stops the others
                if other not in job.results:
                    _ray().cancel(obj)
        if not finished:
            return
        result = self._job_exit(job)
        with self._lock:
            self._jobs.pop(ref, None)
            self._ended[ref] = result
        if job.pg is not None:
            try:
                from ray.util.placement_group import remove_placement_group

                remove_placement_group(job.pg)
            except Exception:  # noqa: BLE001 - the cluster may be gone
                pass
        job.handle.exit = result
        if job.on_exit:
            job.on_exit(job.handle, result)

    def _job_exit(self, job: _Job) -> JobExit:
        """The job's exit: a stop, else the first failing rank's (rank 0 first), else success."""
        ray = _ray()
        if job.handle.cancelled:
            return JobExit(None, reason="stopped")
        timeout = job.handle.request.timeout_seconds
        for rank in sorted(job.results):
            result = job.results[rank]
            who = f"rank {rank}: " if len(job.refs) > 1 else ""
            if isinstance(result, ray.exceptions.TaskCancelledError):
                continue  # stopped because another rank failed: that rank's exit is the job's
            if isinstance(result, Exception):
                text = str(result).strip()
                first = text.splitlines()[0] if text else ""
                return JobExit(None, reason=f"{who}lost: the Ray node or worker running the job died "
                                            f"({type(result).__name__}: {first[:160]})")
            if result.get("timed_out"):
                return JobExit(None, timed_out=True, reason=f"timed out after {timeout:g} s")
            if result.get("code") != 0:
                return JobExit(result.get("code"), signal=result.get("signal"),
                               reason=f"rank {rank} failed" if rank else None)
        return JobExit(0)

    # -- poll, cancel, find ---------------------------------------------------------------
    def poll(self, ref: str) -> JobExit | None:
        with self._lock:
            if ref in self._ended:
                return self._ended[ref]
            if ref in self._jobs:
                return None
        marker = _marker(ref)
        if self._scan(marker, kill=False):
            return None
        return JobExit(None, reason="the job's Ray task has ended (its exit code was not recorded here)")

    def cancel(self, ref: str, grace_seconds: float = 5.0) -> bool:
        with self._lock:
            job = self._jobs.get(ref)
        if job is not None:
            job.handle.cancelled = True
            ray = _ray()
            for obj in job.refs:
                try:
                    ray.cancel(obj)  # a running task gets KeyboardInterrupt and kills its runner's tree
                except Exception:  # noqa: BLE001 - it ended meanwhile
                    pass
            return True
        return bool(self._scan(_marker(ref), kill=True, grace_seconds=grace_seconds))

    def jobs_of_run(self, run_id: str) -> list[str]:
        return [f"ray:{m}" for m in self._scan(f"{run_id}/", kill=False)]

    def _scan(self, prefix: str, kill: bool, grace_seconds: float = 5.0) -> list[str]:
        """Markers of job processes starting with ``prefix`` on every live node (and stop them)."""
        ray = self.connect()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if self._scanner is None:  # made once, as launch's task: each ray.remote exports the function again
            self._scanner = ray.remote(scan_jobs)
        scan = self._scanner
        refs = [scan.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                .remote(prefix, kill, grace_seconds) for n in ray.nodes() if n.get("Alive")]
        found: set[str] = set()
        for markers in ray.get(refs, timeout=60):
            found.update(markers)
        # An exact marker (poll, cancel) must not match a longer one (attempt 1 vs 10).
        if prefix.count("/") == 2:
            found = {m for m in found if m == prefix}
        return sorted(found)


def _marker(ref: str) -> str:
    name, _, marker = ref.partition(":")
    if name != "ray" or marker.count("/") < 2:
        raise ValueError(f"{ref!r} is not a Ray job reference")
    return marker


def _fits(node: dict[str, float], need: dict[str, float]) -> int:
    """How many ranks needing ``need`` a node with ``node`` resources holds."""
    counts = [int(node.get(k, 0.0) // v) for k, v in need.items() if v > 0]
    return min(counts) if counts else 1_000_000


def _rank_wire(wire: dict[str, Any], rank: int) -> dict[str, Any]:
    """The request of rank ``rank`` > 0: its own job folder and log next to rank 0's, its
    outputs and metrics kept there (rank 0's are the step's)."""
    workdir = wire["workdir"].rstrip(os.sep) + f"-rank{rank}"
    out = dict(wire, workdir=workdir, keep_url=None, keep_patterns=[],
               log_url=f"{wire['log_url']}.rank{rank}")
    out["outputs"] = [dict(o, kind="local", url=os.path.join(workdir, "outputs", o["name"]))
                      for o in wire.get("outputs") or ()]
    out["metrics"] = [dict(m, kind="local", url=os.path.join(workdir, "metrics", m["output"], "metrics.json"))
                      for m in wire.get("metrics") or ()]
    return out


def _node_and_port() -> tuple[str, int]:
    """Rank 0's node address and a free port there (the DDP rendezvous)."""
    import socket

    import ray

    with socket.socket() as sock:
        sock.bind(("", 0))
        port = sock.getsockname()[1]
    return ray.util.get_node_ip_address(), port


register_executor("ray", RayExecutor)
