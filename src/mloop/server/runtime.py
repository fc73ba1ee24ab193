"""What ``mloop server`` runs beside its API: the run queue's dispatcher and the background loops
(scheduler, notifier) that join it, each in its own thread, started and stopped with the app.

On start it reconciles first: runs a terminal's engine left are finished as orphans, while
queued runs (no engine recorded) stay queued and start. Runs a server or worker engine claimed
(the previous server process, stopped or SIGKILLed, or another machine's) are not failed: the
dispatcher registers this process as an engine with a heartbeat and takes over the running runs
of engines that stopped beating, continuing them without re-running a step that succeeded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mloop.engine.ownership import engine_row_alive
from mloop.runs.queue import Dispatcher, QueueLimits

if TYPE_CHECKING:
    from mloop.context import Context

__all__ = ["Loop", "ServerRuntime"]

log = logging.getLogger("mloop.server")


@dataclass
class Loop:
    """A background loop: ``tick()`` returns the seconds to wait before the next one (bounded)."""

    name: str
    tick: Callable[[], float]
    last_tick: float | None = None
    errors: int = 0
    _thread: threading.Thread | None = None
    _wake: threading.Event = field(default_factory=threading.Event)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            wait = 1.0
            try:
                wait = self.tick()
            except Exception:  # noqa: BLE001 - a loop that fails once tries again; it never ends the server
                self.errors += 1
                log.exception("the %s loop failed; trying again", self.name)
            self.last_tick = time.time()
            self._wake.wait(max(0.05, min(wait, 5.0)))
            self._wake.clear()

    def wake(self) -> None:
        self._wake.set()


class ServerRuntime:
    """The dispatcher and the loops of one server process."""

    def __init__(self, ctx: Context, limits: QueueLimits) -> None:
        from mloop.runs.scheduler import Scheduler

        self.ctx = ctx
        self.dispatcher = Dispatcher(ctx, limits)
        self.loops: list[Loop] = []
        self._stop = threading.Event()
        self.scheduler = Scheduler(ctx)
        self.add_loop("scheduler", self._schedule)
        from mloop.notify.notifier import Notifier

        self.notifier = Notifier(ctx)
        self.add_loop("notifier", self._notify)

    def _notify(self) -> float:
        # Delivery is bounded per tick, so a slow receiver delays only its own notifications.
        self.notifier.pump(max_seconds=10.0)
        return 1.0

    def _schedule(self) -> float:
        if self.scheduler.tick():
            self.dispatcher.wake()
        # At most a second between looks: a schedule created meanwhile (here or by another
        # server) fires within the 1 s of its due time.
        return self.scheduler.seconds_until_due(1.0)

    def add_loop(self, name: str, tick: Callable[[], float]) -> Loop:
        loop = Loop(name, tick)
        self.loops.append(loop)
        return loop

    def start(self) -> None:
        from mloop.runs.reconcile import reconcile_orphans

        ended = reconcile_orphans(self.ctx)
        if ended:
            log.warning("reconciled %d run(s) whose engine had ended", len(ended))
        self.dispatcher.start()
        for loop in self.loops:
            loop._thread = threading.Thread(target=loop.run, args=(self._stop,), name=f"mloop-{loop.name}",
                                            daemon=True)
            loop._thread.start()

    def stop(self) -> None:
        self._stop.set()
        for loop in self.loops:
            loop.wake()
        self.dispatcher.stop()
        for loop in self.loops:
            if loop._thread is not None:
                loop._thread.join(5)

    def gauges(self) -> dict[str, float]:
        """Last-tick times (unix seconds) of the dispatcher and each loop, for /metrics."""
        out = {"queue_last_tick_seconds": self.dispatcher.last_tick or 0.0}
        heartbeat = self.dispatcher.heartbeat
        out["engine_heartbeat_last_seconds"] = (heartbeat.last_beat or 0.0) if heartbeat is not None else 0.0
        out["engine_runs_taken_over"] = float(self.dispatcher.taken_over)
        # Servers and workers beating on this database (this one included).
        out["engines_alive"] = float(sum(engine_row_alive(e) for e in self.ctx.store.engines.registered()))
        for loop in self.loops:
            out[f"{loop.name}_last_tick_seconds"] = loop.last_tick or 0.0
            out[f"{loop.name}_errors"] = float(loop.errors)
        out["notifier_backlog"] = float(self.ctx.store.notify.backlog())
        return out
