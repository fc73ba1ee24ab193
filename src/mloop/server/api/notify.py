"""``/api/v1`` notifications: subscriptions to run and step events, and the delivery log.

::

    GET    /subscriptions              every subscription (secrets are never shown; a ``read``
                                       token sees webhook and Slack URLs cut to their host)
    POST   /subscriptions              add one {"name", "channel", "target", "workflow"?, "step"?,
                                       "events"?, "secret"?, "replace"?}
    DELETE /subscriptions/{name}       remove one (and its queued notifications)
    GET    /notifications              the delivery log, newest first (?limit=, ?status=, ?run_id=)

The server's notifier (:class:`mloop.notify.notifier.Notifier`) sends what is queued.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from mloop.context import Context
from mloop.errors import BadArgumentError, NotFoundError
from mloop.store.notify import NotificationRecord, SubscriptionRecord

router = APIRouter(tags=["notifications"])


def _backend(request: Request) -> Context:
    from mloop.server.app import backend_of

    return backend_of(request.app)


class SubscriptionIn(BaseModel):
    name: str = Field(min_length=1, max_length=64, description="unique name")
    channel: str = Field(max_length=32, description="webhook, slack or email")
    target: str = Field(max_length=4000, description="http(s) URL, or comma-separated e-mail addresses")
    workflow: Optional[str] = Field(None, max_length=200, description="only this workflow (default: every workflow)")
    step: Optional[str] = Field(None, max_length=200, description="only this step's events")
    events: Optional[list[str]] = Field(None, description="event names (full or short); default: run ends")
    secret: Optional[str] = Field(None, max_length=1000, description="HMAC-SHA256 key signing webhook bodies")
    enabled: bool = True
    replace: bool = Field(False, description="update the subscription of that name if there is one")


class SubscriptionOut(BaseModel):
    id: str
    name: str
    workflow: Optional[str] = None
    step: Optional[str] = None
    events: list[str]
    channel: str
    target: str
    signed: bool = Field(description="whether webhook bodies are signed (the secret is never shown)")
    enabled: bool
    created_at: datetime

    @classmethod
    def of(cls, sub: SubscriptionRecord) -> SubscriptionOut:
        return cls(id=sub.id, name=sub.name, workflow=sub.workflow_name, step=sub.step_name, events=sub.events,
                   channel=sub.channel, target=sub.target, signed=bool(sub.secret), enabled=sub.enabled,
                   created_at=sub.created_at)


class NotificationOut(BaseModel):
    id: int
    subscription: Optional[str] = None
    event: str
    event_id: int
    run_id: str
    step: Optional[str] = None
    status: str
    attempts: int
    last_error: Optional[str] = None
    next_attempt_at: datetime
    created_at: datetime
    sent_at: Optional[datetime] = None
    payload: dict[str, Any]

    @classmethod
    def of(cls, note: NotificationRecord) -> NotificationOut:
        return cls(id=note.id, subscription=note.subscription_name, event=note.event, event_id=note.event_id,
                   run_id=note.run_id, step=note.step_name, status=note.status, attempts=note.attempts,
                   last_error=note.last_error, next_attempt_at=note.next_attempt_at, created_at=note.created_at,
                   sent_at=note.sent_at, payload=note.payload)


def masked_target(channel: str, target: str) -> str:
    """A webhook or Slack URL cut to its scheme and host: the path of such a URL is the
    credential (anyone holding a Slack webhook URL can post to the channel). E-mail
    addresses are shown as they are."""
    if channel == "email":
        return target
    parts = urlsplit(target)
    return f"{parts.scheme}://{parts.hostname or '?'}/…" if parts.scheme else "…"


@router.get("/subscriptions", response_model=list[SubscriptionOut])
def list_subscriptions(request: Request) -> list[SubscriptionOut]:
    token = getattr(request.state, "token", None)
    full = token is not None and token.allows("run")  # who may add subscriptions may see them whole
    subs = [SubscriptionOut.of(s) for s in _backend(request).store.notify.list_subscriptions()]
    if not full:
        for sub in subs:
            sub.target = masked_target(sub.channel, sub.target)
    return subs


@router.post("/subscriptions", status_code=201, response_model=SubscriptionOut)
def add_subscription(body: SubscriptionIn, request: Request) -> SubscriptionOut:
    from mloop.notify.rules import check_target, normalize_events

    try:
        target = check_target(body.channel, body.target)
        events = normalize_events(body.events, step=body.step)
    except ValueError as exc:
        raise BadArgumentError(str(exc)) from None
    if body.secret and body.channel != "webhook":
        raise BadArgumentError("a secret signs webhook bodies; slack and email subscriptions take none")
    sub = _backend(request).store.notify.add_subscription(
        body.name, channel=body.channel, target=target, events=events, workflow_name=body.workflow,
        step_name=body.step, secret=body.secret, enabled=body.enabled, replace=body.replace)
    return SubscriptionOut.of(sub)


@router.delete("/subscriptions/{name}")
def remove_subscription(name: str, request: Request) -> dict[str, Any]:
    if not _backend(request).store.notify.remove_subscription(name):
        raise NotFoundError(f"no subscription named {name!r}")
    return {"removed": name}


@router.get("/notifications", response_model=list[NotificationOut])
def list_notifications(request: Request, limit: int = Query(50, ge=1, le=1000),
                       status: Optional[str] = Query(None, description="pending, sent or failed"),
                       run_id: Optional[str] = Query(None, description="only this run's")) -> list[NotificationOut]:
    notes = _backend(request).store.notify.list_notifications(limit=limit, status=status, run_id=run_id)
    return [NotificationOut.of(n) for n in notes]
