"""The team server's run queue and scheduler: a burst of submissions, the drain of a long queue,
and schedule fires (two schedulers racing; the real fire delay of a running server).

    .venv/bin/python benchmarks/queue_bench.py [--burst 20] [--drain 200] [--concurrency 4]
        [--fires 1000] [--boundaries 1] [--no-pg] [--skip burst,drain,sim,real] [--json]

The workflow is one ``ConditionStep`` (a placeholder compared with a constant): the cheapest
step there is, it spawns no process, so what is timed is the queue, not a job.

- *burst*: one ``mloop server --port 0 --concurrency C`` on SQLite; ``--burst`` threads each send
  one ``POST /api/v1/runs`` at once (a barrier). Counts non-2xx answers, lock/StoreError lines in
  the server's output, the runs that exist afterwards and how many ended ``succeeded``.
- *drain*: a fresh server, ``--drain`` runs submitted back to back over one connection; drain =
  first submit -> last ``finished_at`` (submission-bound: the queue hardly builds up). Then
  *queued*: ``--drain`` runs queued in the store (``queue.submit``) before a fresh server starts;
  drain = first ``started_at`` -> last ``finished_at``, against the embedded execute time.
  Baseline: the same runs executed in-process (``create_run`` then ``execute_run`` in C
  threads); overhead per run = (server − embedded) / N.
  Also, from the store's times, each run's *queue wait* = ``started_at`` − the moment it could
  start (its ``created_at``, or the (i−C)-th finish when all C slots were busy).
- *sim*: two ``Scheduler`` objects, each with its own ``open_backend`` on one store, tick in two
  threads (a barrier per fire time) through ``--fires`` minutes of a ``* * * * *`` schedule;
  counts duplicates and missed fires and times ``tick`` (the simulated due -> run-created delay).
  On SQLite, and on a fresh PostgreSQL database when the local server answers.
- *real*: a server with a ``* * * * *`` schedule made over HTTP; for ``--boundaries`` minute
  boundaries, the run's ``created_at`` (and ``started_at``) minus the fire time.

Targets (the issue): burst 0 lock errors, 0 lost; queue overhead ≤ 20 ms per run; fire delay
p99 ≤ 1 s; 0 duplicate fires over 1,000 fire times with two servers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results" / "queue_bench.json"
MLOOP = str(Path(sys.executable).with_name("mloop"))
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
UTC = timezone.utc
DONE = ("succeeded", "failed", "stopped")

FLOW = '''\
from mloop import workflow as wf

flag = wf.Placeholder(name="flag", placeholder_type=wf.PlaceholderType.BOOL, default=True)
gate = wf.steps.ConditionStep(name="gate", conditions=wf.steps.Condition(wf.steps.ConditionTypeEnum.EQ, flag, True))
workflow = wf.Workflow(name="qbench", desc="", steps=[gate])
'''


# -- helpers ----------------------------------------------------------------------------------
def ts(value: str) -> float:
    at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (at.replace(tzinfo=UTC) if at.tzinfo is None else at).timestamp()


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s)) - 1))] if s else float("nan")


def summary_ms(samples: list[float]) -> dict[str, float]:
    ms = [x * 1000 for x in samples]
    if not ms:
        return {"n": 0}
    return {"n": len(ms), "p50": statistics.median(ms), "p95": pct(ms, 95), "p99": pct(ms, 99), "max": max(ms),
            "mean": statistics.fmean(ms)}


def make_home(base: Path, name: str) -> Path:
    """A folder with the workflow file, released into ``<folder>/.mloop``."""
    folder = base / name
    folder.mkdir(parents=True)
    (folder / "flow.py").write_text(FLOW)
    env = {**_env(), "MLOOP_HOME": str(folder / ".mloop")}
    subprocess.run([MLOOP, "release", "flow.py"], cwd=folder, env=env, check=True, stdout=subprocess.DEVNULL)
    return folder


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_")} | {"COLUMNS": "200"}


class Server:
    def __init__(self, folder: Path, concurrency: int) -> None:
        self.folder = folder
        self.log = folder / "server.log"
        env = {**_env(), "MLOOP_HOME": str(folder / ".mloop")}
        self.fh = self.log.open("wb")
        self.proc = subprocess.Popen([MLOOP, "server", "--port", "0", "--concurrency", str(concurrency)],
                                     cwd=folder, env=env, stdout=self.fh, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while True:
            text = self.output()
            found = re.search(r"mloop server at (http://127\.0\.0\.1:\d+)", text)
            token = re.search(r"admin token: (mlp_\S+)", text)
            if found and token:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start:\n{text}")
            time.sleep(0.05)
        self.url = found.group(1) + "/api/v1"
        self.token = token.group(1)
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the server does not answer")
            time.sleep(0.05)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=60)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.fh.close()

    def all_runs(self, client: httpx.Client) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = []
        while True:
            page = client.get("/runs", params={"workflow": "qbench", "limit": 500, "offset": len(runs)}).json()["runs"]
            runs += page
            if len(page) < 500:
                return runs

    def wait_done(self, client: httpx.Client, n: int, timeout: float = 300) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            runs = self.all_runs(client)
            if len(runs) >= n and all(r["status"] in DONE for r in runs):
                return runs
            if time.monotonic() > deadline:
                return runs
            time.sleep(0.25)


LOCK_RE = re.compile(r"database is locked|StoreError|OperationalError|Traceback", re.I)


# -- (a) burst --------------------------------------------------------------------------------
def burst(base: Path, n: int, concurrency: int) -> dict[str, Any]:
    server = Server(make_home(base, "burst"), concurrency)
    try:
        barrier = threading.Barrier(n)
        answers: list[tuple[int, str, float]] = []
        lock = threading.Lock()

        def post() -> None:
            with server.client() as c:
                c.get("/health")  # connect before the barrier
                barrier.wait(30)
                t0 = time.perf_counter()
                try:
                    r = c.post("/runs", json={"workflow": "qbench", "parameters": {}})
                    out = (r.status_code, r.text[:300], time.perf_counter() - t0)
                except httpx.HTTPError as exc:
                    out = (0, repr(exc), time.perf_counter() - t0)
            with lock:
                answers.append(out)

        threads = [threading.Thread(target=post) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        with server.client() as c:
            runs = server.wait_done(c, n, timeout=120)
        bad = [a for a in answers if not 200 <= a[0] < 300]
        lock_lines = [line for line in server.output().splitlines() if LOCK_RE.search(line)]
        return {"requests": n, "non_2xx": len(bad), "bad_answers": bad[:5], "lock_lines": len(lock_lines),
                "lock_examples": lock_lines[:5], "runs": len(runs),
                "succeeded": sum(r["status"] == "succeeded" for r in runs),
                "statuses": sorted({r["status"] for r in runs}),
                "post_ms": summary_ms([a[2] for a in answers])}
    finally:
        server.stop()


# -- (b) drain --------------------------------------------------------------------------------
def queue_waits(runs: list[dict[str, Any]], concurrency: int,
                floor: float = float("-inf")) -> tuple[list[float], list[float]]:
    """Per run, started − ready (ready = created, or the (i−C)-th finish when the slots were busy,
    and not before ``floor``); and started − created for the runs that found a slot free when
    they were created."""
    rows = sorted(((ts(r["created_at"]), ts(r["started_at"]), ts(r["finished_at"])) for r in runs),
                  key=lambda x: x[1])
    finishes = sorted(r[2] for r in rows)
    waits, free = [], []
    for i, (created, started, _fin) in enumerate(rows):
        slot = finishes[i - concurrency] if i >= concurrency else float("-inf")
        ready = max(created, slot, floor)
        waits.append(started - ready)
        if created >= slot:
            free.append(started - created)
    return waits, free


def drain(base: Path, n: int, concurrency: int) -> dict[str, Any]:
    server = Server(make_home(base, "drain"), concurrency)
    try:
        with server.client() as c:
            c.get("/health")
            t0 = time.time()
            for _ in range(n):
                r = c.post("/runs", json={"workflow": "qbench", "parameters": {}})
                r.raise_for_status()
            submitted = time.time() - t0
            runs = server.wait_done(c, n, timeout=600)
        lock_lines = [line for line in server.output().splitlines() if LOCK_RE.search(line)]
    finally:
        server.stop()
    ok = [r for r in runs if r["status"] == "succeeded"]
    last = max(ts(r["finished_at"]) for r in runs if r["finished_at"])
    waits, free = queue_waits(ok, concurrency)
    exec_s = [ts(r["finished_at"]) - ts(r["started_at"]) for r in ok]
    return {"runs": len(runs), "succeeded": len(ok), "submit_s": submitted, "drain_s": last - t0,
            "queue_wait_ms": summary_ms(waits), "free_slot_start_ms": summary_ms(free),
            "run_exec_ms": summary_ms(exec_s), "lock_lines": len(lock_lines), "lock_examples": lock_lines[:5]}


def max_overlap(runs: list[dict[str, Any]]) -> int:
    """The most runs executing at one moment (from their started/finished times)."""
    edges = sorted([(ts(r["started_at"]), 1) for r in runs] + [(ts(r["finished_at"]), -1) for r in runs],
                   key=lambda e: (e[0], e[1]))
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def drain_queued(base: Path, n: int, concurrency: int) -> dict[str, Any]:
    """``n`` runs queued in the store (``queue.submit``) before the server starts; drain = the
    first ``started_at`` -> the last ``finished_at``."""
    from mloop.config import Settings
    from mloop.runs.open import open_backend
    from mloop.runs.queue import submit

    folder = make_home(base, "queued")
    ctx = open_backend(Settings(home=folder / ".mloop"))
    for _ in range(n):
        submit(ctx, "qbench", {})
    ctx.close()
    server = Server(folder, concurrency)
    try:
        with server.client() as c:
            runs = server.wait_done(c, n, timeout=600)
        lock_lines = [line for line in server.output().splitlines() if LOCK_RE.search(line)]
    finally:
        server.stop()
    ok = [r for r in runs if r["status"] == "succeeded"]
    first = min(ts(r["started_at"]) for r in ok)
    last = max(ts(r["finished_at"]) for r in ok)
    waits, _free = queue_waits(ok, concurrency, floor=first)
    busy = sum(ts(r["finished_at"]) - ts(r["started_at"]) for r in ok)
    return {"runs": len(runs), "succeeded": len(ok), "drain_s": last - first, "queue_wait_ms": summary_ms(waits),
            "waits_over_250ms": sum(w > 0.25 for w in waits),
            "run_exec_ms": summary_ms([ts(r["finished_at"]) - ts(r["started_at"]) for r in ok]),
            "max_parallel": max_overlap(ok), "mean_parallel": busy / (last - first),
            "lock_lines": len(lock_lines), "lock_examples": lock_lines[:5]}


def embedded(base: Path, n: int, concurrency: int) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    from mloop.cli import load_workflow
    from mloop.config import Settings
    from mloop.runs.open import open_backend
    from mloop.runs.service import create_run, execute_run
    from mloop.runs.service import release_spec

    folder = base / "embedded"
    folder.mkdir()
    (folder / "flow.py").write_text(FLOW)
    ctx = open_backend(Settings(home=folder / ".mloop"))
    spec = load_workflow(str(folder / "flow.py"))
    release_spec(ctx, spec)
    t0 = time.time()
    ids = [create_run(ctx, spec, {}).id for _ in range(n)]
    t1 = time.time()
    with ThreadPoolExecutor(concurrency) as pool:
        done = list(pool.map(lambda run_id: execute_run(ctx, run_id).status, ids))
    t2 = time.time()
    ctx.close()
    return {"runs": n, "succeeded": done.count("succeeded"), "create_s": t1 - t0, "exec_s": t2 - t1,
            "drain_s": t2 - t0}


# -- (c) scheduler, simulated -----------------------------------------------------------------
def sim(base: Path, fires: int, database_url: str | None, label: str) -> dict[str, Any]:
    from mloop.cli import load_workflow
    from mloop.config import Settings
    from mloop.runs.open import open_backend
    from mloop.runs.scheduler import Scheduler
    from mloop.runs.service import release_spec
    from mloop.services.schedules import create_schedule

    folder = base / f"sim-{label}"
    folder.mkdir()
    (folder / "flow.py").write_text(FLOW)
    settings = Settings(home=folder / ".mloop", database_url=database_url)
    ctx = open_backend(settings)
    release_spec(ctx, load_workflow(str(folder / "flow.py")))
    t_start = datetime(2024, 1, 8, tzinfo=UTC)
    sched = create_schedule(ctx, "qbench", "* * * * *", catchup="one", now=t_start)
    first = sched.next_fire_at
    assert first is not None
    servers = [open_backend(settings), open_backend(settings)]
    barrier = threading.Barrier(2)
    claimed: list[list[Any]] = [[], []]
    tick_s: list[list[float]] = [[], []]
    errors: list[BaseException] = []

    def serve(i: int) -> None:
        scheduler = Scheduler(servers[i])
        try:
            for k in range(fires):
                barrier.wait(timeout=60)
                t0 = time.perf_counter()
                got = scheduler.tick(first + timedelta(minutes=k))
                dt = time.perf_counter() - t0
                claimed[i].extend(got)
                if got:
                    tick_s[i].append(dt)
        except BaseException as exc:  # noqa: BLE001 - reported
            errors.append(exc)
            barrier.abort()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=serve, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    runs = [r for r in ctx.store.list_runs("qbench", limit=fires * 3)
            if (r.origin or {}).get("kind") == "schedule"]
    times = [(r.origin or {})["fire_time"] for r in runs]
    for s in servers + [ctx]:
        s.close()
    return {"db": label, "fire_times": fires, "claims": [len(c) for c in claimed],
            "not_started": sum(f.status != "started" for f in claimed[0] + claimed[1]),
            "runs": len(runs), "duplicates": len(times) - len(set(times)), "missed": fires - len(set(times)),
            "errors": [repr(e) for e in errors][:3], "wall_s": wall,
            "tick_ms": summary_ms(tick_s[0] + tick_s[1])}


def pg_database() -> tuple[str, Any] | None:
    try:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        name = f"mloop_bench_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # noqa: BLE001 - no PostgreSQL here: skipped
        print(f"PostgreSQL skipped: {str(exc).splitlines()[0]}", file=sys.stderr)
        return None

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False), drop


# -- (c) scheduler, real ----------------------------------------------------------------------
def real(base: Path, boundaries: int) -> dict[str, Any]:
    server = Server(make_home(base, "real"), 4)
    delays: list[dict[str, float]] = []
    try:
        with server.client() as c:
            r = c.post("/schedules", json={"workflow": "qbench", "cron": "* * * * *", "name": "every-minute"})
            r.raise_for_status()
            for _ in range(boundaries):
                due = ts(c.get("/schedules/every-minute").json()["next_fire_at"])
                print(f"  waiting {due - time.time():.0f} s for the next minute boundary", file=sys.stderr)
                deadline = due + 30
                fire = None
                while time.time() < deadline:
                    time.sleep(max(0.0, min(1.0, due - time.time())) or 0.2)
                    fires = c.get("/schedules/every-minute/fires", params={"limit": 5}).json()["fires"]
                    fire = next((f for f in fires if ts(f["fire_time"]) == due and f["run_id"]), None)
                    if fire:
                        break
                if fire is None:
                    delays.append({"due": due, "missed": 1})
                    continue
                run = c.get(f"/runs/{fire['run_id']}").json()
                while run["status"] not in DONE and time.time() < deadline:
                    time.sleep(0.2)
                    run = c.get(f"/runs/{fire['run_id']}").json()
                # (the fire row's created_at is whole seconds: the run's times are the measure)
                delays.append({"due": due, "created_s": ts(run["created_at"]) - due,
                               "started_s": (ts(run["started_at"]) if run["started_at"] else due) - due, "status": run["status"]})
    finally:
        server.stop()
    return {"boundaries": delays}


# -- main -------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--burst", type=int, default=20)
    ap.add_argument("--drain", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--fires", type=int, default=1000)
    ap.add_argument("--boundaries", type=int, default=1)
    ap.add_argument("--no-pg", action="store_true")
    ap.add_argument("--skip", default="", help="comma-separated parts to leave out: burst,drain,sim,real")
    ap.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    base = Path(tempfile.mkdtemp(prefix="mloop-queue-bench-"))
    out: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "args": vars(args)}
    try:
        if "burst" not in skip:
            print("burst ...", file=sys.stderr)
            out["burst"] = burst(base, args.burst, args.concurrency)
        if "drain" not in skip:
            print("drain: embedded ...", file=sys.stderr)
            out["embedded"] = embedded(base, args.drain, args.concurrency)
            print("drain: server ...", file=sys.stderr)
            out["drain"] = drain(base, args.drain, args.concurrency)
            out["overhead_ms_per_run"] = (out["drain"]["drain_s"] - out["embedded"]["drain_s"]) / args.drain * 1000
            print("drain: queued before the server starts ...", file=sys.stderr)
            out["queued"] = drain_queued(base, args.drain, args.concurrency)
            out["queued_overhead_ms_per_run"] = (
                (out["queued"]["drain_s"] - out["embedded"]["exec_s"]) / args.drain * 1000)
        if "sim" not in skip:
            print("scheduler sim: sqlite ...", file=sys.stderr)
            out["sim"] = [sim(base, args.fires, None, "sqlite")]
            pg = None if args.no_pg else pg_database()
            if pg is not None:
                print("scheduler sim: postgresql ...", file=sys.stderr)
                try:
                    out["sim"].append(sim(base, args.fires, pg[0], "postgresql"))
                finally:
                    pg[1]()
        if "real" not in skip:
            print("scheduler real ...", file=sys.stderr)
            out["real"] = real(base, args.boundaries)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2, default=str))
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    else:
        table(out)


def table(out: dict[str, Any]) -> None:
    rows: list[tuple[str, str]] = []
    if "burst" in out:
        b = out["burst"]
        rows.append((f"burst: {b['requests']} POST /runs at once",
                     f"non-2xx {b['non_2xx']}, lock lines {b['lock_lines']}, runs {b['runs']}, "
                     f"succeeded {b['succeeded']}"))
        rows.append(("  POST latency p50 / max ms", f"{b['post_ms']['p50']:.0f} / {b['post_ms']['max']:.0f}"))
    if "drain" in out:
        d, e = out["drain"], out["embedded"]
        rows.append((f"drain {d['runs']} runs: server / embedded s", f"{d['drain_s']:.2f} / {e['drain_s']:.2f} "
                     f"(submit {d['submit_s']:.2f})"))
        rows.append(("  overhead per run (server − embedded)", f"{out['overhead_ms_per_run']:.1f} ms"))
        q, f = d["queue_wait_ms"], d["free_slot_start_ms"]
        rows.append(("  queue wait p50 / p95 / max ms", f"{q['p50']:.0f} / {q['p95']:.0f} / {q['max']:.0f} "
                     f"(mean {q['mean']:.0f})"))
        if f["n"]:
            rows.append((f"  free slot: start − created ({f['n']})", f"p50 {f['p50']:.0f} / max {f['max']:.0f} ms"))
        rows.append(("  run started→finished p50 ms", f"{d['run_exec_ms']['p50']:.0f}"))
    if "queued" in out:
        d, e = out["queued"], out["embedded"]
        rows.append((f"{d['runs']} queued, then server: drain s", f"{d['drain_s']:.2f} (embedded execute "
                     f"{e['exec_s']:.2f}, create {e['create_s']:.2f})"))
        rows.append(("  overhead per run (server − embedded)", f"{out['queued_overhead_ms_per_run']:.1f} ms"))
        q = d["queue_wait_ms"]
        rows.append(("  queue wait p50 / p95 / max ms", f"{q['p50']:.0f} / {q['p95']:.0f} / {q['max']:.0f} "
                     f"(mean {q['mean']:.0f}, > 250 ms: {d['waits_over_250ms']})"))
        rows.append(("  runs at once: max / mean", f"{d['max_parallel']} / {d['mean_parallel']:.2f}; "
                     f"lock lines {d['lock_lines']}, succeeded {d['succeeded']}"))
        rows.append(("  run started→finished p50 ms", f"{d['run_exec_ms']['p50']:.0f}"))
    for s in out.get("sim", []):
        rows.append((f"sim {s['db']}: {s['fire_times']} fires, 2 scheds",
                     f"dup {s['duplicates']}, missed {s['missed']}, claims {s['claims']}"))
        rows.append(("  tick (due → run) p50 / p99 ms",
                     f"{s['tick_ms'].get('p50', 0):.0f} / {s['tick_ms'].get('p99', 0):.0f} ({s['wall_s']:.0f} s)"))
    for i, b in enumerate(out.get("real", {}).get("boundaries", [])):
        if b.get("missed"):
            rows.append((f"real fire {i + 1}", "MISSED"))
        else:
            rows.append((f"real fire {i + 1}: created / started − due",
                         f"{b['created_s'] * 1000:.0f} / {b['started_s'] * 1000:.0f} ms ({b['status']})"))
    width = max(len(r[0]) for r in rows) if rows else 0
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
