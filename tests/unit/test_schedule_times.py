"""Fire times of schedules: cron in a time zone, daylight-saving gaps and repeats, catch-up.

Pure logic with fixed instants (no store, no clock)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from mloop.errors import ScheduleError
from mloop.services.schedules import (
    check_cron,
    check_name,
    check_timezone,
    next_fire_after,
    next_fire_times,
    plan_fires,
    prev_fire_at_or_before,
)

UTC = timezone.utc


def local(tz: str, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz), fold=fold).astimezone(UTC)  # type: ignore[misc]


def fires_between(cron: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    out, t = [], start
    while True:
        found = next_fire_after(cron, tz, t)
        assert found is not None
        if found > end:
            return out
        out.append(found)
        t = found


def walls(times: list[datetime], tz: str) -> list[str]:
    return [t.astimezone(ZoneInfo(tz)).strftime("%m-%d %H:%M %Z") for t in times]


# (zone, spring-forward date, fall-back date)
DST_ZONES = [("America/New_York", (2024, 3, 10), (2024, 11, 3)),
             ("Europe/Berlin", (2024, 3, 31), (2024, 10, 27))]


class TestSpringForward:
    @pytest.mark.parametrize(("tz", "spring", "fall"), DST_ZONES)
    def test_a_daily_job_inside_the_gap_fires_once_at_the_first_instant_after_it(
            self, tz: str, spring: tuple[int, int, int], fall: tuple[int, int, int]) -> None:
        y, m, d = spring
        start, end = local(tz, y, m, d, 12) - timedelta(days=2), local(tz, y, m, d, 12) + timedelta(days=1)
        fires = fires_between("30 2 * * *", tz, start, end)
        assert len(fires) == 3, walls(fires, tz)
        # 02:30 does not exist that night: the clock jumps from 02:00 to 03:00.
        assert fires[1] == local(tz, y, m, d, 3, 0)
        assert walls(fires, tz)[1].startswith(f"{m:02d}-{d:02d} 03:00")
        assert [t.astimezone(ZoneInfo(tz)).strftime("%H:%M") for t in fires] == ["02:30", "03:00", "02:30"]

    @pytest.mark.parametrize(("tz", "spring", "fall"), DST_ZONES)
    def test_an_every_15_minutes_job_does_not_fire_twice_at_the_end_of_the_gap(
            self, tz: str, spring: tuple[int, int, int], fall: tuple[int, int, int]) -> None:
        y, m, d = spring
        fires = fires_between("*/15 * * * *", tz, local(tz, y, m, d, 1, 0), local(tz, y, m, d, 4, 0))
        assert len(fires) == len(set(fires))
        assert [t.astimezone(ZoneInfo(tz)).strftime("%H:%M") for t in fires] == [
            "01:15", "01:30", "01:45", "03:00", "03:15", "03:30", "03:45", "04:00"]
        assert all(b - a == timedelta(minutes=15) for a, b in zip(fires, fires[1:]))


class TestFallBack:
    @pytest.mark.parametrize(("tz", "spring", "fall"), DST_ZONES)
    def test_a_daily_job_in_the_repeated_hour_fires_exactly_once(
            self, tz: str, spring: tuple[int, int, int], fall: tuple[int, int, int]) -> None:
        y, m, d = fall
        hour = 1 if tz == "America/New_York" else 2  # the repeated hour: 01:xx in New York, 02:xx in Berlin
        cron = f"30 {hour} * * *"
        fires = fires_between(cron, tz, local(tz, y, m, d - 1, 12), local(tz, y, m, d + 1, 12))
        assert len(fires) == 2, walls(fires, tz)
        assert fires[0] == local(tz, y, m, d, hour, 30, fold=0)  # the first of the two 01:30s
        assert fires[1] == local(tz, y, m, d + 1, hour, 30)
        # and seen from inside the repeated hour, it is not due again
        assert next_fire_after(cron, tz, local(tz, y, m, d, hour, 45, fold=1)) == fires[1]

    @pytest.mark.parametrize(("tz", "spring", "fall"), DST_ZONES)
    def test_an_hourly_job_fires_in_both_repeated_hours(
            self, tz: str, spring: tuple[int, int, int], fall: tuple[int, int, int]) -> None:
        y, m, d = fall
        fires = fires_between("0 * * * *", tz, local(tz, y, m, d, 0, 0), local(tz, y, m, d, 4, 0))
        assert all(b - a == timedelta(hours=1) for a, b in zip(fires, fires[1:])), walls(fires, tz)
        assert len(fires) == 5  # 01, 02, 03, 04 plus the repeated hour

    def test_prev_fire_agrees_with_next_fire_around_both_changes(self) -> None:
        for tz, spring, fall in DST_ZONES:
            for day in (spring, fall):
                for cron in ("30 2 * * *", "30 1 * * *", "*/20 * * * *", "0 3 * * 1-5"):
                    start = local(tz, *day, 0, 0) - timedelta(days=1)
                    fires = fires_between(cron, tz, start, start + timedelta(days=3))
                    for a, b in zip(fires, fires[1:]):
                        assert prev_fire_at_or_before(cron, tz, b - timedelta(seconds=1)) == a, (tz, cron, a, b)
                        assert prev_fire_at_or_before(cron, tz, b) == b


class TestNoDst:
    def test_shanghai_is_plain_utc_plus_8_all_year(self) -> None:
        tz = "Asia/Shanghai"
        for y, m, d in [(2024, 3, 10), (2024, 3, 31), (2024, 10, 27), (2024, 11, 3)]:
            day = datetime(y, m, d, 0, tzinfo=UTC)
            fires = fires_between("30 2 * * *", tz, day - timedelta(days=1), day + timedelta(days=1))
            assert len(fires) == 2
            assert all(t.astimezone(ZoneInfo(tz)).strftime("%H:%M") == "02:30" for t in fires)
            assert all((t.hour, t.minute) == (18, 30) for t in fires)

    def test_weekdays_at_3_in_shanghai(self) -> None:
        # 2024-01-05 is a Friday: the next run after Friday 03:00 is Monday 03:00 (Sunday 19:00 UTC)
        after = datetime(2024, 1, 4, 19, 0, tzinfo=UTC)
        sched = SimpleNamespace(cron="0 3 * * 1-5", timezone="Asia/Shanghai")
        assert next_fire_times(sched, after, 2) == [datetime(2024, 1, 7, 19, 0, tzinfo=UTC),  # type: ignore[arg-type]
                                                    datetime(2024, 1, 8, 19, 0, tzinfo=UTC)]


class TestChecks:
    @pytest.mark.parametrize("expr", ["0 3 * *", "61 3 * * *", "0 3 * * mon-xyz", "every day", "0 0 3 * * *"])
    def test_bad_cron_is_refused_with_an_example(self, expr: str) -> None:
        with pytest.raises(ScheduleError, match="invalid cron expression") as info:
            check_cron(expr)
        assert info.value.hint and "0 3 * * 1-5" in info.value.hint

    def test_macros_and_extra_spaces_are_accepted(self) -> None:
        assert check_cron("@daily") == "@daily"
        assert check_cron(" 0  3 * * 1-5 ") == "0 3 * * 1-5"

    def test_unknown_zone_names_it_with_examples(self) -> None:
        with pytest.raises(ScheduleError, match="Mars/Olympus") as info:
            check_timezone("Mars/Olympus")
        assert info.value.hint and "Asia/Shanghai" in info.value.hint

    @pytest.mark.parametrize("name", ["", "a b", "x" * 65, "a/b"])
    def test_bad_names(self, name: str) -> None:
        with pytest.raises(ScheduleError, match="invalid schedule name"):
            check_name(name)

    def test_good_names(self) -> None:
        assert check_name("nightly_train-2") == "nightly_train-2"
        assert check_name("训练") == "训练"

    def test_an_expression_that_never_fires_has_no_next_time(self) -> None:
        assert next_fire_after("0 0 31 2 *", "UTC", datetime(2024, 1, 1, tzinfo=UTC)) is None


class TestCatchup:
    """A daily 03:00 (UTC) job whose server was down from Jan 1 to Jan 5 10:00."""

    cron, tz = "0 3 * * *", "UTC"
    since = datetime(2024, 1, 1, 3, 0, tzinfo=UTC)  # the first missed fire time
    now = datetime(2024, 1, 5, 10, 0, tzinfo=UTC)

    def test_one_fires_only_the_latest_missed_time(self) -> None:
        plan = plan_fires(self.cron, self.tz, "one", self.since, self.now)
        assert plan.fire == [datetime(2024, 1, 5, 3, 0, tzinfo=UTC)] and plan.skip == []
        assert plan.last == datetime(2024, 1, 5, 3, 0, tzinfo=UTC)
        assert plan.next == datetime(2024, 1, 6, 3, 0, tzinfo=UTC)

    def test_all_fires_each_missed_time_oldest_first(self) -> None:
        plan = plan_fires(self.cron, self.tz, "all", self.since, self.now)
        assert plan.fire == [datetime(2024, 1, d, 3, 0, tzinfo=UTC) for d in range(1, 6)]
        assert plan.skip == []

    def test_all_is_capped_and_says_what_it_left(self) -> None:
        plan = plan_fires(self.cron, self.tz, "all", self.since, self.now, cap=3)
        assert plan.fire == [datetime(2024, 1, d, 3, 0, tzinfo=UTC) for d in (3, 4, 5)]
        assert len(plan.skip) == 1
        when, why = plan.skip[0]
        assert when == datetime(2024, 1, 2, 3, 0, tzinfo=UTC) and "at most the latest 3" in why

    def test_skip_records_a_late_time_as_skipped(self) -> None:
        plan = plan_fires(self.cron, self.tz, "skip", self.since, self.now)
        assert plan.fire == []
        assert [w for w, _ in plan.skip] == [datetime(2024, 1, 5, 3, 0, tzinfo=UTC)]
        assert "7h" in plan.skip[0][1]
        assert plan.next == datetime(2024, 1, 6, 3, 0, tzinfo=UTC)

    def test_skip_still_fires_a_time_that_is_only_seconds_late(self) -> None:
        now = datetime(2024, 1, 5, 3, 0, 30, tzinfo=UTC)
        plan = plan_fires(self.cron, self.tz, "skip", self.since, now)
        assert plan.fire == [datetime(2024, 1, 5, 3, 0, tzinfo=UTC)] and plan.skip == []

    def test_nothing_due_yet(self) -> None:
        plan = plan_fires(self.cron, self.tz, "one", datetime(2024, 1, 6, 3, 0, tzinfo=UTC), self.now)
        assert plan.fire == [] and plan.last is None
        assert plan.next == datetime(2024, 1, 6, 3, 0, tzinfo=UTC)

    def test_catchup_across_a_spring_forward_night(self) -> None:
        tz = "Europe/Berlin"
        plan = plan_fires("30 2 * * *", tz, "all", local(tz, 2024, 3, 30, 2, 30), local(tz, 2024, 4, 1, 12, 0))
        assert [t.astimezone(ZoneInfo(tz)).strftime("%d %H:%M") for t in plan.fire] == ["30 02:30", "31 03:00",
                                                                                        "01 02:30"]
