"""Durations written as text (``"30m"``, ``"7d"``, ``"never"``), for settings and specs alike.

Layer: foundation; it imports nothing of mloop, so the settings (read at every start-up) and
the spec can both use it without either loading the other.
"""

from __future__ import annotations

__all__ = ["duration_seconds"]

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
#: What means "no expiry" where a duration is asked for (``cache_expiry``).
_NEVER = ("never", "none", "")


def duration_seconds(text: str | float | int | None) -> float | None:
    """A duration as seconds: ``"90"`` / ``90`` (seconds), ``"30m"``, ``"12h"``, ``"7d"``,
    ``"2w"``; None for ``"never"`` (or None). Used by ``cache_expiry``, in a step's policy and in
    settings.

    Raises:
        ValueError: anything else (pydantic turns it into the field's error).
    """
    if text is None or (isinstance(text, str) and text.strip().lower() in _NEVER):
        return None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        raw = str(text).strip().lower()
        unit = raw[-1] if raw[-1:] in _DURATION_UNITS else "s"
        try:
            seconds = float(raw[:-1] if raw[-1:] in _DURATION_UNITS else raw) * _DURATION_UNITS[unit]
        except ValueError:
            raise ValueError(f"{text!r} is not a duration: write e.g. 90s, 30m, 12h, 7d, 2w or never") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"{text!r} is not a duration: it must be 0 or more (or never)")
    return seconds
