"""Schedules: a released workflow started on a cron expression, in a time zone.

Fire times are computed on the wall clock of the schedule's zone and stored and compared in
UTC. Around daylight-saving changes:

* a wall-clock time the clock jumps over (02:30 on a spring-forward night) fires once, at the
  first instant after the jump (03:00 local);
* a wall-clock time that happens twice (01:30 on a fall-back night) fires once, the first
  time, unless the hour field is ``*`` (``*/15 * * * *``, ``@hourly``): such a schedule is about
  elapsed time, and fires in both repeated hours.

croniter does the cron arithmetic on naive wall-clock times; this module maps them to instants
(croniter on aware times fires a daily 01:30 job twice on a fall-back night).

Catch-up, when several fire times passed while no server ran (see :func:`plan_fires`):

* ``skip``: fire only if the latest due time is at most :data:`SKIP_WINDOW` old, otherwise
  record it ``skipped``;
* ``one`` (the default): one run, for the latest due time;
* ``all``: a run for every due time, at most :data:`MAX_CATCHUP` (the latest ones); older ones
  are recorded as one ``skipped`` fire that says so.

:class:`mloop.runs.scheduler.Scheduler` acts on due schedules (it queues runs, so it lives in the
run service); each fire time is claimed by inserting its ``schedule_fires`` row, so two
schedulers (two servers on one database) never both fire it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mloop.errors import NotFoundError, ScheduleError

if TYPE_CHECKING:
    from mloop.context import Context
    from mloop.store.schedules import ScheduleFireRecord, ScheduleRecord

__all__ = [
    "CATCHUP_POLICIES",
    "FirePlan",
    "MAX_CATCHUP",
    "SKIP_WINDOW",
    "check_catchup",
    "check_cron",
    "check_name",
    "check_timezone",
    "create_schedule",
    "delete_schedule",
    "get_schedule",
    "iso_utc",
    "list_fires",
    "list_schedules",
    "next_fire_after",
    "next_fire_times",
    "pause_schedule",
    "plan_fires",
    "prev_fire_at_or_before",
    "resume_schedule",
]

UTC = timezone.utc
CATCHUP_POLICIES = ("skip", "one", "all")
#: ``skip``: the latest due time is still fired when it is at most this old.
SKIP_WINDOW = timedelta(seconds=60)
#: ``all``: at most this many missed fire times are run (the latest ones).
MAX_CATCHUP = 100
#: Wall-clock times are searched this far around a time zone's offset changes.
_PROBE_HOURS = 4
#: How many cron candidates one search looks at before it gives up.
_SEARCH_LIMIT = 100_000

_NAME_RE = re.compile(r"^[\w\-]{1,64}$")
_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_CRON_EXAMPLE = "e.g. '0 3 * * 1-5' (03:00 Monday to Friday) or '*/15 * * * *'"


# -- checks ------------------------------------------------------------------------------------------

def check_name(name: str) -> str:
    """Return ``name`` if it is a valid schedule name.

    Raises:
        ScheduleError: it is not.
    """
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ScheduleError(f"invalid schedule name {name!r}", schedule=str(name),
                            hint="1-64 letters, digits, '-' or '_', e.g. nightly-train")
    return name


def check_timezone(name: str) -> ZoneInfo:
    """The zone named ``name`` (an IANA name).

    Raises:
        ScheduleError: no such zone.
    """
    try:
        if not name or not isinstance(name, str):
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ScheduleError(f"unknown time zone {name!r}", timezone=str(name),
                            hint="an IANA zone name, e.g. Asia/Shanghai, Europe/Berlin, America/New_York "
                                 "or UTC") from exc


def check_cron(expr: str) -> str:
    """Return ``expr``, normalised, if it is a five-field cron expression (or a macro: ``@daily``).

    Raises:
        ScheduleError: it is not.
    """
    from croniter import croniter

    text = " ".join(str(expr).split())
    fields = text.split(" ")
    bad = ScheduleError(f"invalid cron expression {expr!r}", cron=str(expr),
                        hint=f"five fields: minute hour day-of-month month day-of-week, {_CRON_EXAMPLE}")
    if text.lower() in _MACROS:
        return text.lower()
    if len(fields) != 5:
        raise bad
    try:
        croniter(text, datetime(2000, 1, 1))
    except (ValueError, KeyError, TypeError) as exc:  # croniter's errors are ValueErrors
        raise bad from exc
    return text


def check_catchup(policy: str) -> str:
    if policy not in CATCHUP_POLICIES:
        raise ScheduleError(f"unknown catch-up policy {policy!r}", catchup=str(policy),
                            hint="one of: skip (no late runs), one (one run for the latest missed time), "
                                 f"all (every missed time, at most {MAX_CATCHUP})")
    return policy


# -- fire times --------------------------------------------------------------------------------------

def _as_utc(value: datetime) -> datetime:
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def _hour_is_wildcard(cron: str) -> bool:
    """Whether the schedule fires every hour (then both repeated hours of a fall-back night fire)."""
    if cron.startswith("@"):
        return cron == "@hourly"
    return cron.split(" ")[1] in ("*", "*/1")


def _margin(tz: ZoneInfo, at: datetime) -> timedelta:
    """How far the zone's offset moves within a few hours of ``at`` (zero away from changes)."""
    base = at.astimezone(tz).utcoffset() or timedelta(0)
    worst = timedelta(0)
    for hours in range(-_PROBE_HOURS, _PROBE_HOURS + 1):
        offset = (at + timedelta(hours=hours)).astimezone(tz).utcoffset() or timedelta(0)
        worst = max(worst, abs(offset - base))
    return worst


