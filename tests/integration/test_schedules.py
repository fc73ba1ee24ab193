"""Schedules on a real store: create (service functions and CLI), tick with a controlled clock,
claims that make a double fire impossible (two schedulers, two threads, SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from helpers import BOTH_DATABASES, Embedded, database_url, embedded, write_job, write_workflow  # noqa: F401

from mloop.cli import load_workflow
from mloop.config import Settings
from mloop.errors import NotFoundError, PlaceholderValueError, ScheduleError, ScheduleExistsError
from mloop.runs import open_backend
from mloop.runs.scheduler import Scheduler
from mloop.runs.service import release_spec
from mloop.services.schedules import (
    create_schedule,
    delete_schedule,
    get_schedule,
    list_fires,
    list_schedules,
    pause_schedule,
    resume_schedule,
)

pytestmark = pytest.mark.timeout(120)
UTC = timezone.utc
#: Monday 2024-01-08 00:00 UTC (08:00 in Shanghai)
T0 = datetime(2024, 1, 8, 0, 0, tzinfo=UTC)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at.timestamp()


def release(tmp_path: Path, backend: Any, *, with_epochs: bool = True) -> None:
    write_job(tmp_path / "code", "print('train')\n", args=("out", "epochs") if with_epochs else ("out",))
    params = "params={'epochs': epochs}" if with_epochs else "params=None"
    write_workflow(tmp_path, f"""
        epochs = wf.Placeholder(name="epochs", placeholder_type=wf.PlaceholderType.INT, default=1)
        train = job("train", {params})
        workflow = wf.Workflow(name="nightly", desc="", steps=[train])
    """)
    release_spec(backend, load_workflow(str(tmp_path / "flow.py")))


@pytest.fixture
def ctx(tmp_path: Path, embedded: Embedded) -> Any:
    release(tmp_path, embedded.backend)
    return embedded.backend


def scheduled_runs(ctx: Any) -> list[Any]:
    return [r for r in ctx.store.list_runs("nightly", limit=1000) if (r.origin or {}).get("kind") == "schedule"]


class TestCreate:
    def test_a_never_released_workflow_is_refused_saying_to_release_it(self, ctx: Any) -> None:
        with pytest.raises(NotFoundError, match="never released") as info:
            create_schedule(ctx, "ghost", "0 3 * * *")
        assert info.value.hint and "release" in info.value.hint

    @pytest.mark.parametrize(("params", "fragment"), [({"epochs": "abc"}, "epochs"),
                                                      ({"epoch": "3"}, "no placeholder")])
    def test_a_bad_value_fails_at_create_time(self, ctx: Any, params: dict[str, str], fragment: str) -> None:
        with pytest.raises(PlaceholderValueError, match=fragment):
            create_schedule(ctx, "nightly", "0 3 * * *", params=params)
        assert list_schedules(ctx) == []

    def test_bad_cron_zone_and_catchup_name_what_is_wrong(self, ctx: Any) -> None:
        with pytest.raises(ScheduleError, match="invalid cron expression '0 3 \\* \\*'"):
            create_schedule(ctx, "nightly", "0 3 * *")
        with pytest.raises(ScheduleError, match="unknown time zone 'Asia/Shangai'"):
            create_schedule(ctx, "nightly", "0 3 * * *", tz="Asia/Shangai")
        with pytest.raises(ScheduleError, match="catch-up"):
            create_schedule(ctx, "nightly", "0 3 * * *", catchup="most")

    def test_default_names_next_fire_time_and_a_taken_name(self, ctx: Any) -> None:
        a = create_schedule(ctx, "nightly", "0 3 * * 1-5", tz="Asia/Shanghai", params={"epochs": "3"}, now=T0)
        b = create_schedule(ctx, "nightly", "0 3 * * *", now=T0)
        assert (a.name, b.name) == ("nightly-1", "nightly-2")
        # Monday 08:00 Shanghai -> Tuesday 03:00 Shanghai = Monday 19:00 UTC
        assert a.next_fire_at == datetime(2024, 1, 8, 19, 0, tzinfo=UTC)
        assert b.next_fire_at == datetime(2024, 1, 8, 3, 0, tzinfo=UTC)
        assert get_schedule(ctx, "nightly-1").params == {"epochs": "3"}
        with pytest.raises(ScheduleExistsError):
            create_schedule(ctx, "nightly", "0 3 * * *", name="nightly-1")


class TestTick:
    def test_a_due_schedule_queues_one_run_with_its_origin_and_only_once(self, ctx: Any) -> None:
        sched = create_schedule(ctx, "nightly", "0 3 * * *", tz="Asia/Shanghai", params={"epochs": "3"}, now=T0)
        due = sched.next_fire_at
        assert due == datetime(2024, 1, 8, 19, 0, tzinfo=UTC)
        clock = Clock(due - timedelta(seconds=1))
        scheduler = Scheduler(ctx, clock=clock)
        assert scheduler.tick() == []
        assert scheduler.seconds_until_due(max_seconds=30) == 1.0

        clock.at = due + timedelta(seconds=2)
        fired = scheduler.tick()
        assert [(f.status, f.fire_time) for f in fired] == [("started", due)]
        run = ctx.store.get_run(fired[0].run_id)
        assert run.status == "pending" and run.engine_pid is None  # queued for the server
        assert run.origin == {"kind": "schedule", "schedule": sched.name, "fire_time": "2024-01-08T19:00:00Z"}
        assert run.params["epochs"] == 3

        # the same tick again, and another scheduler on the same store: nothing more
        assert scheduler.tick() == []
        assert Scheduler(ctx, clock=clock).tick() == []
        assert len(scheduled_runs(ctx)) == 1
        after = get_schedule(ctx, sched.name)
        assert after.last_fire_at == due and after.next_fire_at == due + timedelta(days=1)
        assert scheduler.next_due() == due + timedelta(days=1)

        clock.at = due + timedelta(days=1, seconds=5)
        assert [f.status for f in scheduler.tick()] == ["started"]
        assert len(scheduled_runs(ctx)) == 2
        assert [f.fire_time for f in list_fires(ctx, sched.name)] == [due + timedelta(days=1), due]

    @pytest.mark.parametrize(("catchup", "started", "skipped"), [("one", 1, 0), ("all", 5, 0), ("skip", 0, 1)])
    def test_catchup_after_the_server_was_down_for_days(self, ctx: Any, catchup: str, started: int,
                                                        skipped: int) -> None:
        sched = create_schedule(ctx, "nightly", "0 3 * * *", catchup=catchup, now=T0)
        fired = Scheduler(ctx).tick(T0 + timedelta(days=4, hours=5))  # due: Jan 8..12 at 03:00
        assert sum(f.status == "started" for f in fired) == started
        assert sum(f.status == "skipped" for f in fired) == skipped
        times = sorted(r.origin["fire_time"] for r in scheduled_runs(ctx))
        if catchup == "all":
            assert times == [f"2024-01-{d:02d}T03:00:00Z" for d in range(8, 13)]
        elif catchup == "one":
            assert times == ["2024-01-12T03:00:00Z"]
        else:
            assert times == [] and "catch-up 'skip'" in (fired[0].message or "")
        assert get_schedule(ctx, sched.name).next_fire_at == datetime(2024, 1, 13, 3, 0, tzinfo=UTC)

    def test_a_run_that_cannot_be_queued_is_a_failed_fire_and_the_loop_goes_on(
            self, tmp_path: Path, ctx: Any) -> None:
        bad = create_schedule(ctx, "nightly", "0 3 * * *", params={"epochs": "3"}, name="bad", now=T0)
        good = create_schedule(ctx, "nightly", "0 3 * * *", name="good", now=T0)
        release(tmp_path, ctx, with_epochs=False)  # a new release without the placeholder
        fired = {f.schedule_id: f for f in Scheduler(ctx).tick(T0 + timedelta(hours=3))}
        assert fired[bad.id].status == "failed" and "epochs" in (fired[bad.id].message or "")
        assert fired[bad.id].run_id is None
        assert fired[good.id].status == "started"
        assert get_schedule(ctx, "bad").next_fire_at == datetime(2024, 1, 9, 3, 0, tzinfo=UTC)

    def test_pause_resume_delete(self, ctx: Any) -> None:
        sched = create_schedule(ctx, "nightly", "0 3 * * *", now=T0)
        pause_schedule(ctx, sched.name)
        assert Scheduler(ctx).tick(T0 + timedelta(days=2)) == []
        assert Scheduler(ctx).next_due() is None
        resumed = resume_schedule(ctx, sched.name, now=T0 + timedelta(days=2))
        assert not resumed.paused
        assert resumed.next_fire_at == datetime(2024, 1, 10, 3, 0, tzinfo=UTC)  # no catch-up of the pause
        assert [f.fire_time for f in Scheduler(ctx).tick(T0 + timedelta(days=2, hours=4))] == [resumed.next_fire_at]
        delete_schedule(ctx, sched.name)
        assert list_schedules(ctx) == []
        with pytest.raises(NotFoundError, match="no schedule named"):
            get_schedule(ctx, sched.name)
        assert len(scheduled_runs(ctx)) == 1  # its runs stay


class TestTwoSchedulers:
    @BOTH_DATABASES
    def test_two_schedulers_racing_over_200_fire_times_fire_each_once(self, tmp_path: Path, ctx: Any,
                                                                     database_url: str | None) -> None:
        n = 200
        sched = create_schedule(ctx, "nightly", "* * * * *", catchup="one", now=T0)
        first = sched.next_fire_at
        assert first is not None
        settings = Settings(home=tmp_path / ".mloop", database_url=database_url)
        servers = [open_backend(settings), open_backend(settings)]
        barrier = threading.Barrier(2)
        results: list[list[Any]] = [[], []]
        errors: list[BaseException] = []

        def serve(i: int) -> None:
            scheduler = Scheduler(servers[i])
            try:
                for k in range(n):
                    barrier.wait(timeout=30)
                    results[i].extend(scheduler.tick(first + timedelta(minutes=k)))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                barrier.abort()

        threads = [threading.Thread(target=serve, args=(i,)) for i in range(2)]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=100)
        finally:
            for s in servers:
                s.close()
        assert not errors, errors
        claimed = results[0] + results[1]
        assert all(f.status == "started" for f in claimed)
        assert len(claimed) == n, (len(results[0]), len(results[1]))
        runs = scheduled_runs(ctx)
        fire_times = [r.origin["fire_time"] for r in runs]
        assert len(runs) == n and len(set(fire_times)) == n  # 0 duplicates, none lost
        assert len(list_fires(ctx, sched.name, limit=1000)) == n


class TestCli:
    def test_create_list_pause_resume_delete(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             ctx: Any) -> None:
        from typer.testing import CliRunner

        from mloop.cli import app
        from mloop.errors import MloopError

        monkeypatch.setenv("MLOOP_HOME", str(tmp_path / ".mloop"))
        runner = CliRunner()

        def ok(*args: str) -> str:
            result = runner.invoke(app, list(args), env={"COLUMNS": "80"})
            assert result.exit_code == 0, (args, result.output, result.exception)
            return result.output

        out = ok("schedule", "create", "nightly", "--cron", "0 3 * * 1-5", "--tz", "Asia/Shanghai",
                 "-p", "epochs=5", "--name", "weekday-train", "--catchup", "all")
        assert "weekday-train" in out and "next:" in out and "CST" in out
        ok("schedule", "create", "nightly", "--cron", "*/15 * * * *")
        listed = ok("schedule", "list")
        assert "weekday-train" in listed and "nightly-1" in listed and "03:00 CST" in listed
        assert max(len(line) for line in listed.splitlines()) <= 80, listed
        assert get_schedule(ctx, "weekday-train").params == {"epochs": "5"}

        ok("schedule", "pause", "weekday-train")
        assert "paused" in ok("schedule", "list")
        assert get_schedule(ctx, "weekday-train").paused
        assert "resumed" in ok("schedule", "resume", "weekday-train")
        ok("schedule", "delete", "nightly-1")
        assert [s.name for s in list_schedules(ctx)] == ["weekday-train"]

        bad = runner.invoke(app, ["schedule", "create", "nightly", "--cron", "0 3 * * *", "-p", "epochs=x"])
        assert isinstance(bad.exception, MloopError) and "epochs" in str(bad.exception)
        bad = runner.invoke(app, ["schedule", "create", "nightly", "--cron", "0 3 * * *", "--tz", "Nowhere/X"])
        assert isinstance(bad.exception, ScheduleError) and "Nowhere/X" in str(bad.exception)


class TestApi:
    def test_routes(self, tmp_path: Path, ctx: Any) -> None:
        from fastapi.testclient import TestClient

        from mloop.server.app import create_app

        app = create_app(Settings(home=tmp_path / ".mloop"), background=False)  # the routes, no loops
        with TestClient(app) as client:
            _, token = app.state.backend.store.tokens.create("test", "run")
            client.headers["Authorization"] = f"Bearer {token}"
            made = client.post("/api/v1/schedules", json={"workflow": "nightly", "cron": "0 3 * * *",
                                                          "timezone": "Europe/Berlin", "params": {"epochs": 2}})
            assert made.status_code == 201, made.text
            name = made.json()["name"]
            assert name == "nightly-1" and len(made.json()["upcoming"]) == 3
            assert [s["name"] for s in client.get("/api/v1/schedules").json()["schedules"]] == [name]
            assert client.post(f"/api/v1/schedules/{name}/pause").json()["paused"] is True
            assert client.post(f"/api/v1/schedules/{name}/resume").json()["paused"] is False
            assert client.get(f"/api/v1/schedules/{name}/fires").json() == {"fires": []}
            bad = client.post("/api/v1/schedules", json={"workflow": "nightly", "cron": "0 3 * * *",
                                                         "params": {"epochs": "x"}})
            assert bad.status_code == 422 and bad.json()["code"] == "bad_placeholder_value"
            bad = client.post("/api/v1/schedules", json={"workflow": "ghost", "cron": "0 3 * * *"})
            assert bad.status_code == 404 and "release it first" in bad.json()["hint"]
            assert client.delete(f"/api/v1/schedules/{name}").status_code == 200
            assert client.get(f"/api/v1/schedules/{name}").status_code == 404
