"""Terminal output for runs: a live table of steps on a terminal, one line per change elsewhere
(CI logs), job logs streamed on request, and the failing step's log tail at the end.

Layer: door (terminal renderer). It only renders: the engine's step events through a
listener, and the :class:`~mloop.runs.service.RunResult` the run service returns. Only the
doors import it (``mloop.cli``, ``mloop.commands``, the SDK verbs).
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from mloop.engine.engine import Listener, StepView
from mloop.store.base import RunRecord

if TYPE_CHECKING:
    from mloop.runs.service import RunResult

STATUS_STYLE = {"pending": "dim", "running": "bold cyan", "succeeded": "green", "failed": "bold red",
                "skipped": "yellow", "stopped": "magenta", "waiting_input": "bold yellow"}


def duration(started: float | None, finished: float | None) -> str:
    if started is None:
        return ""
    seconds = (finished or time.time()) - started
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    return f"{minutes}m{sec:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


class RunDisplay:
    """Listens to the engine and shows progress; use as a context manager around execution."""

    def __init__(self, console: Console, title: str, follow_logs: bool = False) -> None:
        self.console, self.title, self.follow_logs = console, title, follow_logs
        self.views: dict[str, StepView] = {}
        self._live: Live | None = None
        self._lock = threading.Lock()
        self._tails: dict[str, int] = {}
        self._stop = threading.Event()
        self._tailer: threading.Thread | None = None

    # -- engine listener --------------------------------------------------------------------
    def __call__(self, view: StepView) -> None:
        with self._lock:
            known = self.views.get(view.name)
            changed = known is None or known.status != view.status
            self.views[view.name] = StepView(**view.__dict__)
        if self._live is None and changed and view.status != "pending":
            stamp = time.strftime("%H:%M:%S")
            line = Text(f"{stamp} ")
            line.append(f"{view.name:<20} ")
            line.append_text(status_text(view.status))
            if view.status in ("succeeded", "failed", "stopped"):
                line.append(f" {duration(view.started, view.finished)}")
            if view.message and view.status != "running":
                line.append(f"  {view.message}", style="dim")
            self.console.print(line, highlight=False)
        elif self._live is not None:
            self._live.refresh()  # the Live renders self.table() itself (get_renderable)

    def table(self) -> Table:
        table = Table(title=self.title, title_justify="left", expand=False)
        for col in ("step", "type", "status", "time", "note"):
            # A note is one line, cut with an ellipsis: a failure's whole message (and its
            # hint) is printed after the table, and waiting steps' reasons too.
            table.add_column(col)  # fit_table: the note one line, cut with an ellipsis
        with self._lock:
            views = list(self.views.values())
        for v in views:
            note = v.message or ""
            table.add_row(v.name, v.type, status_text(v.status), duration(v.started, v.finished),
                          Text(note[:120], style="dim"))
        from mloop.tables import fit_table

        fit_table(table, ("note",), self.console)
        return table

    # -- context ----------------------------------------------------------------------------
    def __enter__(self) -> "RunDisplay":
        if self.console.is_terminal:
            self._live = Live(console=self.console, refresh_per_second=4, get_renderable=self.table)
            self._live.__enter__()
        else:
            self.console.print(self.title, style="bold")
        if self.follow_logs:
            self._tailer = threading.Thread(target=self._tail_loop, daemon=True)
            self._tailer.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._tailer:
            self._tailer.join(timeout=2)
            self._tail_once()
        if self._live is not None:
            self._live.refresh()
            self._live.__exit__(None, None, None)
            self._live = None

    def _tail_loop(self) -> None:
        while not self._stop.wait(0.2):
            self._tail_once()

    def _tail_once(self) -> None:
        with self._lock:
            paths = {v.name: v.log_path for v in self.views.values() if v.log_path}
        for name, path in paths.items():
            if not path or not os.path.exists(path):
                continue
            with open(path, "rb") as fh:
                fh.seek(self._tails.get(path, 0))
                data = fh.read()
                if not data:
                    continue
                end = data.rfind(b"\n") + 1
                if end == 0:
                    continue
                self._tails[path] = self._tails.get(path, 0) + end
            for line in data[:end].decode("utf-8", "replace").splitlines():
                out = Text(f"[{name}] ", style="cyan")
                out.append(line)
                (self._live.console if self._live else self.console).print(out, highlight=False, markup=False)


def summary(console: Console, run: RunRecord, failed_step: str | None, tail: list[str],
            failed_message: str | None = None) -> None:
    """The last lines: the run's outcome, and for a failure the step, why it failed (whole: the
    live table cuts long notes, and a hint is no use cut) and its log tail."""
    style = STATUS_STYLE.get(run.status, "")
    console.print(Text.assemble(("run ", ""), (run.id[:12], "bold"), (" ", ""), (run.status, style),
                                (f"  {run.message}" if run.message else "", "dim")), highlight=False)
    if failed_step and failed_message:
        named = failed_message.startswith(f"step {failed_step!r}")
        console.print(Text.assemble(("" if named else f"step {failed_step!r}: ", "red"), (failed_message, "")),
                      highlight=False, soft_wrap=True)
    if failed_step:
        console.print(f"step {failed_step!r} failed; last lines of its log:", style="red")
        for line in tail:
            console.print(f"  {line}", highlight=False, markup=False)
        console.print(f"full log: mloop logs {run.id[:12]} {failed_step}", style="dim")


def render_result(console: Console, result: RunResult) -> None:
    """How a run ended (:func:`summary`), and for a run left waiting, what it waits for."""
    summary(console, result.run, result.failed.name if result.failed else None, result.log_tail,
            result.failed.message if result.failed else None)
    if result.run.status != "waiting_input":
        return
    for step in result.waiting:
        console.print(Text.assemble((f"step {step.name!r} ", "bold"), (step.message or "", "yellow")),
                      highlight=False)
    console.print(f"the run waits; `mloop resume {result.run.id[:12]}` continues it once the input is there "
                  f"(`mloop input` and `mloop label import` resume it themselves)", style="dim")


class Watcher:
    """Shows a run live while the run service executes it, then how it ended (the ``watch``
    argument of :func:`mloop.runs.service.start_run` and friends); with ``quiet``, nothing."""

    def __init__(self, console: Console | None = None, *, quiet: bool = False, follow_logs: bool = False,
                 note: str = "", print_id: bool = False) -> None:
        self.console = console or Console()
        self.quiet, self.follow_logs, self.note = quiet, follow_logs, note
        #: With ``quiet``, print the run's id (alone on stdout) before it runs: a CI log keeps
        #: it even when the run fails or the job is killed.
        self.print_id = print_id

    def title(self, run: RunRecord) -> str:
        note = self.note.format(attempt=run.attempt)
        return f"{run.workflow_name} · run {run.id[:12]} (#{run.number}){note}"

    def __call__(self, run: RunRecord, execute: Callable[[Listener | None], RunResult]) -> RunResult:
        if self.quiet:
            if self.print_id:
                print(run.id, flush=True)
            return execute(None)
        with RunDisplay(self.console, self.title(run), follow_logs=self.follow_logs) as display:
            result = execute(display)
        render_result(self.console, result)
        return result
