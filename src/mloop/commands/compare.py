"""``mloop compare RUN RUN [RUN…]``: runs side by side (the run service's :func:`compare_runs`)."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from mloop.commands._common import out

#: Section titles, in the order the comparison lists them.
SECTIONS = {"parameters": "parameters", "metrics": "final metrics", "datasets": "dataset versions",
            "code": "code hashes", "durations": "durations"}


def compare(run_ids: list[str] = typer.Argument(..., metavar="RUN", help="two or more runs (ids or unique prefixes)"),
            only_diff: bool = typer.Option(False, "--diff", help="only the rows where the runs differ"),
            as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Compare runs side by side: parameters, final metrics, dataset versions, code hashes and
    durations; rows where the runs differ are marked ≠ (and bold)."""
    from mloop.commands._common import cli_client, open_cli_backend

    client = cli_client()
    if client is not None:
        with client:
            data: dict[str, Any] = client.call("GET", "/runs/compare", params={"ids": ",".join(run_ids)})
    else:
        from mloop.runs.queries import compare_runs

        with open_cli_backend() as backend:
            data = compare_runs(backend, run_ids).to_dict()
    if as_json:
        print(json.dumps(data, indent=2))
        return
    out.print(render(data, only_diff=only_diff, width=out.width))


def _cell(section: str, value: Any) -> str:
    if value is None:
        return "-"
    if section == "durations":
        from mloop.console import duration

        return duration(0.0, float(value))
    if section == "code":
        return str(value)[:12]
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:  # a data placeholder's {"obs_url": ...}
        return _cell(section, next(iter(value.values())))
    return json.dumps(value, ensure_ascii=False)


def _tail(text: str, width: int) -> str:
    """A path too long for its column keeps its end (where paths differ), not its start."""
    return "…" + text[-(width - 1):] if "/" in text and len(text) > width else text


def render(data: dict[str, Any], *, only_diff: bool = False, width: int = 80) -> Table:
    """The comparison (:meth:`Comparison.to_dict`) as a table: one column per run, one row per
    compared thing; names and values are cut with an ellipsis so 2-3 runs fit 80 columns."""
    runs = data["runs"]
    # Widths chosen here: left to itself, rich shrinks every column alike, the ≠ column to nothing.
    name_width = min(22, max([len(SECTIONS.get(r["section"], "")) for r in data["rows"]]
                             + [len(r["name"]) for r in data["rows"]] + [4]))
    value_width = max(6, min(30, (width - 3 - (name_width + 2) - 2 * len(runs)) // max(1, len(runs))))
    table = Table(box=None, pad_edge=False, show_edge=False)
    table.add_column("≠", width=1, no_wrap=True)
    table.add_column("", overflow="ellipsis", no_wrap=True, max_width=name_width)
    for r in runs:
        table.add_column(f"{r['id'][:8]} #{r['number']}", overflow="ellipsis", no_wrap=True, max_width=value_width)
    section = ""
    for row in data["rows"]:
        if only_diff and not row["differs"]:
            continue
        if row["section"] != section:
            section = row["section"]
            table.add_row("", Text(SECTIONS.get(section, section), style="bold underline"), *[""] * len(runs))
        style = "bold" if row["differs"] else ""
        table.add_row(Text("≠" if row["differs"] else "", style="yellow"), Text(row["name"], style=style),
                      *[Text(_tail(_cell(section, v), value_width), style=style) for v in row["values"]])
    return table
