"""A real local Ray cluster for the Ray executor's tests: a head on a free port (Redis holds
6379 on this machine) and a second node on 127.0.0.2 with a custom resource, each a real
``ray start``; stopped by PID (never ``ray stop``, which would end other people's clusters).

Every process of a cluster carries its own temp folder in its command line, so the cluster's
processes, and only they, are found by it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RayCluster:
    address: str  # host:port of the head's GCS
    temp_dir: str  # the head's session root: every process of the cluster names it

    def processes(self) -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            try:
                if any(self.temp_dir in part for part in proc.info["cmdline"] or ()):
                    found.append(proc)
            except psutil.Error:
                continue
        return found

    def raylet(self, node_ip: str) -> psutil.Process | None:
        """The raylet of the node at ``node_ip``."""
        for proc in self.processes():
            try:
                cmd = proc.cmdline()
            except psutil.Error:
                continue
            if cmd and os.path.basename(cmd[0]) == "raylet" and f"--node_ip_address={node_ip}" in cmd:
                return proc
        return None

    def add_node(self, node_ip: str, cpus: int, resources: str) -> None:
        _ray_start(["--address", self.address, "--node-ip-address", node_ip, "--num-cpus", str(cpus),
                    "--resources", resources])
        self.wait_nodes(lambda nodes: any(n["NodeManagerAddress"] == node_ip for n in nodes))

    def wait_nodes(self, predicate, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
        """Wait until the cluster's live nodes (as ``ray.nodes()`` lists them) satisfy ``predicate``."""
        import ray

        end = time.monotonic() + timeout
        while True:
            nodes = [n for n in ray.nodes() if n.get("Alive")] if ray.is_initialized() else _nodes(self.address)
            if predicate(nodes):
                return
            if time.monotonic() > end:
                raise AssertionError(f"the Ray cluster's nodes never got ready: {nodes}")
            time.sleep(0.2)

    def stop(self) -> None:
        procs = self.processes()
        for proc in procs:
            try:
                proc.send_signal(signal.SIGTERM)
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(procs, timeout=10)
        for proc in alive:
            try:
                proc.kill()
            except psutil.Error:
                pass
        shutil.rmtree(self.temp_dir, ignore_errors=True)


#: Ray 2.60 turns token auth on whenever ``~/.ray/auth_token`` exists, a file every cluster on
#: the machine shares (and another ``ray start --head`` may rewrite meanwhile): the test
#: cluster, on loopback only, runs without it, and so must every process that joins it.
AUTH_ENV = {"RAY_AUTH_MODE": "disabled"}


def _ray_start(args: list[str]) -> None:
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", **AUTH_ENV)
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run([RAY, "start", *args, "--disable-usage-stats"], env=env, capture_output=True,
                          text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"ray start {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


def _nodes(address: str) -> list[dict]:
    out = subprocess.run([sys.executable, "-c", "import json, ray; ray.init(address=%r, log_to_driver=False); "
                          "print(json.dumps([n for n in ray.nodes() if n['Alive']]))" % address],
                         capture_output=True, text=True, timeout=60, env=dict(os.environ, **AUTH_ENV))
    import json

    return json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else []


def start_cluster(head_cpus: int = 2) -> RayCluster:
    """A head (``head_cpus`` CPUs) on a free port; add nodes with :meth:`RayCluster.add_node`."""
    temp_dir = tempfile.mkdtemp(prefix="mlray", dir="/tmp")  # short: Ray's socket paths must fit
    port = free_port()
    cluster = RayCluster(f"127.0.0.1:{port}", temp_dir)
    try:
        _ray_start(["--head", "--port", str(port), "--node-ip-address", "127.0.0.1", "--include-dashboard=false",
                    "--num-cpus", str(head_cpus), "--temp-dir", temp_dir,
                    "--node-manager-port", str(free_port()), "--object-manager-port", str(free_port())])
    except BaseException:
        cluster.stop()
        raise
    return cluster
