"""The scheduler of the team server: it queues a run for each due fire time of each schedule.

The server calls :meth:`Scheduler.tick` from a loop thread and sleeps
:meth:`Scheduler.seconds_until_due` between ticks. Fire times and catch-up are decided by
:mod:`mloop.services.schedules`; a fire time is claimed by inserting its ``schedule_fires`` row
(unique per schedule and time), and only the scheduler whose insert succeeded queues the run,
so two servers on one database never both fire it. A run that cannot be queued (a value the
latest release refuses, a workflow no longer released) is recorded as a ``failed`` fire with the
reason; the loop goes on.

Layer: run service (it queues runs through :func:`mloop.runs.queue.submit`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from mloop.services.schedules import MAX_CATCHUP, SKIP_WINDOW, iso_utc, plan_fires

if TYPE_CHECKING:
    from mloop.context import Context
    from mloop.store.schedules import ScheduleFireRecord, ScheduleRecord

__all__ = ["Scheduler"]

log = logging.getLogger("mloop.schedules")
UTC = timezone.utc


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Scheduler:
    """Fires due schedules: the server calls :meth:`tick` from its loop thread.

    Args:
        ctx: the context runs are queued in.
        clock: seconds since the epoch (``time.time``; tests pass a controllable one).
        skip_window: how late ``skip`` still fires.
        max_catchup: how many missed fire times ``all`` runs at most.
    """

    def __init__(self, ctx: Context, clock: Callable[[], float] = time.time, *,
                 skip_window: timedelta = SKIP_WINDOW, max_catchup: int = MAX_CATCHUP) -> None:
        self.ctx = ctx
        self.clock = clock
        self.skip_window = skip_window
        self.max_catchup = max_catchup

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def tick(self, now: datetime | None = None) -> list[ScheduleFireRecord]:
        """Act on every due schedule; the fires this scheduler claimed (started, failed or skipped).

        Never raises for one schedule's trouble: it is logged (and recorded on the fire when a
        run could not be queued) and the other schedules go on.
        """
        now = _as_utc(now) if now is not None else self.now()
        fired: list[ScheduleFireRecord] = []
        for sched in self.ctx.store.schedules.due(now):
            try:
                fired.extend(self._fire(sched, now))
            except Exception:  # noqa: BLE001 - one schedule must not stop the others
                log.exception("schedule %s could not be fired", sched.name)
        return fired

    def next_due(self) -> datetime | None:
        """The earliest next fire time of the unpaused schedules (UTC), or None."""
        return self.ctx.store.schedules.next_due()

    def seconds_until_due(self, max_seconds: float = 30.0) -> float:
        """How long the loop may sleep: until the next due time, at most ``max_seconds`` (a
        schedule created meanwhile, by another process too, is seen within that bound)."""
        due = self.next_due()
        if due is None:
            return max_seconds
        return max(0.0, min(max_seconds, due.timestamp() - self.clock()))

    def _fire(self, sched: ScheduleRecord, now: datetime) -> list[ScheduleFireRecord]:
        from mloop.runs.queue import submit

        repo = self.ctx.store.schedules
        since = sched.next_fire_at or now
        plan = plan_fires(sched.cron, sched.timezone, sched.catchup, since, now,
                          skip_window=self.skip_window, cap=self.max_catchup)
        out: list[ScheduleFireRecord] = []
        for when, why in plan.skip:
            claimed = repo.claim_fire(sched.id, when, status="skipped", message=why)
            if claimed is not None:
                log.info("schedule %s: %s skipped: %s", sched.name, iso_utc(when), why)
                out.append(claimed)
        for when in plan.fire:
            claimed = repo.claim_fire(sched.id, when)
            if claimed is None:  # another scheduler fired it
                continue
            origin = {"kind": "schedule", "schedule": sched.name, "fire_time": iso_utc(when)}
            try:
                run = submit(self.ctx, sched.workflow_name, dict(sched.params), origin=origin)
            except Exception as exc:  # noqa: BLE001 - recorded on the fire; the loop goes on
                log.warning("schedule %s: %s could not queue a run: %s", sched.name, iso_utc(when), exc)
                out.append(repo.finish_fire(claimed.id, status="failed", message=str(exc)))
                continue
            log.info("schedule %s: %s queued run %s", sched.name, iso_utc(when), run.id[:12])
            out.append(repo.finish_fire(claimed.id, status="started", run_id=run.id))
        if plan.last is not None:
            repo.advance(sched.id, plan.last, plan.next)
        else:
            repo.reschedule(sched.id, sched.next_fire_at, plan.next)
        return out