def _gap_end(tz: ZoneInfo, lo: datetime, hi: datetime) -> datetime:
    """The instant the wall clock jumps (to the second), between ``lo`` (before) and ``hi`` (after)."""
    after = hi.astimezone(tz).utcoffset()
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if mid.astimezone(tz).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return hi


def _instants(naive: datetime, tz: ZoneInfo, both_folds: bool) -> list[datetime]:
    """The UTC instants at which the wall-clock time ``naive`` fires in ``tz``."""
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first == second:
        return [first]
    if first.astimezone(tz).replace(tzinfo=None) == naive:  # it happens twice (fall back)
        return [first, second] if both_folds else [first]
    # The clock jumps over it (spring forward): the first instant after the jump.
    return [_gap_end(tz, min(first, second), max(first, second))]


def next_fire_after(cron: str, tz_name: str, after: datetime) -> datetime | None:
    """The first fire time strictly after ``after`` (UTC), or None if the expression never fires."""
    from croniter import croniter

    tz = check_timezone(tz_name)
    after = _as_utc(after).replace(microsecond=0)
    both = _hour_is_wildcard(cron)
    start = after.astimezone(tz).replace(tzinfo=None) - _margin(tz, after)
    it = croniter(cron, start)
    best: datetime | None = None
    limit: datetime | None = None
    for _ in range(_SEARCH_LIMIT):
        try:
            naive = it.get_next(datetime)
        except (ValueError, KeyError):  # CroniterBadDateError: it never matches
            break
        if limit is not None and naive > limit:
            break
        for instant in _instants(naive, tz, both):
            if instant > after and (best is None or instant < best):
                best = instant
        if best is not None and limit is None:
            limit = naive + _margin(tz, best)
    return best


def prev_fire_at_or_before(cron: str, tz_name: str, at: datetime) -> datetime | None:
    """The last fire time at or before ``at`` (UTC), or None."""
    from croniter import croniter

    tz = check_timezone(tz_name)
    at = _as_utc(at).replace(microsecond=0)
    both = _hour_is_wildcard(cron)
    start = at.astimezone(tz).replace(tzinfo=None) + _margin(tz, at) + timedelta(seconds=1)
    it = croniter(cron, start)
    best: datetime | None = None
    limit: datetime | None = None
    for _ in range(_SEARCH_LIMIT):
        try:
            naive = it.get_prev(datetime)
        except (ValueError, KeyError):
            break
        if limit is not None and naive < limit:
            break
        for instant in _instants(naive, tz, both):
            if instant <= at and (best is None or instant > best):
                best = instant
        if best is not None and limit is None:
            limit = naive - _margin(tz, best)
    return best


def next_fire_times(schedule: ScheduleRecord, after: datetime, n: int) -> list[datetime]:
    """The next ``n`` fire times of ``schedule`` strictly after ``after``, in UTC."""
    out: list[datetime] = []
    t = after
    for _ in range(max(0, n)):
        found = next_fire_after(schedule.cron, schedule.timezone, t)
        if found is None:
            break
        out.append(found)
        t = found
    return out


@dataclass
class FirePlan:
    """What one tick does for one due schedule."""

    fire: list[datetime] = field(default_factory=list)  # queue a run for each, oldest first
    skip: list[tuple[datetime, str]] = field(default_factory=list)  # record as skipped, with why
    last: datetime | None = None  # the latest due time (the schedule's new last_fire_at)
    next: datetime | None = None  # the first fire time after now


