"""Event names, what a subscription wants, and the one-line text of a notification.

Pure functions over plain values (no store, no network): the settings validate subscriptions
with them, the CLI and the API check input with them, and the notifier matches events.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["CHANNELS", "DEFAULT_RUN_EVENTS", "DEFAULT_STEP_EVENTS", "EVENTS", "check_target", "event_name",
           "matches", "normalize_events", "short_text"]

#: Every event a subscription can ask for.
EVENTS: tuple[str, ...] = (
    "run_started", "run_succeeded", "run_failed", "run_stopped", "run_waiting_input",
    "step_succeeded", "step_failed", "step_stopped", "step_waiting_input",
)
#: What a subscription without ``events`` gets: how runs end or wait (or, with a step, how it does).
DEFAULT_RUN_EVENTS: tuple[str, ...] = ("run_succeeded", "run_failed", "run_stopped", "run_waiting_input")
DEFAULT_STEP_EVENTS: tuple[str, ...] = ("step_succeeded", "step_failed", "step_stopped", "step_waiting_input")
#: The channels a notification goes out by.
CHANNELS: tuple[str, ...] = ("webhook", "slack", "email")

_SHORT = {"started": "started", "start": "started", "succeeded": "succeeded", "success": "succeeded",
          "failed": "failed", "failure": "failed", "stopped": "stopped", "waiting_input": "waiting_input",
          "waiting": "waiting_input"}
_ENDS = {"succeeded", "failed", "stopped", "waiting_input"}
_URL_RE = re.compile(r"^https?://[^\s/]+(/\S*)?$", re.IGNORECASE)
_ADDRESS_RE = re.compile(r"^[^@\s,<>]+@[^@\s,<>]+\.[^@\s,<>]+$")


def event_name(step_name: str | None, from_status: str | None, to_status: str) -> str | None:
    """The notification event of a run or step transition, or None when it is none.

    A run that starts is ``run_started`` (a resumed one, from ``waiting_input``, is not); runs
    and steps that end or wait are ``<run|step>_<status>``; a step still waiting whose reason
    changed (``waiting_input -> waiting_input``), a skipped, pending or running step is nothing.
    """
    if step_name is None:
        if to_status == "running":
            return "run_started" if from_status in (None, "pending") else None
        return f"run_{to_status}" if to_status in _ENDS and from_status != to_status else None
    if to_status in _ENDS and from_status != to_status:
        return f"step_{to_status}"
    return None


def _suggest(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def normalize_events(events: Iterable[str] | str | None, *, step: str | None = None) -> list[str]:
    """Event names from what a user wrote: full names (``run_failed``) or short ones
    (``failed``: ``step_failed`` when the subscription names a step, else ``run_failed``),
    comma separated or as a list. Nothing given: :data:`DEFAULT_RUN_EVENTS` (or the step ones).

    Raises:
        ValueError: an unknown name, with the closest known one.
    """
    if isinstance(events, str):
        events = events.split(",")
    words = [w.strip().lower().replace("-", "_") for w in (events or []) if w and w.strip()]
    if not words:
        return list(DEFAULT_STEP_EVENTS if step else DEFAULT_RUN_EVENTS)
    found: list[str] = []
    for word in words:
        if word in EVENTS:
            name = word
        elif word in _SHORT:
            name = f"{'step' if step else 'run'}_{_SHORT[word]}"
            if name not in EVENTS:  # step_started: steps don't notify when they start
                raise ValueError(f"unknown event {word!r} for a step subscription; events: {', '.join(EVENTS)}")
        else:
            raise ValueError(f"unknown event {word!r}{_suggest(word, [*EVENTS, *_SHORT])}; "
                             f"events: {', '.join(EVENTS)} (or short: failed, succeeded, stopped, waiting_input, "
                             "started)")
        if name not in found:
            found.append(name)
    return found


def check_channel(channel: str) -> str:
    """``channel`` if it is known.

    Raises:
        ValueError: it is not (with the closest one).
    """
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}{_suggest(channel, CHANNELS)}; channels: {', '.join(CHANNELS)}")
    return channel


def check_target(channel: str, target: str) -> str:
    """``target`` if it suits ``channel``: an http(s) URL for webhook and slack, one or more
    comma-separated addresses for email.

    Raises:
        ValueError: it does not.
    """
    check_channel(channel)
    target = target.strip()
    if channel in ("webhook", "slack"):
        if not _URL_RE.fullmatch(target):
            raise ValueError(f"a {channel} target must be an http(s) URL, not {target!r}")
        return target
    addresses = [a.strip() for a in target.split(",") if a.strip()]
    bad = [a for a in addresses if not _ADDRESS_RE.fullmatch(a)]
    if not addresses or bad:
        raise ValueError(f"an email target is one or more addresses, comma separated; not an address: "
                         f"{', '.join(repr(b) for b in bad) or repr(target)}")
    return ",".join(addresses)


def matches(subscription: Mapping[str, Any], event: str, workflow_name: str, step_name: str | None) -> bool:
    """Whether a subscription (``workflow_name``, ``step_name``, ``events``) wants an event.

    A subscription with a step gets that step's events (and the run events it lists); one
    without gets step events of every step it lists.
    """
    if event not in (subscription.get("events") or ()):
        return False
    wanted_workflow = subscription.get("workflow_name")
    if wanted_workflow and wanted_workflow != workflow_name:
        return False
    wanted_step = subscription.get("step_name")
    if step_name is not None and wanted_step and wanted_step != step_name:
        return False
    return True


def short_text(payload: Mapping[str, Any]) -> str:
    """One line for humans: ``mnist #12 failed: step train (exit 1)``."""
    text = f"{payload.get('workflow')} #{payload.get('run_number')}"
    to_status = str(payload.get("to_status", ""))
    status = {"running": "started", "waiting_input": "waits for input"}.get(to_status, to_status)
    step = payload.get("step")
    if step:
        text += f" step {step} {status}"
        if to_status == "failed" and payload.get("exit_code") is not None:
            text += f" (exit {payload['exit_code']})"
    else:
        text += f" {status}"
        if payload.get("failed_step"):
            text += f": step {payload['failed_step']}"
            if payload.get("failed_exit_code") is not None:
                text += f" (exit {payload['failed_exit_code']})"
            return text
    message = payload.get("message")
    if message and to_status in ("failed", "waiting_input"):
        text += f": {str(message).splitlines()[0][:120]}"
    return text
