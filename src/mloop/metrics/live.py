"""Live metric points: what :class:`~mloop.metrics.MetricLogger` posts while a job trains.

A job inside mloop gets ``MLOOP_METRICS_URL`` (and ``MLOOP_METRICS_TOKEN``); points logged
there are sent in batches, ``POST {"points": [{"key", "value", "step", "timestamp"}, ...]}``,
by a background thread: every :data:`FLUSH_SECONDS`, or as soon as :data:`FLUSH_POINTS` are
waiting, and once more when the interpreter exits. Nothing here raises into the training
loop: a point that cannot be sent is dropped (at most :data:`MAX_PENDING` wait), and without
the variable nothing is posted at all (the metrics file is written as before).
"""

from __future__ import annotations

import atexit
import json
import math
import os
import threading
from typing import Any

__all__ = ["FLUSH_POINTS", "FLUSH_SECONDS", "LivePoster", "live_poster"]

FLUSH_SECONDS = 0.5
FLUSH_POINTS = 500
MAX_PENDING = 1_000_000
_TIMEOUT = 10.0


def _number(value: Any) -> float | str | None:
    if isinstance(value, str):
        return value if value in ("NaN", "Infinity", "-Infinity") else None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if math.isfinite(number):
        return number
    return "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")


def _step(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return 0


class LivePoster:
    """Sends points to ``url`` in batches from a daemon thread."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.sent = 0
        self.failed = 0
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._send_lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="mloop-metrics-poster", daemon=True)
        self._thread.start()
        atexit.register(self.flush)

    def add(self, key: str, value: Any, step: Any, timestamp: int) -> None:
        """Queue one point (never raises; a value that is not a number is left out)."""
        try:
            number = _number(value)
            if number is None:
                return
            with self._lock:
                if len(self._pending) >= MAX_PENDING:
                    return
                self._pending.append({"key": str(key), "value": number, "step": _step(step), "timestamp": timestamp})
                full = len(self._pending) >= FLUSH_POINTS
            if full:
                self._wake.set()
        except Exception:  # noqa: BLE001 - never into the training loop
            pass

    def _loop(self) -> None:
        while True:
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Send what is waiting now (the caller waits for it)."""
        with self._send_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                import urllib.request  # here: it costs an import most jobs never need

                request = urllib.request.Request(self.url, data=json.dumps({"points": batch}).encode(),
                                                 headers=self.headers, method="POST")
                with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
                    response.read()
                self.sent += len(batch)
            except Exception:  # noqa: BLE001 - the endpoint may be gone; the file output remains
                self.failed += len(batch)


_posters: dict[str, LivePoster] = {}
_posters_lock = threading.Lock()


def live_poster(environ: Any = None) -> LivePoster | None:
    """This process's poster for ``MLOOP_METRICS_URL``, or None when the variable is not set."""
    env = os.environ if environ is None else environ
    url = env.get("MLOOP_METRICS_URL")
    if not url:
        return None
    with _posters_lock:
        poster = _posters.get(url)
        if poster is None:
            token = env.get("MLOOP_METRICS_TOKEN") or env.get("MLFLOW_TRACKING_TOKEN")
            poster = _posters[url] = LivePoster(url, token)
        return poster
