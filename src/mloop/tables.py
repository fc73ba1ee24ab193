"""Tables that fit the terminal: free text gives way, ids and URLs never do.

Layer: door helpers (rich only); the CLI's commands and the live run display use it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from rich.console import Console

__all__ = ["fit_table", "short_when"]


def short_when(value: datetime | None) -> str:
    """A stored time, short for a table column: ``MM-DD HH:MM`` this year, else ``YYYY-MM-DD``."""
    if value is None:
        return ""
    local = value.astimezone()
    return local.strftime("%m-%d %H:%M") if local.year == datetime.now().year else local.strftime("%Y-%m-%d")


def fit_table(table: Any, flexible: Sequence[str], console: Console | None = None, minimum: int = 4) -> bool:
    """Make ``table`` fit the terminal by shortening only its free-text columns.

    The ``flexible`` columns (by header) become one line each, cut with an ellipsis, and
    as narrow as they must be (largest first, down to ``minimum``); every other column (ids,
    URLs, names someone copies) keeps its full width and never wraps. Call it after the rows
    are added. Returns whether it fits (when not, the caller had better print its rows
    another way than cut ids)."""
    from rich.measure import Measurement

    console = console or Console()
    options = console.options
    columns = list(table.columns)
    widths = []
    for column in columns:
        cells = [column.header, *column.cells]
        widths.append(max((Measurement.get(console, options, c).maximum for c in cells), default=0))
    for column in columns:
        if column.header in flexible:
            column.no_wrap, column.overflow = True, "ellipsis"
        else:
            column.no_wrap, column.overflow = True, "fold"
    pad = sum(table.padding[1] + table.padding[3] for _ in columns)
    excess = sum(widths) + pad + table._extra_width - console.width
    flex = [i for i, c in enumerate(columns) if c.header in flexible]
    while excess > 0:
        wide = [i for i in flex if widths[i] > minimum]
        if not wide:
            break
        widest = max(wide, key=lambda i: widths[i])
        others = [widths[i] for i in wide if i != widest]
        step = min(excess, widths[widest] - max(max(others, default=minimum), minimum) or 1)
        widths[widest] -= step
        excess -= step
    for i in flex:
        columns[i].max_width = max(widths[i], 1)
    return bool(excess <= 0)
