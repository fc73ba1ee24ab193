"""Jobs as local processes, each in its own session so a stop ends its whole process tree.

Each job is the job runner (:mod:`mloop.runner`) in a fresh interpreter: it stages the job
in and runs a Python boot file in that same process (one interpreter per job). Its ref is
``local:<pid>:<create time>``: any process on this host can poll or cancel it, and a pid
reused by another process since is never taken for the job.
"""

from __future__ import annotations

import heapq
import os
import selectors
import signal
import subprocess
import sys
import threading
import time

from typing import Any, Callable

import psutil

from mloop.errors import ArtifactError
from mloop.executors.base import (
    JOB_MARKER, ExitCallback, Executor, JobExit, JobHandle, JobRequest, register_executor, runner_argument,
)


def kill_tree(pid: int, grace_seconds: float = 5.0, started_by: float | None = None) -> bool:
    """SIGTERM a process, its process group and its descendants; SIGKILL what is left after the grace.

    ``started_by`` guards against pid reuse: when the job had started (a step's ``started_at``,
    recorded just after the launch). A process created after it (give or take the second
    psutil's start times may be off) reuses the pid of a job that is gone, and is not ours.
    Returns True if something was signalled.
    """
    try:
        root = psutil.Process(pid)
        if started_by is not None and root.create_time() > started_by + 1.0:
            return False
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return False
    try:
        os.killpg(pid, signal.SIGTERM)  # the job leads its own session: this reaches the whole group
    except (ProcessLookupError, PermissionError):
        pass
    for proc in procs:
        try:
            proc.send_signal(signal.SIGTERM)  # children that left the group
        except psutil.NoSuchProcess:
            pass
    alive = _wait_ended(procs, grace_seconds)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    _wait_ended(alive, 2)
    return True


