"""A finished (or waiting) run as the action reports it: the job summary and the outputs.

:class:`Report` is built the same way from either door — the store's records (embedded) or
the REST API's JSON (client mode) — and rendered as GitHub-flavoured Markdown. Step names,
messages, metric keys and output values are the user's text: every one is escaped before it
reaches the summary, so a step named ``<img src=x>`` or ``a|b`` is shown, never rendered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Report", "StepLine", "md", "metric_value"]

#: Statuses after which a run changes no more.
TERMINAL = frozenset({"succeeded", "failed", "stopped"})

_ICON = {"succeeded": "✅", "failed": "❌", "stopped": "⏹️", "skipped": "⏭️", "running": "🔄",
         "pending": "⏳", "waiting_input": "✋"}
#: Characters that mean something in Markdown (or in GitHub's extensions) inside a table cell.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>:@$])")
#: A URL shown as a link: http(s), with none of the characters that end or break a Markdown link.
_SAFE_URL = re.compile(r"^https?://[A-Za-z0-9.\-]+(:\d+)?(/[A-Za-z0-9._~/%=&?+\-]*)?$")
_CELL_MAX = 200


def md(text: Any, limit: int = _CELL_MAX) -> str:
    """``text`` as literal Markdown inside a table cell: one line, HTML and Markdown escaped."""
    value = " ".join(str(text if text is not None else "").split())
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    return _MD_SPECIAL.sub(r"\\\1", value)


def link(url: str | None, text: str | None = None) -> str:
    """A Markdown link when ``url`` is a plain http(s) URL, else the escaped text of it."""
    if not url:
        return ""
    if _SAFE_URL.match(url):
        return f"[{md(text or url)}]({url})"
    return md(url)


def metric_value(kind: str, value: float | None, data: dict[str, Any]) -> float | None:
    """The value a metric ended at: a float's value, a line chart's last point, else None."""
    if kind == "float":
        return value
    if kind == "line chart":
        try:
            ys = data["y_axis"][0]["value"]
            return float(ys[-1]) if ys else None
        except (KeyError, IndexError, TypeError, ValueError):
            return None
    return None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start is not None and end is not None else None


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


@dataclass
class StepLine:
    name: str
    type: str
    status: str
    seconds: float | None = None
    message: str | None = None


@dataclass
class Report:
    """What the summary and the outputs say about one run."""

    run_id: str
    workflow: str
    number: int
    status: str
    message: str | None = None
    seconds: float | None = None
    steps: list[StepLine] = field(default_factory=list)
    metrics: list[tuple[str, str, float]] = field(default_factory=list)  # (step, key, final value)
    datasets: list[tuple[str, str]] = field(default_factory=list)  # (step, "name:version")
    models: list[tuple[str, str]] = field(default_factory=list)  # (step, "name:version")
    services: list[tuple[str, str]] = field(default_factory=list)  # (step, URL)
    console_url: str | None = None
    log_tail: list[str] = field(default_factory=list)  # the failed step's last log lines
    failed_step: str | None = None

    # -- building ---------------------------------------------------------------------------------
    @classmethod
    def from_records(cls, run: Any, steps: list[Any], metrics: list[Any], *, console_url: str | None = None,
                     log_tail: list[str] | None = None) -> Report:
        """From the store's records (or records rebuilt from the REST API's JSON)."""
        report = cls(run_id=run.id, workflow=run.workflow_name, number=run.number, status=run.status,
                     message=run.message, seconds=_seconds(run.started_at, run.finished_at), console_url=console_url,
                     log_tail=list(log_tail or []))
        for s in steps:
            report.steps.append(StepLine(s.name, s.type, s.status, _seconds(s.started_at, s.finished_at), s.message))
            report.add_outputs(s.name, getattr(s, "outputs", None) or {})
            if s.status == "failed" and report.failed_step is None:
                report.failed_step = s.name
        for m in metrics:
            final = metric_value(m.type, m.value, m.data)
            if final is not None:
                report.metrics.append((m.step_name, m.key, final))
        return report

    def add_outputs(self, step: str, outputs: dict[str, Any]) -> None:
        """Dataset versions, model versions and service URLs among a step's output values."""
        for value in outputs.values():
            if not isinstance(value, dict):
                continue
            kind = value.get("type")
            if kind == "dataset" and value.get("dataset_name"):
                self.datasets.append((step, f"{value['dataset_name']}:{value.get('version_name')}"))
            elif kind == "model" and value.get("name"):
                self.models.append((step, f"{value['name']}:{value.get('version')}"))
            elif kind == "service":
                url = (value.get("variables") or {}).get("access_address")
                if url:
                    self.services.append((step, str(url)))

    @property
    def model_version(self) -> str:
        """The last model version the run registered (``name:version``), or ``""``."""
        return self.models[-1][1] if self.models else ""

    @property
    def service_url(self) -> str:
        return self.services[-1][1] if self.services else ""

    # -- rendering --------------------------------------------------------------------------------
    def markdown(self) -> str:
        """The job summary: a headline, the steps, metrics, what the run made, links."""
        icon = _ICON.get(self.status, "")
        lines = [f"### {icon} mloop: {md(self.workflow)} \\#{self.number} {md(self.status)}".replace("  ", " "), ""]
        facts = [f"run `{self.run_id}`" if re.fullmatch(r"[A-Za-z0-9_\-]+", self.run_id) else f"run {md(self.run_id)}"]
        if self.seconds is not None:
            facts.append(f"took {duration(self.seconds)}")
        if self.console_url:
            facts.append(link(self.console_url, "open in the mloop console"))
        lines += [" · ".join(facts), ""]
        if self.message and self.status != "succeeded":
            lines += [f"> {md(self.message, 500)}", ""]
        if self.steps:
            lines += ["| step | type | status | duration | message |", "| --- | --- | --- | --- | --- |"]
            for s in self.steps:
                lines.append(f"| {md(s.name)} | {md(s.type)} | {_ICON.get(s.status, '')} {md(s.status)} | "
                             f"{duration(s.seconds)} | {md(s.message)} |")
            lines.append("")
        if self.metrics:
            lines += ["**Metrics**", "", "| step | metric | value |", "| --- | --- | ---: |"]
            for step, key, value in self.metrics:
                lines.append(f"| {md(step)} | {md(key)} | {value:.6g} |")
            lines.append("")
        made = ([("dataset", s, v) for s, v in self.datasets] + [("model", s, v) for s, v in self.models]
                + [("service", s, v) for s, v in self.services])
        if made:
            lines += ["**Produced**", "", "| kind | step | version or URL |", "| --- | --- | --- |"]
            for kind, step, value in made:
                lines.append(f"| {kind} | {md(step)} | {link(value) if kind == 'service' else md(value)} |")
            lines.append("")
        if self.log_tail and self.failed_step:
            fence = "````" if any("```" in line for line in self.log_tail) else "```"
            lines += [f"<details><summary>last log lines of {md(self.failed_step)}</summary>", "", fence + "text"]
            lines += [line.replace("`" * len(fence), "'" * len(fence)) for line in self.log_tail]
            lines += [fence, "", "</details>", ""]
        return "\n".join(lines) + "\n"
