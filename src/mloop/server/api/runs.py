"""``/api/v1`` runs, workflows, events and tokens: the run service over HTTP.

::

    GET    /workflows                         released workflows (name, latest version, runs)
    GET    /workflows/{name}/versions         its releases
    POST   /runs                              queue a run {"workflow", "version"?, "parameters"?, "steps"?, "cache"?}
    GET    /runs                              runs, newest first (?workflow=&status=&limit=&offset=)
    GET    /runs/compare?ids=a,b              runs side by side (parameters, metrics, datasets, code, durations)
    GET    /runs/{id}                         one run with its steps
    POST   /runs/{id}/stop                    stop it
    POST   /runs/{id}/retry                   queue a failed or stopped run again (failed steps re-run)
    POST   /runs/{id}/input                   {"values": {...}} for its delayed placeholders
    GET    /runs/{id}/logs                    log lines (?step=&tail=)
    GET    /runs/{id}/metrics                 metrics (?step=)
    GET    /runs/{id}/events                  Server-Sent Events: its transitions, until it ends
    GET    /events                            Server-Sent Events: every run's transitions
    GET    /runs/{id}/logs/stream             Server-Sent Events: log lines as written (?step=)
    GET    /tokens, POST /tokens, DELETE /tokens/{id}   (admin) API tokens

Event streams carry the event id; a client that reconnects with ``Last-Event-ID`` (or
``?after=``) gets every event after it, so it misses nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import weakref
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal, Optional

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from mloop.context import Context
from mloop.server.api._errors import INT64_MAX
from mloop.errors import BadArgumentError
from mloop.server.auth import requires
from mloop.store.base import EventRecord, RunRecord, StepRecord

router = APIRouter(tags=["runs"])
admin_router = APIRouter(tags=["tokens"], dependencies=[Depends(requires("admin"))])

#: How often an event stream looks for new events.
STREAM_POLL_SECONDS = 0.1
_TERMINAL = frozenset({"succeeded", "failed", "stopped"})


def _ctx(request: Request) -> Context:
    ctx: Context = request.app.state.backend
    return ctx


def _wake(request: Request) -> None:
    from mloop.server.app import wake_queue  # (app imports this module)

    wake_queue(request.app)


# -- shapes -------------------------------------------------------------------------------------
class SubmitRun(BaseModel):
    workflow: str = Field(description="a released workflow's name", min_length=1, max_length=200)
    version: Optional[int] = Field(None, ge=1, le=INT64_MAX, description="its release version (default: the latest)")
    parameters: dict[str, Any] = Field(default_factory=dict, description="placeholder and data values")
    steps: Optional[list[str]] = Field(None, description="run only these steps")
    cache: bool = Field(True, strict=True, description="false: every job step runs, reusing no earlier result "
                                                       "(`mloop run --no-cache`; kept on the run, so a retry "
                                                       "runs the same way)")


class GiveInput(BaseModel):
    values: dict[str, Any] = Field(description="values of the run's delayed placeholders")


class RetryIn(BaseModel):
    values: dict[str, Any] = Field(default_factory=dict, description="changed placeholder values for the retry")


class StepOut(BaseModel):
    name: str
    type: str
    status: str
    attempt: int
    started_at: Optional[datetime] = None
    finished_at: Optional[datetime] = None
    exit_code: Optional[int] = None
    message: Optional[str] = None
    outputs: dict[str, Any] = Field(default_factory=dict, description="what the step produced (dataset and "
                                    "model versions, services, folders)")
    code_hash: Optional[str] = None
    cached_from: Optional[dict[str, Any]] = Field(None, description="the run and step whose outputs it reused")
    cache: Optional[str] = Field(None, description="where its result came from or why it ran, as `mloop show` "
                                                   "says it (null: caching does not concern the step)")
    environment: Optional[dict[str, Any]] = Field(None, description="the job's environment")

    @classmethod
    def of(cls, s: StepRecord) -> StepOut:
        from mloop.steps.caching import describe

        return cls(name=s.name, type=s.type, status=s.status, attempt=s.attempt, started_at=s.started_at,
                   finished_at=s.finished_at, exit_code=s.exit_code, message=s.message, outputs=s.outputs,
                   code_hash=s.code_hash, cached_from=s.cached_from, cache=describe(s), environment=s.environment)


class RunOut(BaseModel):
    id: str
    workflow: str
    number: int
    status: str
    release_id: str
    params: dict[str, Any]
    created_at: datetime
    started_at: Optional[datetime] = None
    finished_at: Optional[datetime] = None
    message: Optional[str] = None
    attempt: int
    origin: Optional[dict[str, Any]] = None
    queued: bool = Field(description="pending with no engine yet: waiting in the server's queue")

    @classmethod
    def of(cls, r: RunRecord) -> RunOut:
        return cls(id=r.id, workflow=r.workflow_name, number=r.number, status=r.status, release_id=r.release_id,
                   params=r.params, created_at=r.created_at, started_at=r.started_at, finished_at=r.finished_at,
                   message=r.message, attempt=r.attempt, origin=r.origin,
                   queued=r.status == "pending" and r.engine_pid is None)


class ReleaseBrief(BaseModel):
    version: int
    spec_hash: str
    extend: dict[str, Any] = Field(default_factory=dict, description="git commit, branch and the like")


class RunDetailOut(RunOut):
    steps: list[StepOut]
    release: Optional[ReleaseBrief] = Field(None, description="the workflow version the run ran")
    storages: dict[str, str] = Field(default_factory=dict, description="storage roots given to the run")
    event_count: int = Field(0, description="how many state changes the run went through (GET .../events)")


class RunPage(BaseModel):
    runs: list[RunOut]
    limit: int
    offset: int


class WorkflowOut(BaseModel):
    name: str
    latest_version: int
    versions: int
    released_at: datetime


class VersionOut(BaseModel):
    id: str
    version: int
    spec_hash: str
    created_at: datetime
    extend: dict[str, Any]


class LogLine(BaseModel):
    step: str
    line: str


class MetricOut(BaseModel):
    step: str
    key: str
    title: str
    type: str
    value: Optional[float] = None
    data: dict[str, Any]


class TokenOut(BaseModel):
    id: str
    name: str
    scope: str
    created_at: datetime
    last_used_at: Optional[datetime] = None
    revoked_at: Optional[datetime] = None


class NewToken(BaseModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$",
                      description="1-64 letters, digits, '-', '_' or '.', e.g. ci-bot")
    scope: Literal["read", "run", "admin"] = Field("run", description="read | run | admin")


class CreatedToken(TokenOut):
    token: str = Field(description="the token: shown this once, never again")


def _detail(ctx: Context, run: RunRecord) -> RunDetailOut:
    store = ctx.store
    made = store.get_release(run.release_id)
    release = ReleaseBrief(version=made.version, spec_hash=made.spec_hash, extend=made.extend or {})
    return RunDetailOut(**RunOut.of(run).model_dump(), steps=[StepOut.of(s) for s in store.list_steps(run.id)],
                        release=release, storages=dict(run.storages or {}), event_count=store.count_events(run.id))


# -- workflows ----------------------------------------------------------------------------------
@router.get("/workflows", response_model=list[WorkflowOut])
def list_workflows(request: Request) -> list[WorkflowOut]:
    latest: dict[str, WorkflowOut] = {}
    for rel in _ctx(request).store.list_releases():
        seen = latest.get(rel.workflow_name)
        count = (seen.versions if seen else 0) + 1
        if seen is None or rel.version > seen.latest_version:
            latest[rel.workflow_name] = WorkflowOut(name=rel.workflow_name, latest_version=rel.version,
                                                    versions=count, released_at=rel.created_at)
        else:
            seen.versions = count
    return sorted(latest.values(), key=lambda w: w.name)


@router.get("/workflows/{name}/versions", response_model=list[VersionOut])
def workflow_versions(request: Request, name: str) -> list[VersionOut]:
    from mloop.errors import NotFoundError

    releases = _ctx(request).store.list_releases(name)
    if not releases:
        raise NotFoundError(f"no workflow named {name!r} was released here", workflow=name)
    return [VersionOut(id=r.id, version=r.version, spec_hash=r.spec_hash, created_at=r.created_at, extend=r.extend)
            for r in releases]


# -- runs ---------------------------------------------------------------------------------------
@router.post("/runs", status_code=201, response_model=RunOut)
def submit_run(request: Request, body: SubmitRun) -> RunOut:
    from mloop.runs.queue import submit

    token = getattr(request.state, "token", None)
    origin = {"kind": "api", "token": token.name if token else None}
    run = submit(_ctx(request), body.workflow, body.parameters, version=body.version, origin=origin,
                 steps=body.steps, cache=body.cache)
    _wake(request)
    return RunOut.of(run)


@router.get("/runs", response_model=RunPage)
def list_runs(request: Request, workflow: Optional[str] = None,
              status: Optional[list[str]] = Query(None, description="one or more run statuses"),
              limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=10_000_000),
              before: Optional[str] = Query(None, max_length=200,
                                            description="keyset paging: only runs older than this run (full id)")) -> RunPage:
    from mloop.runs.queries import list_runs as query

    runs = query(_ctx(request), workflow, status, limit, offset, before=before)
    return RunPage(runs=[RunOut.of(r) for r in runs], limit=limit, offset=offset)


@router.get("/runs/compare")
def compare_runs(request: Request, ids: str = Query(..., max_length=2000,
                                                    description="two or more run ids (or unique prefixes), comma separated")
                 ) -> dict[str, Any]:
    """Runs side by side: parameters, final metrics, dataset versions, code hashes, durations.
    Declared before ``/runs/{run_id}`` so ``compare`` is not read as a run id."""
    from mloop.runs.queries import compare_runs as query

    return query(_ctx(request), [i.strip() for i in ids.split(",") if i.strip()]).to_dict()


@router.get("/runs/{run_id}", response_model=RunDetailOut)
def get_run(request: Request, run_id: str) -> RunDetailOut:
    ctx = _ctx(request)
    return _detail(ctx, ctx.store.get_run(run_id))


@router.post("/runs/{run_id}/stop", response_model=RunDetailOut)
def stop(request: Request, run_id: str) -> RunDetailOut:
    from mloop.runs.service import stop_run

    ctx = _ctx(request)
    return _detail(ctx, stop_run(ctx, run_id))


@router.post("/runs/{run_id}/retry", response_model=RunDetailOut)
def retry(request: Request, run_id: str, body: Optional[RetryIn] = None) -> RunDetailOut:
    from mloop.runs.queue import retry_queued

    ctx = _ctx(request)
    run = retry_queued(ctx, run_id, body.values if body else None)
    _wake(request)
    return _detail(ctx, run)


@router.post("/runs/{run_id}/input", response_model=RunDetailOut)
def give_input(request: Request, run_id: str, body: GiveInput) -> RunDetailOut:
    from mloop.runs.service import provide_input
    from mloop.server.app import resume_if_left

    ctx = _ctx(request)
    run = provide_input(ctx, run_id, body.values)
    resume_if_left(request.app, ctx, run)
    return _detail(ctx, ctx.store.get_run(run.id))


@router.get("/runs/{run_id}/logs", response_model=list[LogLine])
def logs(request: Request, run_id: str, step: Optional[str] = None,
         tail: int = Query(1000, ge=1, le=100_000)) -> list[LogLine]:
    from mloop.runs.queries import log_lines

    lines = [LogLine(step=s, line=line) for s, line in log_lines(_ctx(request), run_id, step)]
    return lines[-tail:]


@router.get("/runs/{run_id}/metrics", response_model=list[MetricOut])
def metrics(request: Request, run_id: str, step: Optional[str] = None) -> list[MetricOut]:
    from mloop.runs.queries import run_metrics

    return [MetricOut(step=m.step_name, key=m.key, title=m.title, type=m.type, value=m.value, data=m.data)
            for m in run_metrics(_ctx(request), run_id, step)]


# -- event streams ------------------------------------------------------------------------------
def _start_after(request: Request, after: Optional[int]) -> int:
    header = request.headers.get("last-event-id")
    if header is not None:
        if not header.isdigit() or len(header) > 18:
            raise BadArgumentError("Last-Event-ID must be an event id (a number)")
        return int(header)
    return after or 0


def _frame(event: EventRecord, workflow: str | None = None) -> str:
    data = {"id": event.id, "run_id": event.run_id, "step": event.step_name, "from": event.from_status,
            "to": event.to_status, "at": event.at.isoformat(), "message": event.message}
    if workflow is not None:
        data["workflow"] = workflow
    return f"id: {event.id}\nevent: transition\ndata: {json.dumps(data)}\n\n"


class _Commits:
    """Wakes this process's event streams when one of its threads commits a write to the store.

    The engine runs in the server's own threads and writes each transition (with its event
    row) in one write transaction; the connection pool's ``checkin`` after that commit is the
    moment its event can be read, so a stream waiting here reads it at once instead of at its
    next poll. Writers in other processes (an engine started by ``mloop run``, another server
    on the same database) are still found by the poll. ``generation`` counts the commits, so a
    commit between a stream's read and its wait is not missed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.generation = 0

    def wrote(self) -> None:
        with self._lock:
            self.generation += 1
            waiters = list(self._waiters)
        for loop, flag in waiters:
            try:
                loop.call_soon_threadsafe(flag.set)
            except RuntimeError:  # that loop is closed; its stream is gone
                pass

    async def wait(self, seen: int, timeout: float) -> None:
        """Until a commit after generation ``seen``, or ``timeout`` seconds."""
        flag = asyncio.Event()
        key = (asyncio.get_running_loop(), flag)
        with self._lock:
            if self.generation != seen:
                return
            self._waiters.add(key)
        try:
            await asyncio.wait_for(flag.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            with self._lock:
                self._waiters.discard(key)


_COMMITS: weakref.WeakKeyDictionary[Any, _Commits] = weakref.WeakKeyDictionary()
_COMMITS_LOCK = threading.Lock()


def _commits_of(ctx: Context) -> _Commits | None:
    """The commit signal of the store's SQLAlchemy engine (hooked once per engine), or None for
    a store without one (then the stream polls alone)."""
    from sqlalchemy import Engine, event

    from mloop.store.sql import WRITE_OPTION

    engine = getattr(ctx.store, "engine", None)
    if not isinstance(engine, Engine):
        return None
    with _COMMITS_LOCK:
        found = _COMMITS.get(engine)
        if found is not None:
            return found
        commits = _Commits()
        mark = "mloop.stream.wrote"

        def on_commit(conn: Any) -> None:
            # Before the database's COMMIT: mark the pooled connection; the wake-up waits for
            # its check-in, which comes after the COMMIT. Read transactions commit too: only
            # write transactions mark.
            if conn.get_execution_options().get(WRITE_OPTION, False):
                conn.info[mark] = True

        def on_checkin(_dbapi: Any, record: Any) -> None:
            if record is not None and record.info.pop(mark, False):
                commits.wrote()

        event.listen(engine, "commit", on_commit)
        event.listen(engine.pool, "checkin", on_checkin)
        _COMMITS[engine] = commits
        return commits


#: An event stream reads at most this often, however often the store is written (metrics
#: ingestion commits many times a second): the wake-up is a hint, not a read per commit.
STREAM_MIN_GAP_SECONDS = 0.02
#: With no events, how often a run's stream checks whether the run has ended (the run's own
#: terminal transition is an event, and is checked at once).
STREAM_END_CHECK_SECONDS = 1.0


def _stream(request: Request, ctx: Context, after: int, run_id: str | None) -> StreamingResponse:
    """Server-Sent Events of the run's (or every run's) transitions after event ``after``.

    Each pass reads the events after the last one sent; between passes it waits for a commit
    by a thread of this process (the server's engine: the event is read at once) or
    ``STREAM_POLL_SECONDS`` (a writer in another process), and no pass starts sooner than
    ``STREAM_MIN_GAP_SECONDS`` after the one before."""
    commits = _commits_of(ctx)

    async def frames() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        last = after
        yield ": mloop event stream\n\n"
        said = loop.time()
        checked = float("-inf")  # the first pass checks: a finished run's stream ends at once
        while not await request.is_disconnected():
            seen = commits.generation if commits is not None else 0
            began = loop.time()
            events = await run_in_threadpool(ctx.store.events_after, last, run_id)
            ended = False
            for event in events:
                last = event.id
                said = began
                yield _frame(event)
                if event.step_name is None and event.to_status in _TERMINAL:
                    ended = True  # the run ended: the next pass, at once, says so if nothing follows
                    checked = float("-inf")
            if run_id is not None and not events and began - checked >= STREAM_END_CHECK_SECONDS:
                checked = began
                run = await run_in_threadpool(ctx.store.get_run, run_id)
                if run.status in _TERMINAL:
                    yield "event: end\ndata: {}\n\n"
                    return
            if began - said >= 15:
                said = began
                yield ": keep-alive\n\n"
            if not ended and commits is not None:
                await commits.wait(seen, STREAM_POLL_SECONDS)
            elif not ended:
                await asyncio.sleep(STREAM_POLL_SECONDS)
            gap = STREAM_MIN_GAP_SECONDS - (loop.time() - began)
            if gap > 0:
                await asyncio.sleep(gap)

    return StreamingResponse(frames(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/runs/{run_id}/events")
def run_events(request: Request, run_id: str,
               after: Optional[int] = Query(None, ge=0, le=INT64_MAX)) -> StreamingResponse:
    ctx = _ctx(request)
    run = ctx.store.get_run(run_id)  # 404 before the stream starts
    return _stream(request, ctx, _start_after(request, after), run.id)


def _log_offsets(text: str | None) -> dict[str, int]:
    """``step=offset,...`` (a log stream's event id) as a dict; refused when malformed."""
    if not text:
        return {}
    out: dict[str, int] = {}
    for part in text.split(","):
        name, sep, offset = part.rpartition("=")
        if not sep or not name or not offset.isdigit() or len(offset) > 18 or len(out) > 1000:
            raise BadArgumentError("Last-Event-ID of a log stream must be step=offset,... as the stream sent it")
        out[name] = int(offset)
    return out


@router.get("/runs/{run_id}/logs/stream")
def log_stream(request: Request, run_id: str, step: Optional[str] = Query(None, max_length=200)) -> StreamingResponse:
    """Server-Sent Events: the log lines of a run's steps as they are written (``event: log``,
    data ``{"step", "line"}``), until its steps end. Each event's id holds the byte offsets
    read so far (``step=offset,...``); reconnecting with it as ``Last-Event-ID`` resumes there."""
    from mloop.runs.queries import step_log_path

    ctx = _ctx(request)
    run = ctx.store.get_run(run_id)
    step_log_path(ctx, run.id, step)  # 404 for a step the run lacks, before the stream starts
    offsets = _log_offsets(request.headers.get("last-event-id"))

    def read_new() -> tuple[list[tuple[str, str]], bool]:
        lines: list[tuple[str, str]] = []
        steps = [s for s in ctx.store.list_steps(run.id) if step is None or s.name == step]
        for s in steps:
            if not s.log_path or not os.path.exists(s.log_path):
                continue
            with open(s.log_path, "rb") as fh:
                fh.seek(offsets.get(s.name, 0))
                data = fh.read(1 << 20)
            end = data.rfind(b"\n") + 1  # whole lines only; a partial one waits for its end
            if end:
                offsets[s.name] = offsets.get(s.name, 0) + end
                lines += [(s.name, line) for line in data[:end].decode("utf-8", "replace").splitlines()]
        ended = all(s.status in _TERMINAL or s.status == "skipped" for s in steps) and \
            ctx.store.get_run(run.id).status != "running"
        return lines, ended

    async def frames() -> AsyncIterator[str]:
        yield ": mloop log stream\n\n"
        while not await request.is_disconnected():
            lines, ended = await run_in_threadpool(read_new)
            if lines:
                mark = ",".join(f"{name}={offset}" for name, offset in offsets.items())
                for i, (name, line) in enumerate(lines):
                    # The batch's last line carries the offsets: a client that reconnects with it
                    # gets every line after the batch (a drop mid-batch repeats the batch).
                    head = f"id: {mark}\n" if i == len(lines) - 1 else ""
                    yield f"{head}event: log\ndata: {json.dumps({'step': name, 'line': line})}\n\n"
            elif ended:
                yield "event: end\ndata: {}\n\n"
                return
            await asyncio.sleep(STREAM_POLL_SECONDS)

    return StreamingResponse(frames(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/events")
def all_events(request: Request, after: Optional[int] = Query(None, ge=0, le=INT64_MAX)) -> StreamingResponse:
    return _stream(request, _ctx(request), _start_after(request, after), None)


# -- tokens (admin) -----------------------------------------------------------------------------
def _token_out(t: Any) -> TokenOut:
    return TokenOut(id=t.id, name=t.name, scope=t.scope, created_at=t.created_at, last_used_at=t.last_used_at,
                    revoked_at=t.revoked_at)


@admin_router.get("/tokens", response_model=list[TokenOut])
def list_tokens(request: Request) -> list[TokenOut]:
    return [_token_out(t) for t in _ctx(request).store.tokens.list()]


@admin_router.post("/tokens", status_code=201, response_model=CreatedToken)
def create_token(request: Request, body: NewToken) -> CreatedToken:
    record, text = _ctx(request).store.tokens.create(body.name, body.scope)
    return CreatedToken(**_token_out(record).model_dump(), token=text)


@admin_router.delete("/tokens/{token_id}", response_model=TokenOut)
def revoke_token(request: Request, token_id: str) -> TokenOut:
    return _token_out(_ctx(request).store.tokens.revoke(token_id))
