"""The run queue of the team server: runs submitted to it wait, durably, until a server takes them.

A queued run is an ordinary ``pending`` run with no creator recorded (``engine_pid`` is null),
so :func:`~mloop.runs.reconcile.reconcile_run` leaves it alone and nothing about it lives only
in memory: a server that restarts (or is SIGKILLed) finds its queue in the store. A server takes
a run by the engine's claim, ``pending -> running`` as one compare-and-set on the run's status,
so two servers on one database never run the same run twice: the one whose claim loses finds
the run no longer pending and leaves it. Candidates are a plain read; no row lock is held
across the claim (a lock released when the read's transaction ends would promise nothing).

Several engines (servers, ``mloop worker`` processes) on one database: each started
:class:`Dispatcher` registers as an engine and beats (:class:`~mloop.engine.ownership.Heartbeat`),
and records its engine id on the runs it claims. Every heartbeat period it also looks for
running runs whose engine is dead (its heartbeat stale, or on this host its process gone) and
takes them over: a compare-and-set on the run's ``engine_id`` (one survivor wins), then
:func:`~mloop.runs.reconcile.prepare_takeover` (succeeded steps are kept, interrupted ones run
again) and the engine continues the run.

Layer: run service (the server's launcher seam). Doors call :func:`submit`; the server runs one
:class:`Dispatcher`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mloop.errors import NotFoundError, RunStateError

if TYPE_CHECKING:
    from mloop.context import Context
    from mloop.engine.ownership import Heartbeat
    from mloop.store.base import RunRecord

__all__ = ["Dispatcher", "QueueLimits", "copy_run", "queued_runs", "retry_queued", "submit"]

log = logging.getLogger("mloop.queue")


def submit(ctx: Context, workflow_name: str, values: dict[str, Any] | None = None, *, version: int | None = None,
           origin: dict[str, Any] | None = None, steps: list[str] | None = None, cache: bool = True) -> RunRecord:
    """Queue a run of a released workflow (its latest release, or ``version``); ``cache=False``
    runs every job step, reusing no earlier result (see ``create_run``).

    Raises:
        NotFoundError: the workflow (or that version of it) was never released.
        PlaceholderValueError: a bad, unknown or missing value (nothing is queued).
    """
    from mloop.runs.service import create_run
    from mloop.spec import load_spec

    if version is None:
        release = ctx.store.latest_release(workflow_name)
    else:
        release = next((r for r in ctx.store.list_releases(workflow_name) if r.version == version), None)
    if release is None:
        which = f"version {version} of " if version is not None else ""
        raise NotFoundError(f"no release of {which}workflow {workflow_name!r}",
                            hint="release it first (`mloop release WORKFLOW.py`, or workflow.release())",
                            workflow=workflow_name)
    spec = load_spec(release.spec, validate=False)
    # That very release (an older version stays that version: releasing its spec again would
    # make it the newest).
    return create_run(ctx, spec, values or {}, steps=steps, origin=origin, queued=True, release=release,
                      cache=cache)


def retry_queued(ctx: Context, run_id: str, values: dict[str, Any] | None = None) -> RunRecord:
    """Retry a failed or stopped run through the queue (the API's and the console's retry):
    ``retry_run``, then the owner of its last attempt is forgotten, so a server takes it."""
    from mloop.runs.service import retry_run

    run = retry_run(ctx, run_id, values)
    return ctx.store.update_run(run.id, engine_pid=None, engine_host=None, engine_started_at=None)


def copy_run(ctx: Context, run_id: str, *, origin: dict[str, Any] | None = None,
             queued: bool = True) -> RunRecord:
    """A new run of the same release with the same values, steps and storages as ``run_id``
    (any status): queued for a server, or (``queued=False``) owned by this process, which
    executes it next.

    Raises:
        NotFoundError: no such run.
    """
    from mloop.engine.ownership import process_owner

    source = ctx.store.get_run(run_id)
    steps = [(s.name, s.type) for s in ctx.store.list_steps(source.id)]
    run = ctx.store.create_run(source.release_id, steps, params=dict(source.params), storages=dict(source.storages),
                               selected_steps=source.selected_steps,
                               origin={**(origin or {"kind": "copy"}), "copied_from": source.id,
                                       # a partial run's inputs taken with --from-run go with it
                                       **{k: v for k, v in (source.origin or {}).items()
                                          if k in ("from_run", "no_cache")}})
    return run if queued else ctx.store.update_run(run.id, **process_owner())


def queued_runs(ctx: Context, limit: int = 1000) -> list[RunRecord]:
    """Runs waiting in the queue, oldest first."""
    return ctx.store.queued_runs(limit)


@dataclass
class QueueLimits:
    """How many queued runs a server executes at once: in all, and per workflow (0: no limit)."""

    concurrency: int = 4
    per_workflow: int = 0


@dataclass
class _Slot:
    workflow: str
    thread: threading.Thread
    done: bool = False  # set as the run's thread ends, so its slot is free before the thread exits


@dataclass
class Dispatcher:
    """Takes queued runs and executes each in a thread of this process, within the limits.

    ``wake()`` makes it look at the queue at once (a door that just submitted calls it); it
    also looks every ``poll_seconds``, which is how it sees runs another process queued.
    ``start()`` registers it as an engine of ``kind`` (server or worker) that beats every
    ``settings.heartbeat_seconds`` and takes over the runs of dead engines as often; a
    dispatcher only ticked by hand (tests) is no registered engine and takes nothing over.
    """

    ctx: Context
    limits: QueueLimits = field(default_factory=QueueLimits)
    poll_seconds: float = 0.5
    on_error: Callable[[str, BaseException], None] | None = None
    kind: str = "server"
    heartbeat: Heartbeat | None = None
    last_takeover: float | None = None
    taken_over: int = 0  # runs taken over from dead engines since start
    _running: dict[str, _Slot] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _wake: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    last_tick: float | None = None

    @property
    def engine_id(self) -> str | None:
        """This dispatcher's engine in the store (None until started)."""
        return self.heartbeat.id if self.heartbeat is not None else None

    def start(self) -> None:
        from mloop import __version__
        from mloop.engine.ownership import Heartbeat

        self.heartbeat = Heartbeat(self.ctx.store, self.kind, self.ctx.settings.heartbeat_seconds,
                                   version=__version__).start()
        self._thread = threading.Thread(target=self._loop, name="mloop-dispatcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.heartbeat is not None:
            # Runs still executing in this process (the server is stopping them) keep its row,
            # so no engine takes them over while they are still ours; the row goes stale with
            # the process. With none, forgetting it now spares the others a stale row.
            self.heartbeat.stop(forget=not self.running)

    def wake(self) -> None:
        self._wake.set()

    @property
    def running(self) -> list[str]:
        with self._lock:
            return list(self._running)

    def _loop(self) -> None:
        while not self._stop.is_set():
            period = self.ctx.settings.heartbeat_seconds
            if self.heartbeat is not None and (self.last_takeover is None
                                               or time.time() - self.last_takeover >= period):
                try:
                    self.take_over()
                except Exception:  # noqa: BLE001 - a bad moment of the store must not end the queue
                    log.exception("the runs of dead engines could not be looked at; trying again")
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - a bad moment of the store must not end the queue
                log.exception("the run queue could not be read; trying again")
            self._wake.wait(self.poll_seconds)
            self._wake.clear()

    def _free_slots(self) -> tuple[int, dict[str, int]]:
        """Runs this dispatcher may still start, in all and (taken) per workflow."""
        with self._lock:
            for run_id in [r for r, slot in self._running.items() if slot.done or not slot.thread.is_alive()]:
                del self._running[run_id]
            free = self.limits.concurrency - len(self._running) if self.limits.concurrency > 0 else 1_000_000
            per: dict[str, int] = {}
            for slot in self._running.values():
                per[slot.workflow] = per.get(slot.workflow, 0) + 1
        return free, per

    def _spawn(self, run: RunRecord, **kwargs: Any) -> None:
        thread = threading.Thread(target=self._execute, args=(run.id,), kwargs=kwargs, name=f"run-{run.id[:8]}",
                                  daemon=True)
        with self._lock:
            self._running[run.id] = _Slot(run.workflow_name, thread)
        thread.start()

    def resume(self, run_id: str, workflow_name: str) -> bool:
        """Go on with a run that waited for input with no engine (its engine detached while it
        waited): an engine of this dispatcher resumes it now, outside the queue's limits (it
        was admitted when it started). False if this dispatcher runs it already."""
        with self._lock:
            slot = self._running.get(run_id)
            if slot is not None and not slot.done and slot.thread.is_alive():
                return False
        run = self.ctx.store.get_run(run_id)
        self._spawn(run, resume=True)
        return True

    def take_over(self) -> list[str]:
        """Take over the running runs of dead engines, within the limits; the ids taken.

        Dead: the heartbeat missed several beats, or the engine is on this host and its process
        is gone, or its row is gone. Engines found dead that no longer own a running run are
        forgotten.
        """
        from mloop.engine.ownership import engine_row_alive, process_owner

        self.last_takeover = time.time()
        if self.engine_id is None:
            return []
        engines = self.ctx.store.engines
        registered = engines.registered()
        live = {e.id for e in registered if engine_row_alive(e, self.heartbeat)} | {self.engine_id}
        taken: list[str] = []
        free, per = self._free_slots()
        terminals = {e.id for e in registered if e.kind == "cli"}
        if free > 0:
            for run in engines.orphaned_runs(live, limit=free * 4 + 16):
                if run.engine_id in terminals:  # a dead terminal's run: failed, never taken over
                    from mloop.runs.reconcile import reconcile_run

                    reconcile_run(self.ctx, run)
                    continue
                if free <= 0:
                    break
                if run.id in self._running or (self.limits.per_workflow > 0
                                                and per.get(run.workflow_name, 0) >= self.limits.per_workflow):
                    continue
                assert run.engine_id is not None  # orphaned_runs reads only runs an engine claimed
                if not engines.take_over_run(run.id, run.engine_id, **process_owner(self.engine_id)):
                    continue  # another engine took it over first
                log.warning("run %s: its engine %s is dead; taking it over", run.id[:8], run.engine_id[:8])
                per[run.workflow_name] = per.get(run.workflow_name, 0) + 1
                free -= 1
                self._spawn(run, takeover_from=run)
                taken.append(run.id)
        self.taken_over += len(taken)
        engines.prune({e.id for e in registered if e.id not in live})
        return taken

    def tick(self) -> list[str]:
        """Start what the limits allow; the ids of the runs started."""
        self.last_tick = time.time()
        free, per = self._free_slots()
        started: list[str] = []
        if free <= 0:
            return started
        for run in self._candidates(free * 4 + 16):
            if free <= 0:
                break
            if run.id in self._running:
                continue
            if self.limits.per_workflow > 0 and per.get(run.workflow_name, 0) >= self.limits.per_workflow:
                continue
            per[run.workflow_name] = per.get(run.workflow_name, 0) + 1
            free -= 1
            self._spawn(run)
            started.append(run.id)
        return started

    def _candidates(self, limit: int) -> list[RunRecord]:
        """Queued runs, oldest first (a read: the engine's claim decides who runs each)."""
        return queued_runs(self.ctx, limit)

    def _prepare_takeover(self, run: RunRecord) -> bool:
        """:func:`~mloop.runs.reconcile.prepare_takeover`; if it fails, the run goes back to its
        dead engine, so the next look (here or elsewhere) takes it over again instead of leaving
        it claimed by a live engine that doesn't run it."""
        from mloop.runs.reconcile import prepare_takeover

        dead = str(run.engine_id)
        try:
            return prepare_takeover(self.ctx, run, dead)
        except Exception:
            self.ctx.store.update_run(run.id, engine_id=dead, engine_pid=run.engine_pid,
                                      engine_host=run.engine_host, engine_started_at=run.engine_started_at)
            raise

    def _execute(self, run_id: str, resume: bool = False, takeover_from: RunRecord | None = None) -> None:
        import mloop.steps  # noqa: F401 - registers the built-in step kinds with the engine
        from mloop.engine.engine import Engine

        try:
            if takeover_from is not None and not self._prepare_takeover(takeover_from):
                return  # a stop had been requested: the run is stopped, nothing to continue
            # The engine claims it (pending -> running, compare-and-set) and records this
            # dispatcher's engine id: if another server took it first, the engine finds it no
            # longer pending and leaves it.
            engine = Engine(self.ctx.store, self.ctx.settings, self.ctx.artifacts, detach_when_waiting=True,
                            engine_id=self.engine_id)
            engine.execute(run_id, resume=resume, takeover=takeover_from is not None)
        except RunStateError as exc:
            # Lost a race for it (another engine claimed or took it over first): not an error.
            log.info("run %s: %s", run_id[:8], exc)
        except Exception as exc:  # noqa: BLE001 - one run's failure is that run's, not the queue's
            log.warning("run %s: %s", run_id[:8], exc)
            if self.on_error is not None:
                self.on_error(run_id, exc)
        finally:
            with self._lock:
                slot = self._running.get(run_id)
                if slot is not None:
                    slot.done = True
            self._wake.set()  # a slot is free
