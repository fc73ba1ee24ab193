"""Jobs as local processes, each in its own session so a stop ends its whole process tree."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import psutil

from mloop.errors import ArtifactError
from mloop.executors.base import ExitCallback, Executor, JobExit, JobHandle, JobRequest


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


class LocalExecutor(Executor):
    """Runs each job as a subprocess; a waiter thread per job reports its exit at once."""

    def launch(self, request: JobRequest, on_exit: ExitCallback | None = None) -> JobHandle:
        os.makedirs(os.path.dirname(request.log_path), exist_ok=True)
        try:
            log = open(request.log_path, "ab", buffering=0)
        except OSError as exc:
            raise ArtifactError(f"cannot open the log file {request.log_path}: {exc}") from exc
        try:
            proc = subprocess.Popen(
                request.argv, cwd=request.cwd, env=request.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True,
            )
        except OSError as exc:
            log.write(f"mloop: could not start the job: {exc}\n".encode())
            log.close()
            handle = JobHandle(request, None, None)
            if on_exit:
                on_exit(handle, JobExit(None, reason=f"could not start {request.argv[0]!r}: {exc}"))
            return handle
        finally:
            if not log.closed:
                log.close()  # the child holds its own descriptor
        handle = JobHandle(request, proc.pid, proc)
        threading.Thread(target=self._wait, args=(handle, on_exit), name=f"wait-{request.step_name}",
                         daemon=True).start()
        return handle

    def _wait(self, handle: JobHandle, on_exit: ExitCallback | None) -> None:
        proc: subprocess.Popen[bytes] = handle.native
        timeout = handle.request.timeout_seconds
        expired = threading.Event()
        timer = None
        if timeout is not None:
            # Popen.wait(timeout=...) polls with growing sleeps (up to 50 ms late per job);
            # a blocking wait hears the exit at once, and a timer enforces the limit.
            def expire() -> None:
                expired.set()
                kill_tree(proc.pid, grace_seconds=5.0)

            timer = threading.Timer(timeout, expire)
            timer.daemon = True
            timer.start()
        proc.wait()
        if timer is not None:
            timer.cancel()
        timed_out = expired.is_set()
        code = proc.returncode
        # kill_tree waits for the processes it signals, so it may reap the job itself, and then
        # Popen reads exit code 0: a job killed for running too long or on a stop never succeeded.
        killed = timed_out or handle.cancelled
        result = JobExit(code if code >= 0 and not killed else None, signal=-code if code < 0 else None,
                         timed_out=timed_out, reason=f"timed out after {timeout:g} s" if timed_out else None)
        handle.exit = result
        if on_exit:
            on_exit(handle, result)

    def poll(self, handle: JobHandle) -> JobExit | None:
        return handle.exit

    def cancel(self, handle: JobHandle, grace_seconds: float = 5.0) -> None:
        if handle.pid is not None and handle.native is not None and handle.native.poll() is None:
            handle.cancelled = True
            kill_tree(handle.pid, grace_seconds)

