"""Several engines on one PostgreSQL database: claims, heartbeats, takeover, and migrations.

Real parts only: ``mloop worker`` processes (and a dispatcher in this process where the test
must stand in for a machine it can't start), real job processes, a fresh PostgreSQL database
per test. Every job appends ``<run id>/<step>/<attempt>`` to one file opened O_APPEND, so a
step that ran twice shows two lines.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import Background, Cli, wait_until, write_job, write_workflow
from mloop.config import Settings
from mloop.context import Context
from mloop.runs import open_backend
from mloop.runs.queue import Dispatcher, QueueLimits, submit
from mloop.store.base import RunRecord

pytestmark = pytest.mark.timeout(240)

#: Appends this attempt to the ledger, then waits for the gate file when one is given.
JOB = """
line = (os.environ["MLOOP_JOB"] + "\\n").encode()
fd = os.open(args.ledger, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
os.write(fd, line)
os.close(fd)
if args.gate:
    wait_for_file(args.gate, timeout=120)
"""

FLOW = """
    gate = wf.Placeholder(name="gate", placeholder_type=wf.PlaceholderType.STR, default="")
    ledger = str(HERE / "ledger")
    prep = job("prep", params={"ledger": ledger, "gate": ""})
    train = job("train", params={"ledger": ledger, "gate": gate}, depend=[prep])
    workflow = wf.Workflow(name="pair", desc="", steps=[prep, train])
"""

#: How often the engines beat in these tests (the default is 5 s).
BEAT = "0.5"


@pytest.fixture
def team(tmp_path: Path, pg_url: str) -> Iterator[Cli]:
    """A released two-step workflow on a fresh PostgreSQL database; workers stop at the end."""
    write_job(tmp_path / "code", JOB, args=("out", "ledger", "gate"))
    write_workflow(tmp_path, FLOW)
    # No step cache: the runs are alike, and each of their steps must really run.
    cli = Cli(tmp_path, tmp_path / ".mloop", extra_env={"MLOOP_DATABASE_URL": pg_url, "MLOOP_STEP_CACHE": "false",
                                                          "MLOOP_HEARTBEAT_SECONDS": BEAT})
    cli.ok("release", "flow.py")
    yield cli
    cli.cleanup()


@pytest.fixture
def ctx(team: Cli, pg_url: str) -> Iterator[Context]:
    """This process's door to the same database (it submits runs and reads them)."""
    backend = open_backend(Settings(home=team.home, database_url=pg_url, heartbeat_seconds=float(BEAT),
                                    step_cache=False), reconcile=False)
    yield backend
    backend.close()


def start_worker(cli: Cli, *args: str) -> tuple[Background, str]:
    bg = cli.start("worker", *args)
    found = wait_until(lambda: re.search(r"mloop worker ([0-9a-f]{32})", bg.output()), 60, bg.output)
    return bg, found.group(1)


def ledger(cli: Cli) -> dict[tuple[str, str], list[int]]:
    """(run id, step) -> the attempts that started, in order."""
    path = cli.cwd / "ledger"
    out: dict[tuple[str, str], list[int]] = defaultdict(list)
    for line in (path.read_text().splitlines() if path.exists() else []):
        run_id, step, attempt = line.rsplit("/", 2)
        out[(run_id, step)].append(int(attempt))
    return out


def all_ended(ctx: Context, ids: list[str]) -> bool:
    return all(ctx.store.get_run(i).status in ("succeeded", "failed", "stopped") for i in ids)


def stop(bg: Background) -> None:
    bg.proc.send_signal(signal.SIGTERM)
    bg.proc.wait(timeout=30)


@pytest.mark.postgres
def test_two_workers_racing_over_50_runs_run_each_step_exactly_once(team: Cli, ctx: Context) -> None:
    a, id_a = start_worker(team, "--concurrency", "4")
    b, id_b = start_worker(team, "--concurrency", "4")
    ids = [submit(ctx, "pair").id for _ in range(50)]

    wait_until(lambda: all_ended(ctx, ids), 200, lambda: a.output() + b.output())
    stop(a)
    stop(b)

    runs = [ctx.store.get_run(i) for i in ids]
    assert [r.status for r in runs] == ["succeeded"] * 50, [(r.id[:8], r.status, r.message) for r in runs]
    started = ledger(team)
    assert set(started) == {(i, s) for i in ids for s in ("prep", "train")}
    assert {key: attempts for key, attempts in started.items() if attempts != [1]} == {}
    # Both engines took part, and each run records the one that claimed it.
    assert Counter(r.engine_id for r in runs).keys() == {id_a, id_b}, Counter(r.engine_id for r in runs)
    # Stopped cleanly with nothing running: both forgot their rows.
    assert ctx.store.engines.registered() == []


@pytest.mark.postgres
def test_a_killed_worker_s_runs_are_taken_over_without_rerunning_a_succeeded_step(team: Cli, ctx: Context) -> None:
    gate = team.cwd / "gate"
    a, id_a = start_worker(team, "--concurrency", "3")
    ids = [submit(ctx, "pair", {"gate": str(gate)}).id for _ in range(3)]
    # Each run's first step succeeded and its second is running (its job waits for the gate).
    wait_until(lambda: all((i, "train") in ledger(team) for i in ids), 90, a.output)
    wait_until(lambda: all(ctx.store.get_step(i, "train").status == "running" for i in ids), 30, a.output)
    jobs = [ctx.store.get_step(i, "train").executor_ref for i in ids]
    b, id_b = start_worker(team, "--concurrency", "3")
    a.kill()  # SIGKILL: its jobs (each leads its own session) live on

    wait_until(lambda: all(ctx.store.get_run(i).engine_id == id_b for i in ids), 30, b.output)
    # The interrupted jobs were ended through their executor references before the steps ran again.
    from mloop.executors.local import find_process

    wait_until(lambda: all(ref and find_process(ref) is None for ref in jobs), 30, "the orphaned jobs to end")
    gate.write_text("go")
    wait_until(lambda: all_ended(ctx, ids), 90, b.output)
    stop(b)

    assert [ctx.store.get_run(i).status for i in ids] == ["succeeded"] * 3, b.output()
    started = ledger(team)
    for run_id in ids:
        assert started[(run_id, "prep")] == [1]  # succeeded before the kill: never again
        assert started[(run_id, "train")] == [1, 2]  # interrupted, then run again as a new attempt
        steps = {s.name: s for s in ctx.store.list_steps(run_id)}
        assert (steps["prep"].attempt, steps["train"].attempt) == (1, 2)
        moves = [(e.from_status, e.to_status) for e in ctx.store.list_events(run_id) if e.step_name == "train"]
        assert moves[-4:] == [("running", "failed"), ("failed", "pending"), ("pending", "running"),
                              ("running", "succeeded")], moves
    # The dead engine's row is forgotten once none of its runs is left to take over.
    wait_until(lambda: id_a not in {e.id for e in ctx.store.engines.registered()}, 10, "the dead engine to be pruned")


def running_on_another_host(ctx: Context, engine_id: str, kind: str, period: float) -> RunRecord:
    """A run of "pair" claimed by a registered engine of another host (which can't be started
    from here: its row stands in for it): its first step succeeded, its second is running."""
    from mloop.engine import transitions

    ctx.store.engines.register(engine_id, kind=kind, host="elsewhere.example", pid=4242,
                               process_started_at=None, heartbeat_seconds=period)
    run = submit(ctx, "pair")
    owner = {"engine_id": engine_id, "engine_pid": 4242, "engine_host": "elsewhere.example",
             "engine_started_at": None}
    assert transitions.run(ctx.store, run.id, "running", expected_from=["pending"], **owner)
    assert transitions.step(ctx.store, run.id, "prep", "running", expected_from=["pending"], attempt=1)
    assert transitions.step(ctx.store, run.id, "prep", "succeeded", expected_from=["running"])
    assert transitions.step(ctx.store, run.id, "train", "running", expected_from=["pending"], attempt=1)
    return run


@pytest.mark.postgres
def test_an_engine_on_another_host_is_taken_for_dead_only_when_its_heartbeat_is_stale(
        team: Cli, ctx: Context) -> None:
    """The other host's engine can't be killed from here, so a registered row stands in for
    it: its run is running (first step succeeded), and it stops beating."""
    period = 0.5
    run = running_on_another_host(ctx, "e" * 32, "worker", period)

    survivor = Dispatcher(ctx, QueueLimits(concurrency=2), kind="server")
    survivor.start()
    try:
        # While the other host's engine beats, its run stays its own.
        beat_until = time.monotonic() + 5 * period
        while time.monotonic() < beat_until:
            assert ctx.store.engines.beat("e" * 32)
            assert ctx.store.get_run(run.id).engine_id == "e" * 32
            time.sleep(period / 2)
        stopped_beating = time.monotonic()
        wait_until(lambda: ctx.store.get_run(run.id).engine_id == survivor.engine_id, 30, "the takeover")
        assert time.monotonic() - stopped_beating >= 3 * period - 0.2  # not before the heartbeat was stale
        wait_until(lambda: all_ended(ctx, [run.id]), 60, "the run to end")
    finally:
        survivor.stop()
    assert ctx.store.get_run(run.id).status == "succeeded"
    assert ledger(team) == {(run.id, "train"): [2]}  # prep had succeeded: it never ran here


_OPENER = textwrap.dedent("""
    import pathlib, sys, time
    from mloop.store.schema import ensure_schema
    from mloop.store.sql import SQLStore
    url, go = sys.argv[1:3]
    while not pathlib.Path(go).exists():
        time.sleep(0.005)
    store = SQLStore(url)
    print("migrated" if ensure_schema(store.engine, url) else "found", flush=True)
    store.create_release("wf", {})
    store.close()
""")


@pytest.mark.postgres
def test_processes_opening_a_fresh_database_at_once_migrate_it_exactly_once(tmp_path: Path, pg_url: str) -> None:
    """Each opener has its own temp folder, as on separate machines: a file lock there would
    guard nothing, so only the PostgreSQL advisory lock keeps them from migrating together."""
    go = tmp_path / "go"
    openers = []
    for n in range(4):
        temp = tmp_path / f"machine{n}"
        temp.mkdir()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TMPDIR": str(temp)}
        openers.append(subprocess.Popen([sys.executable, "-c", _OPENER, pg_url, str(go)], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    go.touch()
    results = [opener.communicate(timeout=120) for opener in openers]

    assert [opener.returncode for opener in openers] == [0] * 4, [err for _out, err in results]
    assert sorted(out.strip() for out, _err in results) == ["found"] * 3 + ["migrated"]
    from mloop.store import open_store

    with open_store(pg_url) as store:
        assert sorted(r.version for r in store.list_releases("wf")) == [1, 2, 3, 4]


# -- the pieces, on both databases ---------------------------------------------------------------

@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Context]:
    """The released two-step workflow, opened in this process on SQLite or a fresh PostgreSQL."""
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    write_job(tmp_path / "code", JOB, args=("out", "ledger", "gate"))
    write_workflow(tmp_path, FLOW)
    env = {"MLOOP_STEP_CACHE": "false", **({"MLOOP_DATABASE_URL": url} if url else {})}
    Cli(tmp_path, tmp_path / ".mloop", extra_env=env).ok("release", "flow.py")
    settings = Settings(home=tmp_path / ".mloop", step_cache=False, heartbeat_seconds=0.2,
                        **({"database_url": url} if url else {}))
    ctx = open_backend(settings, reconcile=False)
    yield ctx
    ctx.close()


DEAD = "d" * 32


def claimed_by_a_dead_engine(ctx: Context, **run_fields: object) -> str:
    """A run that an engine of this host claimed before its process ended: its first step
    succeeded, its second was running."""
    from mloop.engine import transitions

    gone = subprocess.Popen(["true"])
    gone.wait()
    host = socket.gethostname()
    ctx.store.engines.register(DEAD, kind="worker", host=host, pid=gone.pid, process_started_at=time.time() - 5,
                               heartbeat_seconds=0.2)
    run = submit(ctx, "pair")
    owner = {"engine_id": DEAD, "engine_pid": gone.pid, "engine_host": host, "engine_started_at": time.time() - 5}
    assert transitions.run(ctx.store, run.id, "running", expected_from=["pending"], **owner, **run_fields)
    assert transitions.step(ctx.store, run.id, "prep", "running", expected_from=["pending"], attempt=1)
    assert transitions.step(ctx.store, run.id, "prep", "succeeded", expected_from=["running"])
    assert transitions.step(ctx.store, run.id, "train", "running", expected_from=["pending"], attempt=1)
    return run.id


def test_an_engine_is_dead_after_three_missed_beats_and_alive_again_when_it_beats(backend: Context) -> None:
    engines = backend.store.engines
    engines.register("a" * 32, kind="server", host="elsewhere.example", pid=1, process_started_at=None,
                     heartbeat_seconds=0.5)
    first = engines.get("a" * 32)
    assert first is not None and not first.stale
    wait_until(lambda: engines.get("a" * 32).stale, 10, "three missed beats")  # type: ignore[union-attr]
    # An engine whose own beats only just began landing (a start, or the database back after an
    # outage) doesn't judge yet: the other may not have had the time to beat again.
    from mloop.engine.ownership import Heartbeat, engine_row_alive

    judge = Heartbeat(backend.store, "server", 0.2).start()
    try:
        assert engine_row_alive(engines.get("a" * 32), judge)  # type: ignore[arg-type]
        wait_until(lambda: not engine_row_alive(engines.get("a" * 32), judge), 10,  # type: ignore[arg-type]
                   "the judge to have beaten for three periods")
    finally:
        judge.stop()
    assert engines.beat("a" * 32)
    assert not engines.get("a" * 32).stale  # type: ignore[union-attr]
    assert not engines.beat("b" * 32)  # no such engine: the caller registers again


def test_of_two_engines_taking_over_one_run_only_one_wins(backend: Context) -> None:
    from mloop.engine.ownership import process_owner

    run_id = claimed_by_a_dead_engine(backend)
    live = {"a" * 32, "b" * 32}
    assert [r.id for r in backend.store.engines.orphaned_runs(live)] == [run_id]
    won = [backend.store.engines.take_over_run(run_id, DEAD, **process_owner(taker)) for taker in sorted(live)]

    assert won == [True, False]
    assert backend.store.get_run(run_id).engine_id == "a" * 32
    assert backend.store.engines.orphaned_runs(live) == []


def test_a_dead_engine_s_run_whose_stop_was_requested_is_stopped_not_continued(backend: Context) -> None:
    from mloop.engine.ownership import Heartbeat

    run_id = claimed_by_a_dead_engine(backend, stop_requested=True)
    survivor = Dispatcher(backend, kind="server")
    survivor.heartbeat = Heartbeat(backend.store, "server", 0.2).start()
    try:
        assert survivor.take_over() == [run_id]
        wait_until(lambda: all_ended(backend, [run_id]), 30, "the run to end")
    finally:
        survivor.heartbeat.stop()
    run = backend.store.get_run(run_id)
    assert run.status == "stopped"
    assert {s.name: s.status for s in backend.store.list_steps(run_id)} == {"prep": "succeeded", "train": "stopped"}
    assert not (Path(backend.settings.home_path).parent / "ledger").exists()  # nothing ran again
    # The dead engine owns nothing any more: it is forgotten on the next look.
    survivor.take_over()
    assert backend.store.engines.get(DEAD) is None


def test_an_engine_whose_run_was_taken_over_lets_it_go(backend: Context) -> None:
    """An engine taken for dead that still lives (it stalled) finds the run no longer its own:
    it ends its own job and writes nothing more, so the run has one owner."""
    from mloop.engine.ownership import process_owner
    from mloop.executors.local import find_process

    home = Path(backend.settings.home_path).parent
    backend.store.engines.register("f" * 32, kind="worker", host="elsewhere.example", pid=1,
                                   process_started_at=None, heartbeat_seconds=60)
    first = Dispatcher(backend, QueueLimits(concurrency=1), kind="server")
    first.start()
    try:
        run = submit(backend, "pair", {"gate": str(home / "gate")})
        first.wake()
        wait_until(lambda: backend.store.get_step(run.id, "train").executor_ref, 60, "the second step's job")
        ref = backend.store.get_step(run.id, "train").executor_ref
        assert ref is not None and find_process(ref) is not None

        assert backend.store.engines.take_over_run(run.id, str(first.engine_id), **process_owner("f" * 32))
        wait_until(lambda: not first.running, 10, "the first engine to let the run go")
        wait_until(lambda: find_process(ref) is None, 10, "its job to end")
    finally:
        first.stop()
    after = backend.store.get_run(run.id)
    assert (after.status, after.engine_id) == ("running", "f" * 32)
    assert backend.store.get_step(run.id, "train").status == "running"  # left for its new owner


@pytest.mark.postgres
def test_a_terminal_run_on_a_shared_database_beats_and_forgets_its_engine_at_the_end(
        team: Cli, ctx: Context) -> None:
    gate = team.cwd / "gate"
    terminal = team.start("run", "flow.py", "-p", f"gate={gate}")
    wait_until(lambda: any(s == "train" for (_, s) in ledger(team)), 90, terminal.output)
    run = ctx.store.list_runs(limit=1)[0]
    assert run.status == "running" and run.engine_id is not None
    engine = ctx.store.engines.get(run.engine_id)
    assert engine is not None and (engine.kind, engine.pid) == ("cli", terminal.proc.pid)
    # Alive by its heartbeat: a reconcile from another process leaves the run alone.
    from mloop.runs.reconcile import reconcile_run

    assert reconcile_run(ctx, ctx.store.get_run(run.id)) is False
    gate.write_text("go")
    assert terminal.proc.wait(timeout=90) == 0, terminal.output()
    assert ctx.store.get_run(run.id).status == "succeeded"
    assert ctx.store.engines.get(run.engine_id) is None  # a clean end forgets its row


@pytest.mark.postgres
def test_a_dead_terminal_on_another_host_has_its_run_failed_not_taken_over(team: Cli, ctx: Context) -> None:
    """A terminal's engine (`mloop run` on a CI runner that was killed) stops beating: a server
    fails its run with the reason (`mloop retry` continues it), and never runs its steps."""
    period = 0.5
    run = running_on_another_host(ctx, "c" * 32, "cli", period)

    server = Dispatcher(ctx, QueueLimits(concurrency=2), kind="server")
    server.start()
    try:
        beat_until = time.monotonic() + 4 * period
        while time.monotonic() < beat_until:  # beating: its run stays running, its own
            assert ctx.store.engines.beat("c" * 32)
            assert ctx.store.get_run(run.id).status == "running"
            time.sleep(period / 2)
        wait_until(lambda: ctx.store.get_run(run.id).status == "failed", 30, "the dead terminal's run to fail")
    finally:
        server.stop()
    ended = ctx.store.get_run(run.id)
    assert ended.engine_id == "c" * 32  # never taken over
    assert "stopped beating" in (ended.message or "") and "mloop retry" in (ended.message or ""), ended.message
    assert ctx.store.get_step(run.id, "train").status == "failed"
    assert ledger(team) == {}  # no step ran here