def plan_fires(cron: str, tz_name: str, catchup: str, since: datetime, now: datetime, *,
               skip_window: timedelta = SKIP_WINDOW, cap: int = MAX_CATCHUP) -> FirePlan:
    """The fire times due in ``[since, now]`` and what to do with each, per the catch-up policy."""
    since, now = _as_utc(since), _as_utc(now)
    latest = prev_fire_at_or_before(cron, tz_name, now)
    if latest is None or latest < since:
        return FirePlan(next=next_fire_after(cron, tz_name, now))
    plan = FirePlan(last=latest, next=next_fire_after(cron, tz_name, latest))
    if catchup == "skip":
        late = now - latest
        if late <= skip_window:
            plan.fire.append(latest)
        else:
            plan.skip.append((latest, f"missed by {_span(late)} (no server ran then); catch-up 'skip' "
                                      "starts no late run"))
    elif catchup == "all":
        times: list[datetime] = []
        t: datetime | None = latest
        while t is not None and t >= since and len(times) < cap:
            times.append(t)
            t = prev_fire_at_or_before(cron, tz_name, t - timedelta(seconds=1))
        plan.fire = times[::-1]
        if t is not None and t >= since:
            plan.skip.append((t, f"fire times from {iso_utc(since)} to {iso_utc(t)} were missed and not run: "
                                 f"catch-up 'all' runs at most the latest {cap}"))
    else:  # one
        plan.fire.append(latest)
    return plan


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def iso_utc(value: datetime) -> str:
    return _as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- domain operations -------------------------------------------------------------------------------

def _check_params(ctx: Context, workflow: str, params: dict[str, Any]) -> None:
    """Refuse a never-released workflow and values its latest release would refuse."""
    from mloop.spec import load_spec
    from mloop.spec.values import resolve_values

    release = ctx.store.latest_release(workflow)
    if release is None:
        raise NotFoundError(f"workflow {workflow!r} was never released: nothing to schedule", workflow=workflow,
                            hint="release it first (`mloop release WORKFLOW.py`, or workflow.release())")
    resolve_values(load_spec(release.spec, validate=False), dict(params))


def _default_name(ctx: Context, workflow: str) -> str:
    stem = re.sub(r"[^\w\-]", "-", workflow)[:56] or "schedule"
    taken = {s.name for s in ctx.store.schedules.list_all()}
    n = 1
    while f"{stem}-{n}" in taken:
        n += 1
    return f"{stem}-{n}"


def create_schedule(ctx: Context, workflow: str, cron: str, *, tz: str = "UTC", params: dict[str, Any] | None = None,
                    name: str | None = None, catchup: str = "one", paused: bool = False,
                    now: datetime | None = None) -> ScheduleRecord:
    """Schedule runs of a released workflow.

    Raises:
        ScheduleError: a bad name, cron expression, time zone or catch-up policy; an expression
            that never fires; a name that is taken (ScheduleExistsError).
        NotFoundError: the workflow was never released.
        PlaceholderValueError: ``params`` its latest release refuses.
    """
    expr = check_cron(cron)
    check_timezone(tz)
    check_catchup(catchup)
    if name is not None:
        check_name(name)
    values = dict(params or {})
    _check_params(ctx, workflow, values)
    now = _as_utc(now or datetime.now(UTC))
    first = next_fire_after(expr, tz, now)
    if first is None:
        raise ScheduleError(f"cron expression {cron!r} never fires", cron=cron,
                            hint=f"check the day-of-month and month fields, {_CRON_EXAMPLE}")
    return ctx.store.schedules.create(name or _default_name(ctx, workflow), workflow_name=workflow, cron=expr,
                                      timezone_name=tz, params=values, catchup=catchup, paused=paused,
                                      next_fire_at=first, created_at=now)


def list_schedules(ctx: Context, workflow: str | None = None) -> list[ScheduleRecord]:
    """Every schedule (of one workflow), by name."""
    return ctx.store.schedules.list_all(workflow)


def get_schedule(ctx: Context, name: str) -> ScheduleRecord:
    """Raises NotFoundError."""
    return ctx.store.schedules.get(name)


def pause_schedule(ctx: Context, name: str) -> ScheduleRecord:
    """Stop firing a schedule (until resumed). Raises NotFoundError."""
    sched = ctx.store.schedules.get(name)
    return ctx.store.schedules.set_paused(sched.id, True, None)


def resume_schedule(ctx: Context, name: str, *, now: datetime | None = None) -> ScheduleRecord:
    """Fire a paused schedule again, from the next fire time after now (what was due while it
    was paused is not caught up). Raises NotFoundError."""
    sched = ctx.store.schedules.get(name)
    now = _as_utc(now or datetime.now(UTC))
    return ctx.store.schedules.set_paused(sched.id, False, next_fire_after(sched.cron, sched.timezone, now))


def delete_schedule(ctx: Context, name: str) -> ScheduleRecord:
    """Remove a schedule and its fire history (the runs it started stay). Raises NotFoundError."""
    sched = ctx.store.schedules.get(name)
    ctx.store.schedules.delete(sched.id)
    return sched


def list_fires(ctx: Context, name: str, limit: int = 20) -> list[ScheduleFireRecord]:
    """A schedule's latest fires, newest first. Raises NotFoundError."""
    sched = ctx.store.schedules.get(name)
    return ctx.store.schedules.list_fires(sched.id, limit)
