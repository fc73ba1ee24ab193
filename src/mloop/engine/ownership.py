"""Which process runs a run: the engine records itself when it claims a run, and anyone can ask
whether that process is still the one.

Two ways to know. On the engine's own host, its pid (pid reuse ruled out by the process's start
time) answers at once. From any host, a server or worker engine's heartbeat answers: it is
registered in the store (:mod:`mloop.store.engines`) and a :class:`Heartbeat` thread rewrites
its row every few seconds, so one that missed several beats is dead wherever it ran.

Layer: engine.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

import psutil

from mloop.store.base import RunRecord

if TYPE_CHECKING:
    from mloop.store.base import Store
    from mloop.store.engines import EngineRecord

__all__ = ["Heartbeat", "engine_alive", "engine_row_alive", "process_owner", "process_start_time"]

log = logging.getLogger("mloop.engine")


def process_start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def process_owner(engine_id: str | None = None) -> dict[str, Any]:
    """The fields that record this process as a run's owner (its creator, then its engine);
    ``engine_id`` names the registered server or worker engine (None: a terminal's)."""
    me = os.getpid()
    return {"engine_pid": me, "engine_host": socket.gethostname(), "engine_started_at": process_start_time(me),
            "engine_id": engine_id}


def _process_alive(pid: int, started_at: float | None) -> bool:
    """Whether ``pid`` on this host is still the process that started at ``started_at``."""
    try:
        process = psutil.Process(pid)
        started = process.create_time()
        if process.status() == psutil.STATUS_ZOMBIE:
            return False  # killed, and its parent has not reaped it yet: it runs nothing
    except psutil.Error:
        return False
    return started_at is None or abs(started - started_at) < 1.0


def engine_alive(run: RunRecord, store: Store | None = None) -> bool:
    """Whether the process that runs ``run`` is still that process.

    On its own host the pid decides (pid reuse is ruled out). On another host, a registered
    engine's heartbeat decides when ``store`` is given; an engine of another host that has no
    heartbeat (a terminal's) can't be judged from here and counts as alive.
    """
    if run.engine_pid is None:
        return False
    if not run.engine_host or run.engine_host == socket.gethostname():
        return _process_alive(run.engine_pid, run.engine_started_at)
    if run.engine_id is None or store is None:
        return True  # another machine's engine without a heartbeat: not ours to judge
    engine = store.engines.get(run.engine_id)
    return engine is not None and engine_row_alive(engine)


def engine_row_alive(engine: EngineRecord, judge: Heartbeat | None = None) -> bool:
    """Whether a registered engine is alive: on this host, whether its process still exists
    (a killed engine is known dead at once); on another, whether its heartbeat is fresh.

    Args:
        judge: the heartbeat of the engine asking. A stale heartbeat counts as dead only once
            the judge's own beats have been landing for as long as the other's timeout (after
            an outage of the database, every beat is old until its engine beats again).
    """
    if engine.host == socket.gethostname() and not _process_alive(engine.pid, engine.process_started_at):
        return False
    if not engine.stale:
        return True
    from mloop.store.engines import MISSED_BEATS

    return judge is not None and judge.healthy_for() < MISSED_BEATS * engine.heartbeat_seconds


class Heartbeat:
    """Registers this process as an engine in the store and beats every ``period`` seconds in a
    thread of its own, until :meth:`stop`.

    A beat that finds its row gone (pruned while this process stalled) registers again: the
    engine's runs may have been taken over meanwhile, which the engine notices on its own run
    (its ``engine_id`` is no longer this one's).

    :meth:`healthy_for` says how long its beats have been landing without a miss: after the
    database was out of reach, every engine's beat is old at once, and one that judged the
    others before they could beat again would take over the runs of live engines.
    """

    def __init__(self, store: Store, kind: str, period: float, version: str | None = None) -> None:
        self.store, self.kind, self.period, self.version = store, kind, period, version
        self.id = uuid.uuid4().hex
        self.last_beat: float | None = None
        self._healthy_since: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Heartbeat:
        self._register()
        self._thread = threading.Thread(target=self._loop, name="mloop-heartbeat", daemon=True)
        self._thread.start()
        return self

    def healthy_for(self) -> float:
        """Seconds since its beats began landing without a miss (0 while they fail)."""
        return 0.0 if self._healthy_since is None else time.monotonic() - self._healthy_since

    def _register(self) -> None:
        me = os.getpid()
        self.store.engines.register(self.id, kind=self.kind, host=socket.gethostname(), pid=me,
                                    process_started_at=process_start_time(me), heartbeat_seconds=self.period,
                                    version=self.version)
        self.last_beat = time.time()
        self._healthy_since = time.monotonic()

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            try:
                if not self.store.engines.beat(self.id):
                    log.warning("engine %s had been taken for dead; registering it again", self.id[:8])
                    self._register()
                self.last_beat = time.time()
                if self._healthy_since is None:
                    self._healthy_since = time.monotonic()
            except Exception:  # noqa: BLE001 - a bad moment of the store must not end the heartbeat
                self._healthy_since = None
                log.exception("the heartbeat of engine %s could not be written; trying again", self.id[:8])

    def stop(self, forget: bool = True) -> None:
        """Stop beating; ``forget`` removes the row (a clean stop: its runs are taken over at
        once, not after the heartbeat goes stale)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if forget:
            try:
                self.store.engines.remove(self.id)
            except Exception:  # noqa: BLE001 - the store may be what is going away
                log.warning("could not remove engine %s from the store", self.id[:8])
