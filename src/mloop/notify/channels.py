"""Sending one notification: a generic webhook, a Slack-compatible incoming webhook, e-mail.

Each sender returns nothing on success and raises :class:`DeliveryError` with a short reason
otherwise (a non-2xx answer, a network error, an SMTP refusal). Standard library only
(``urllib``, ``smtplib``), with a timeout on every connection, so an embedded run in CI needs
no extra package.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
import urllib.error
import urllib.request
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from mloop.notify.rules import short_text

if TYPE_CHECKING:
    from mloop.config import Settings

__all__ = ["DeliveryError", "TIMEOUT_SECONDS", "send", "sign"]

#: Seconds a connection (or an answer) may take.
TIMEOUT_SECONDS = 5.0


class DeliveryError(Exception):
    """A notification could not be sent; ``str()`` is the short reason kept on its row."""


def sign(secret: str, body: bytes) -> str:
    """The ``X-Mloop-Signature`` header value: ``sha256=<hex HMAC-SHA256 of the body>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _post(url: str, body: bytes, headers: dict[str, str]) -> None:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "mloop-notify",
                                              **headers})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - http(s) checked
            status = response.status
    except urllib.error.HTTPError as exc:
        detail = ""
        try:
            detail = exc.read(200).decode("utf-8", "replace").strip().splitlines()[0]
        except Exception:  # noqa: BLE001 - the status is the reason; the body only helps
            pass
        raise DeliveryError(f"HTTP {exc.code}" + (f": {detail}" if detail else "")) from None
    except urllib.error.URLError as exc:
        raise DeliveryError(f"cannot reach {url}: {exc.reason}") from None
    except (OSError, ValueError) as exc:  # timeouts, resets, a malformed URL
        raise DeliveryError(f"cannot reach {url}: {exc}") from None
    if not 200 <= status < 300:
        raise DeliveryError(f"HTTP {status}")


def send_webhook(target: str, payload: dict[str, Any], *, secret: str | None, delivery_id: str) -> None:
    """POST the payload as JSON; signed with ``secret`` when there is one."""
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    headers = {"X-Mloop-Event": str(payload.get("event", "")), "X-Mloop-Delivery": delivery_id}
    if secret:
        headers["X-Mloop-Signature"] = sign(secret, body)
    _post(target, body, headers)


def send_slack(target: str, payload: dict[str, Any]) -> None:
    """POST ``{"text": "mnist #12 failed: step train (exit 1)"}`` to an incoming webhook."""
    _post(target, json.dumps({"text": payload.get("text") or short_text(payload)}).encode(), {})


def send_email(target: str, payload: dict[str, Any], settings: Settings) -> None:
    """Mail the notification to the comma-separated addresses in ``target`` through the
    settings' SMTP server (STARTTLS, SSL or plain; a login when ``smtp_user`` is set)."""
    if not settings.smtp_host:
        raise DeliveryError("no SMTP server configured (set smtp_host in mloop.toml or MLOOP_SMTP_HOST)")
    security = settings.smtp_security
    port = settings.smtp_port or {"ssl": 465, "starttls": 587}.get(security, 25)
    sender = settings.smtp_from or settings.smtp_user or f"mloop@{settings.smtp_host}"
    text = payload.get("text") or short_text(payload)
    message = EmailMessage()
    message["Subject"] = f"[mloop] {text}"[:200]
    message["From"] = sender
    message["To"] = ", ".join(a.strip() for a in target.split(",") if a.strip())
    lines = [text, ""]
    for key in ("workflow", "run_number", "run_id", "step", "event", "from_status", "to_status", "at", "message"):
        if payload.get(key) is not None:
            lines.append(f"{key}: {payload[key]}")
    message.set_content("\n".join(lines) + "\n")
    try:
        smtp: smtplib.SMTP
        if security == "ssl":
            smtp = smtplib.SMTP_SSL(settings.smtp_host, port, timeout=TIMEOUT_SECONDS,
                                    context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(settings.smtp_host, port, timeout=TIMEOUT_SECONDS)
        with smtp:
            if security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password or "")
            smtp.send_message(message)
    except smtplib.SMTPException as exc:
        raise DeliveryError(f"SMTP {settings.smtp_host}:{port}: {str(exc)[:200]}") from None
    except (OSError, ssl.SSLError) as exc:
        raise DeliveryError(f"cannot reach SMTP {settings.smtp_host}:{port}: {exc}") from None


def send(channel: str, target: str, payload: dict[str, Any], *, secret: str | None, delivery_id: str,
         settings: Settings) -> None:
    """Send one notification by its channel.

    Raises:
        DeliveryError: it was not sent (the reason).
    """
    if channel == "webhook":
        send_webhook(target, payload, secret=secret, delivery_id=delivery_id)
    elif channel == "slack":
        send_slack(target, payload)
    elif channel == "email":
        send_email(target, payload, settings)
    else:
        raise DeliveryError(f"unknown channel {channel!r}")
