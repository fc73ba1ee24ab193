"""Who sent a webhook event: each provider's signature, checked in constant time.

* GitHub: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``
* Gitea: ``X-Gitea-Signature: <hex HMAC-SHA256 of the raw body>``
* GitLab: ``X-Gitlab-Token: <the secret itself>``

Gitea also sends GitHub's headers; it is told apart by its own ``X-Gitea-*`` headers, and only
its own signature header is trusted.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from mloop.errors import TriggerAuthError, TriggerError

__all__ = ["PROVIDERS", "delivery_id_of", "detect_provider", "event_of", "lower_headers", "sign", "verify"]

PROVIDERS = ("github", "gitea", "gitlab")

_DELIVERY_HEADER = {"github": "x-github-delivery", "gitea": "x-gitea-delivery", "gitlab": "x-gitlab-event-uuid"}
_EVENT_HEADER = {"github": "x-github-event", "gitea": "x-gitea-event", "gitlab": "x-gitlab-event"}


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers with lower-case names (HTTP header names are case-insensitive)."""
    return {str(k).lower(): str(v) for k, v in headers.items()}


def detect_provider(headers: Mapping[str, str]) -> str:
    """``github``, ``gitea`` or ``gitlab``, from the event's headers (lower-case names).

    Raises:
        TriggerAuthError: no provider's headers: not a webhook event this server can check.
    """
    if "x-gitea-event" in headers or "x-gitea-delivery" in headers or "x-gitea-signature" in headers:
        return "gitea"
    if "x-gitlab-event" in headers or "x-gitlab-token" in headers:
        return "gitlab"
    if "x-github-event" in headers or "x-hub-signature-256" in headers:
        return "github"
    raise TriggerAuthError("not a signed GitHub, Gitea or GitLab webhook event",
                           hint="send X-Hub-Signature-256 (GitHub), X-Gitea-Signature (Gitea) or X-Gitlab-Token (GitLab)")


def sign(body: bytes, secret: str) -> str:
    """The hex HMAC-SHA256 of ``body`` with ``secret`` (what GitHub and Gitea send)."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(provider: str, headers: Mapping[str, str], body: bytes, secret: str) -> None:
    """Check the event's signature against the trigger's secret.

    Args:
        headers: the request's headers, names lower-case (:func:`lower_headers`).

    Raises:
        TriggerAuthError: no signature, or one that does not match.
    """
    if not secret:
        raise TriggerAuthError("this trigger has no secret: every event is refused")
    if provider == "github":
        given = headers.get("x-hub-signature-256", "")
        expected = "sha256=" + sign(body, secret)
        what = "X-Hub-Signature-256"
    elif provider == "gitea":
        given = headers.get("x-gitea-signature", "")
        expected = sign(body, secret)
        what = "X-Gitea-Signature"
    elif provider == "gitlab":
        given = headers.get("x-gitlab-token", "")
        expected = secret
        what = "X-Gitlab-Token"
    else:
        raise TriggerError(f"unknown provider {provider!r}", hint=f"one of {', '.join(PROVIDERS)}")
    if not given:
        raise TriggerAuthError(f"the event has no {what} header: refused", provider=provider,
                               hint="set the trigger's secret in the webhook's settings")
    if not hmac.compare_digest(given.strip().encode("utf-8"), expected.encode("utf-8")):
        raise TriggerAuthError(f"the event's {what} does not match the trigger's secret: refused", provider=provider,
                               hint="set the secret shown by `mloop trigger create` in the webhook's settings")


def event_of(provider: str, headers: Mapping[str, str]) -> str:
    """The event's type as its provider names it (``push``, ``ping``, ``Push Hook``), or ''."""
    return headers.get(_EVENT_HEADER[provider], "").strip()


def delivery_id_of(provider: str, headers: Mapping[str, str]) -> str:
    """The provider's delivery id (the same for a redelivery), or '' when it sent none."""
    return headers.get(_DELIVERY_HEADER[provider], "").strip()
