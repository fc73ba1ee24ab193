"""The notifier: committed events become outbox rows, outbox rows become sent notifications.

:meth:`Notifier.scan` reads ``events`` after the cursor and queues a notification for each
enabled subscription that wants the event, moving the cursor in the same transaction;
:meth:`Notifier.deliver` sends due rows, retrying failures with exponential backoff
(5 s, 10 s, 20 s ... at most 10 min; after 8 attempts the row is ``failed``). A process that
dies at any point loses nothing: an event not yet scanned is scanned by the next notifier,
a row not yet sent stays pending (a claimed one becomes due again when its lease ends).

The notifier never fails a run: :func:`pump_quietly` (what a run's end and the reconciler
call) logs every error, and a delivery error is kept on its row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from mloop.context import Context
from mloop.notify.channels import DeliveryError, send
from mloop.notify.rules import event_name, matches, short_text
from mloop.store.notify import NotificationRecord, NotifyEvent, SubscriptionRecord

__all__ = ["MAX_ATTEMPTS", "Notifier", "PumpResult", "backoff_seconds", "pump_quietly", "subscriptions_exist",
           "sync_from_settings"]

log = logging.getLogger("mloop.notify")

#: Attempts before a notification is given up (``failed``).
MAX_ATTEMPTS = 8
#: First retry delay, doubled on each further failure, capped at :data:`MAX_BACKOFF_SECONDS`.
FIRST_BACKOFF_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 600.0
#: Events read per scan query.
SCAN_BATCH = 500


def backoff_seconds(attempts: int) -> float:
    """Delay before the next attempt after ``attempts`` failed ones: 5, 10, 20 ... at most 600."""
    return float(min(FIRST_BACKOFF_SECONDS * 2.0 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS))


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class PumpResult:
    queued: int = 0
    sent: int = 0
    failed: int = 0  # attempts that failed (retried later or given up)


def sync_from_settings(ctx: Context) -> list[SubscriptionRecord]:
    """Upsert the subscriptions declared in settings (``[[notify]]``) into the store, by name."""
    done = []
    for spec in ctx.settings.notify:
        current = ctx.store.notify.find_subscription(spec.name)
        wanted = dict(workflow_name=spec.workflow, step_name=spec.step, events=list(spec.events),
                      channel=spec.channel, target=spec.target, secret=spec.secret, enabled=spec.enabled)
        if current is not None and all(getattr(current, k) == v for k, v in wanted.items()):
            done.append(current)
            continue
        done.append(ctx.store.notify.add_subscription(spec.name, replace=True, **wanted))  # type: ignore[arg-type]
    return done


def subscriptions_exist(ctx: Context) -> bool:
    """Whether there is anything to notify: subscriptions in settings, or in the store."""
    return bool(ctx.settings.notify) or ctx.store.notify.has_subscriptions()


class Notifier:
    """Scans events into the outbox and delivers it, for one context.

    Args:
        ctx: settings (SMTP, declared subscriptions) and the store.
        clock: the current time (aware UTC); tests pass a controllable one.
        sender: sends one notification (default :func:`mloop.notify.channels.send`).
    """

    def __init__(self, ctx: Context, *, clock: Callable[[], datetime] = _utcnow,
                 sender: Callable[..., None] | None = None) -> None:
        self.ctx = ctx
        self.clock = clock
        self.sender = sender or send
        self._synced = False

    # -- scan ---------------------------------------------------------------------------------
    def sync(self) -> None:
        """Upsert the settings' subscriptions (once per notifier)."""
        if not self._synced:
            if self.ctx.settings.notify:
                sync_from_settings(self.ctx)
            self._synced = True

    def scan(self) -> int:
        """Queue a notification for every new event each enabled subscription wants; returns
        how many were queued."""
        self.sync()
        repo = self.ctx.store.notify
        queued = 0
        while True:
            cursor = repo.cursor()
            events = repo.events_after(cursor, limit=SCAN_BATCH)
            if not events:
                return queued
            subs = repo.list_subscriptions(enabled_only=True)
            dumped = {s.name: s.model_dump() for s in subs}  # once per batch, not per event
            rows: list[dict[str, Any]] = []
            for event in events:
                name = event_name(event.step_name, event.from_status, event.to_status)
                if name is None:
                    continue
                wanting = [s for s in subs if s.created_at <= event.at
                           and matches(dumped[s.name], name, event.workflow_name, event.step_name)]
                if not wanting:
                    continue
                payload = self._payload(event, name)
                rows.extend(dict(subscription_id=s.id, event_id=event.id, event=name, run_id=event.run_id,
                                 step_name=event.step_name, payload=payload) for s in wanting)
            queued += repo.enqueue(rows, cursor_to=events[-1].id, cursor_from=cursor, now=self.clock())
            if len(events) < SCAN_BATCH:
                return queued

    def _payload(self, event: NotifyEvent, name: str) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "event": name, "event_id": event.id, "workflow": event.workflow_name, "run_number": event.number,
            "run_id": event.run_id, "step": event.step_name, "from_status": event.from_status,
            "to_status": event.to_status, "at": event.at.isoformat(), "message": event.message,
            "origin": event.origin,
        }
        if event.to_status == "failed":
            try:
                steps = self.ctx.store.list_steps(event.run_id)
            except Exception:  # noqa: BLE001 - the details are a courtesy; the event is what counts
                steps = []
            if event.step_name is not None:
                step = next((s for s in steps if s.name == event.step_name), None)
                payload["exit_code"] = step.exit_code if step else None
            else:
                failed = next((s for s in steps if s.status == "failed"), None)
                if failed is not None:
                    payload["failed_step"] = failed.name
                    payload["failed_exit_code"] = failed.exit_code
        payload["text"] = short_text(payload)
        return payload

    # -- deliver ------------------------------------------------------------------------------
    def deliver(self, max_seconds: float = 30.0) -> PumpResult:
        """Send due notifications until none is due or ``max_seconds`` have passed."""
        result = PumpResult()
        repo = self.ctx.store.notify
        end = time.monotonic() + max_seconds
        subs: dict[str, SubscriptionRecord] = {}
        while time.monotonic() < end:
            batch = repo.claim_due(self.clock(), limit=20)
            if not batch:
                break
            if any(n.subscription_id not in subs for n in batch):
                subs = {s.id: s for s in repo.list_subscriptions()}
            for note in batch:
                if time.monotonic() >= end:
                    # Out of time: hand the rest back, due now (the lease would delay them).
                    repo.release(note.id, self.clock())
                    continue
                if self._deliver_one(note, subs.get(note.subscription_id)):
                    result.sent += 1
                else:
                    result.failed += 1
        return result

    def _deliver_one(self, note: NotificationRecord, sub: SubscriptionRecord | None) -> bool:
        repo = self.ctx.store.notify
        attempts = note.attempts + 1
        try:
            if sub is None:
                raise DeliveryError("its subscription was removed")
            self.sender(sub.channel, sub.target, note.payload, secret=sub.secret, delivery_id=str(note.id),
                        settings=self.ctx.settings)
        except Exception as exc:  # noqa: BLE001 - every failure is kept on the row, none escapes
            reason = str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"
            final = attempts >= MAX_ATTEMPTS or sub is None
            now = self.clock()
            repo.mark_failed(note.id, attempts=attempts, error=reason or type(exc).__name__,
                             next_attempt_at=now + timedelta(seconds=backoff_seconds(attempts)), final=final)
            log.warning("notification %s (%s, %s) %s: %s", note.id, note.event, sub.name if sub else "?",
                        "given up" if final else f"attempt {attempts} failed", reason)
            return False
        repo.mark_sent(note.id, attempts=attempts, at=self.clock())
        return True

    def pump(self, max_seconds: float = 30.0) -> PumpResult:
        """:meth:`scan`, then :meth:`deliver` for at most ``max_seconds``."""
        start = time.monotonic()
        queued = self.scan()
        result = self.deliver(max(0.0, max_seconds - (time.monotonic() - start)))
        result.queued = queued
        return result


def pump_quietly(ctx: Context, max_seconds: float = 5.0) -> PumpResult | None:
    """One bounded :meth:`Notifier.pump` when anything is subscribed; every error is logged,
    none raised (a run's end and the reconciler call this)."""
    try:
        if not subscriptions_exist(ctx):
            return None
        return Notifier(ctx).pump(max_seconds=max_seconds)
    except Exception:  # noqa: BLE001 - notifications must never fail or block a run
        log.warning("notifications were not sent (they stay queued)", exc_info=True)
        return None


def sync_quietly(ctx: Context) -> None:
    """:func:`sync_from_settings`, logging rather than raising (before a run starts, so its
    events find the subscriptions declared in settings)."""
    try:
        sync_from_settings(ctx)
    except Exception:  # noqa: BLE001
        log.warning("subscriptions in settings were not stored", exc_info=True)
