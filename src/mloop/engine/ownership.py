"""Which process runs a run: the engine records itself when it claims a run, and anyone can ask
whether that process is still the one (pid reuse ruled out by its start time).

Layer: engine.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import psutil

from mloop.store.base import RunRecord

__all__ = ["engine_alive", "process_owner", "process_start_time"]


def process_start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def process_owner() -> dict[str, Any]:
    """The fields that record this process as a run's owner (its creator, then its engine)."""
    me = os.getpid()
    return {"engine_pid": me, "engine_host": socket.gethostname(), "engine_started_at": process_start_time(me)}


def engine_alive(run: RunRecord) -> bool:
    """Whether the process that runs ``run`` is still that process (pid reuse is ruled out)."""
    if run.engine_pid is None:
        return False
    if run.engine_host and run.engine_host != socket.gethostname():
        return True  # another machine's engine: not ours to judge
    try:
        process = psutil.Process(run.engine_pid)
        started = process.create_time()
        if process.status() == psutil.STATUS_ZOMBIE:
            return False  # killed, and its parent has not reaped it yet: it runs nothing
    except psutil.Error:
        return False
    return run.engine_started_at is None or abs(started - run.engine_started_at) < 1.0