def _wait_ended(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """The processes still running after at most ``timeout`` seconds.

    Unlike ``psutil.wait_procs`` this never reaps: a job that is a child of this process (the
    engine's own jobs) is left for its Popen to collect, which would otherwise read exit code 0.
    """
    end = time.monotonic() + timeout
    while True:
        alive = []
        for proc in procs:
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() >= end:
            return alive
        time.sleep(0.05)


#: How the runner is started: ``-c`` rather than ``-m mloop.runner``, which would import runpy,
#: importlib.util and contextlib (milliseconds of CPU per job) before the runner even starts.
#: ``sys.path[0]`` (``''`` under ``-c``) is this mloop's folder, so the job runs the engine's
#: own runner whatever its working directory; the runner sets it to the script's folder.
RUNNER_BOOT = ("import sys; sys.path[0] = {src!r}; from mloop.runner import main; main()"
               .format(src=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


class _Deadlines:
    """One daemon thread that calls each job's time-limit action when it falls due (a heap of
    deadlines), started on first use."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cancelled: set[int] = set()
        self._seq = 0
        self._thread: threading.Thread | None = None

    def add(self, seconds: float, action: Callable[[], None]) -> int:
        with self._cond:
            self._seq += 1
            heapq.heappush(self._heap, (time.monotonic() + seconds, self._seq, action))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="job-deadlines", daemon=True)
                self._thread.start()
            self._cond.notify()
            return self._seq

    def cancel(self, key: int) -> None:
        with self._cond:
            self._cancelled.add(key)
            if len(self._cancelled) > 1024 and len(self._cancelled) * 2 > len(self._heap):
                # Jobs end long before their (default: 7 days) limits: drop the dead entries.
                self._heap = [entry for entry in self._heap if entry[1] not in self._cancelled]
                heapq.heapify(self._heap)
                self._cancelled.clear()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][1] in self._cancelled:
                    self._cancelled.discard(heapq.heappop(self._heap)[1])
                if not self._heap:
                    self._cond.wait()
                    continue
                due, key, action = self._heap[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
            threading.Thread(target=action, name=f"job-timeout-{key}", daemon=True).start()


_DEADLINES = _Deadlines()


class _Reaper:
    """One thread that hears every job of this process end, through a pidfd per job (Linux
    5.3+). A thread started per job would cost its start each step, and, right after a fork,
    wait milliseconds for the child's exec to release the address space."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._new: list[tuple[int, Callable[[], None]]] = []
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = -1, -1

    def watch(self, pid: int, callback: Callable[[], None]) -> bool:
        """Call ``callback`` (in the reaper thread) once process ``pid`` has ended; False where
        pidfds are not available (the caller waits its own way)."""
        try:
            fd = os.pidfd_open(pid)  # type: ignore[attr-defined, unused-ignore]
        except (AttributeError, OSError):
            return False
        with self._lock:
            if self._thread is None:
                self._wake_r, self._wake_w = os.pipe()
                self._thread = threading.Thread(target=self._loop, name="job-reaper", daemon=True)
                self._thread.start()
            self._new.append((fd, callback))
        os.write(self._wake_w, b"!")
        return True

    def _loop(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._wake_r, selectors.EVENT_READ, None)
        while True:
            for key, _ in selector.select():
                if key.data is None:
                    os.read(self._wake_r, 4096)
                    with self._lock:
                        new, self._new = self._new, []
                    for fd, callback in new:
                        selector.register(fd, selectors.EVENT_READ, callback)
                    continue
                selector.unregister(key.fd)
                os.close(key.fd)
                try:
                    key.data()
                except Exception:  # noqa: BLE001 - one job's bookkeeping must not stop the others'
                    import traceback

                    traceback.print_exc()


_REAPER = _Reaper()
_RUNNER_COMPILED = False


def _ensure_runner_bytecode() -> None:
    """Make sure the runner's modules have their bytecode cached, once per engine process.

    Every job imports them; without a cache each job compiles them again (~5 ms of CPU), as
    happens when ``PYTHONDONTWRITEBYTECODE`` is set or nothing has imported them yet. A
    read-only install is left as it is."""
    global _RUNNER_COMPILED
    if _RUNNER_COMPILED:
        return
    _RUNNER_COMPILED = True
    import importlib.util
    import py_compile

    import mloop
    import mloop.runner

    for module in (mloop, mloop.runner):
        source = module.__file__
        if not source:
            continue
        try:
            cached = importlib.util.cache_from_source(source)
            if not os.path.exists(cached) or os.stat(cached).st_mtime < os.stat(source).st_mtime:
                py_compile.compile(source, cfile=cached, doraise=True)
        except (OSError, py_compile.PyCompileError, NotImplementedError, ValueError):
            continue


def make_ref(pid: int, created: float) -> str:
    return f"local:{pid}:{created!r}"


def parse_ref(ref: str) -> tuple[int, float]:
    """``(pid, create time)`` of a ``local:`` ref.

    Raises:
        ValueError: not a ref of the local executor.
    """
    name, pid, created = ref.split(":", 2)
    if name != "local":
        raise ValueError(f"{ref!r} is not a local job reference")
    return int(pid), float(created)


#: How far a process's start time (the kernel's, as psutil reads it: boot time, whole seconds,
#: plus clock ticks) may lie from the ref's (the launcher's clock just before the fork) for
#: the process to be the job; a pid reused that soon would need the pid space to wrap.
START_TIME_TOLERANCE_S = 1.5


def find_process(ref: str) -> psutil.Process | None:
    """The live process ``ref`` names, None if it has ended or its pid now belongs to another process."""
    pid, created = parse_ref(ref)
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - created) > START_TIME_TOLERANCE_S:
            return None  # the pid was reused
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except psutil.Error:
        return None


class LocalExecutor(Executor):
    """Runs each job as a subprocess; a waiter thread per job reports its exit at once."""

    name = "local"

    def __init__(self) -> None:
        self._launched: dict[str, JobHandle] = {}  # jobs of this process still running, by ref
        self._ended: dict[str, JobExit] = {}  # and the exits of those that ended
        self._lock = threading.Lock()

    def command(self, request: JobRequest, wire: dict[str, Any] | None = None) -> list[str]:
        """The argv that starts the runner for ``request`` (a file next to the job folder
        holds a request too big for one argument)."""
        return [sys.executable, "-c", RUNNER_BOOT, runner_argument(wire if wire is not None else request.to_dict())]

    def launch(self, request: JobRequest, on_exit: ExitCallback | None = None) -> JobHandle:
        from mloop.runner import contract, local_path

        _ensure_runner_bytecode()

        parent = os.path.dirname(request.workdir.rstrip(os.sep))
        os.makedirs(parent, exist_ok=True)  # (file system calls are a large part of a launch)
        log_path = local_path(request.log_url)
        log: Any = subprocess.DEVNULL
        if log_path is not None:
            if os.path.dirname(log_path) != parent:
                os.makedirs(os.path.dirname(log_path), exist_ok=True)
            try:
                log = open(log_path, "ab", buffering=0)
            except OSError as exc:
                raise ArtifactError(f"cannot open the log file {log_path}: {exc}") from exc
        wire = request.to_dict()
        argv = self.command(request, wire)
        # Bytes, as the OS holds them: os.environ would decode every variable and Popen encode
        # it back, a measurable part of a launch.
        env = dict(os.environb)
        # The job's contract variables are in its environment from the start, as when its
        # interpreter was started for it: what the interpreter and the C libraries read only at
        # start-up (PYTHONPATH, LD_LIBRARY_PATH, PYTHONHASHSEED ...) takes effect.
        env.update((k.encode(), v.encode()) for k, v in contract(wire)[1].items())
        env[b"PYTHONUNBUFFERED"] = b"1"  # the runner's own interpreter is the job's: output goes out live
        env[JOB_MARKER.encode()] = f"{request.run_id}/{request.step_name}/{request.attempt}".encode()
        # The ref's time is this clock just before the fork: reading the child's start time
        # from /proc now would wait until its exec has finished (milliseconds per step).
        launched_at = time.time()
        try:
            proc = subprocess.Popen(
                argv, cwd=os.path.dirname(request.workdir.rstrip(os.sep)), env=env, stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True,
            )
        except OSError as exc:
            if log is not subprocess.DEVNULL:
                if request.log_header:
                    log.write(f"{request.log_header}\n".encode())
                log.write(f"mloop: could not start the job: {exc}\n".encode())
            handle = JobHandle(request, None)
            if on_exit:
                on_exit(handle, JobExit(None, reason=f"could not start {argv[0]!r}: {exc}"))
            return handle
        finally:
            if log is not subprocess.DEVNULL:
                log.close()  # the child holds its own descriptor
        created = launched_at
        handle = JobHandle(request, make_ref(proc.pid, created), proc.pid, proc)
        with self._lock:
            self._launched[handle.ref] = handle  # type: ignore[index]
        self._watch(handle, on_exit)
        return handle

    def _watch(self, handle: JobHandle, on_exit: ExitCallback | None) -> None:
        """Hear the job end at once: the shared reaper (a pidfd per job) or, where there are
        no pidfds, a thread blocked in wait(); the shared deadline watcher enforces the limit."""
        proc: subprocess.Popen[bytes] = handle.native
        timeout = handle.request.timeout_seconds
        expired = threading.Event()
        deadline = None
        if timeout is not None:
            def expire() -> None:
                expired.set()
                kill_tree(proc.pid, grace_seconds=5.0)

            deadline = _DEADLINES.add(timeout, expire)

        def ended() -> None:
            proc.wait()  # it has ended: this only collects its status
            if deadline is not None:
                _DEADLINES.cancel(deadline)
            self._ended_job(handle, on_exit, expired, timeout)

        if not _REAPER.watch(proc.pid, ended):
            threading.Thread(target=ended, name=f"wait-{handle.request.step_name}", daemon=True).start()

    def _ended_job(self, handle: JobHandle, on_exit: ExitCallback | None, expired: threading.Event,
                   timeout: float | None) -> None:
        proc: subprocess.Popen[bytes] = handle.native
        timed_out = expired.is_set()
        code = proc.returncode
        # kill_tree waits for the processes it signals, so it may reap the job itself, and then
        # Popen reads exit code 0: a job killed for running too long or on a stop never succeeded.
        killed = timed_out or handle.cancelled
        result = JobExit(code if code >= 0 and not killed else None, signal=-code if code < 0 else None,
                         timed_out=timed_out, reason=f"timed out after {timeout:g} s" if timed_out else None)
        handle.exit = result
        with self._lock:
            self._launched.pop(handle.ref, None)  # type: ignore[arg-type]
            self._ended[handle.ref] = result  # type: ignore[index]
        if on_exit:
            on_exit(handle, result)

    def jobs_of_run(self, run_id: str) -> list[str]:
        """Job processes of ``run_id`` on this machine, found by the marker in the environment
        they started with (``/proc/<pid>/environ``; processes of other users can't be read)."""
        wanted = f"{JOB_MARKER}={run_id}/".encode()
        found = []
        for proc in psutil.process_iter(["pid", "create_time"]):
            try:
                with open(f"/proc/{proc.info['pid']}/environ", "rb") as fh:
                    environ = fh.read()
            except OSError:
                continue
            if any(item.startswith(wanted) for item in environ.split(b"\0")):
                found.append(make_ref(proc.info["pid"], proc.info["create_time"]))
        return found

    def poll(self, ref: str) -> JobExit | None:
        with self._lock:
            mine = self._launched.get(ref)
            ended = self._ended.get(ref)
        if ended is not None:
            return ended
        if mine is not None:
            return mine.exit
        if find_process(ref) is not None:
            return None
        return JobExit(None, reason="the job's process has ended (its exit code was not recorded)")

    def cancel(self, ref: str, grace_seconds: float = 5.0) -> bool:
        with self._lock:
            mine = self._launched.get(ref)
        if mine is not None:
            if mine.native.poll() is not None:
                return False
            mine.cancelled = True
        proc = find_process(ref)
        if proc is None:
            return False
        return kill_tree(proc.pid, grace_seconds, started_by=proc.create_time())


register_executor("local", LocalExecutor)
