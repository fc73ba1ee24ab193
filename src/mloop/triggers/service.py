"""Git-push triggers: define them, and handle the push events their webhooks send.

:func:`handle_push` does, in order: check the trigger name, the payload size and the
signature (nothing is recorded for an event that fails these); record the delivery (a
redelivery, same delivery id, stops here: ``duplicate``); filter by event, branch and changed
paths (``ignored``, recorded); fetch the pushed commit of the trigger's repository into
``<home>/triggers/<trigger>/<sha>`` (kept: the released spec points at its code folders);
load the workflow file from it; release it and queue a run with ``origin.kind = "git"``.

Nothing from the payload reaches a shell: git runs with argument lists, the commit must be 40
hex digits, the branch must be a plain ref name, and the workflow path (the trigger's, never
the payload's) must stay inside the checkout once resolved.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets as _secrets
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from mloop.context import Context
from mloop.errors import (
    GitFetchError, MloopError, NotFoundError, PayloadTooLargeError, TriggerError, TriggerWorkflowError,
)
from mloop.store.triggers import DeliveryRecord, DuplicateDelivery, TriggerRecord
from mloop.triggers import events, signatures

__all__ = [
    "MAX_PAYLOAD_BYTES", "PushResult", "check_repo_url", "check_trigger_name", "check_workflow_path",
    "checkout_commit", "create_trigger", "delete_trigger", "handle_push", "list_deliveries", "list_triggers",
    "mask_url", "webhook_path",
]

#: The largest push payload accepted (GitHub caps its payloads at 25 MB; pushes are far smaller).
MAX_PAYLOAD_BYTES = 5 * 1024 * 1024
#: Seconds one git fetch may take; other git calls get :data:`GIT_TIMEOUT`.
FETCH_TIMEOUT = 300.0
GIT_TIMEOUT = 60.0

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DELIVERY_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_BRANCH_RE = re.compile(r"^[A-Za-z0-9._/-]{1,255}$")
_CONTROL_RE = re.compile(r"[\x00-\x20\x7f]")
_URL_SCHEMES = ("https://", "http://", "ssh://", "git://", "file://")
_SCP_RE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^:]")


# -- checks --------------------------------------------------------------------------------------

def check_trigger_name(name: Any) -> str:
    """``name`` if it is a trigger name: 1-64 letters, digits, ``-`` or ``_``.

    Raises:
        TriggerError: it is not.
    """
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise TriggerError(f"invalid trigger name {str(name)[:80]!r}",
                           hint="1-64 letters, digits, '-' or '_', e.g. train-on-push")
    return name


def check_repo_url(url: Any) -> str:
    """``url`` if git may fetch from it: an ``https://``, ``http://``, ``ssh://``, ``git://`` or
    ``file://`` URL, ``user@host:path``, or an absolute local path.

    Raises:
        TriggerError: anything else (an option-like ``-x``, a ``transport::`` helper, spaces).
    """
    if not isinstance(url, str) or not url or len(url) > 2048 or _CONTROL_RE.search(url) or url.startswith("-"):
        raise TriggerError(f"invalid repository URL {str(url)[:120]!r}",
                           hint="an https://, ssh:// or git:// URL, user@host:path, or an absolute local path")
    if url.startswith(_URL_SCHEMES) or _SCP_RE.match(url) or (os.path.isabs(url) and "::" not in url):
        return url
    raise TriggerError(f"unsupported repository URL {mask_url(url)!r}",
                       hint="an https://, ssh:// or git:// URL, user@host:path, or an absolute local path")


def check_workflow_path(path: Any) -> str:
    """``path`` if it is a relative path inside a repository (``flows/train.py``).

    Raises:
        TriggerError: empty, absolute, or with ``..`` (it could leave the checkout).
    """
    if not isinstance(path, str) or not path or len(path) > 1024 or "\\" in path or _CONTROL_RE.search(path.replace(" ", "")):
        raise TriggerError(f"invalid workflow path {str(path)[:120]!r}",
                           hint="the workflow file's path inside the repository, e.g. flows/train.py")
    pure = PurePosixPath(path)
    if pure.is_absolute() or path.startswith("~") or ".." in pure.parts or not pure.name:
        raise TriggerError(f"workflow path {path!r} must be relative and stay inside the repository",
                           hint="the workflow file's path inside the repository, e.g. flows/train.py")
    return str(pure)


def mask_url(url: str) -> str:
    """``url`` with any password or token in it masked."""
    return re.sub(r"://[^/@\s]+@", "://***@", url)


def webhook_path(name: str) -> str:
    """The URL path a webhook of trigger ``name`` posts to."""
    return f"/api/v1/triggers/git/{name}"


# -- definitions -----------------------------------------------------------------------------------

def create_trigger(ctx: Context, name: str, *, repo_url: str, workflow_path: str,
                   branches: list[str] | None = None, paths: list[str] | None = None,
                   params: dict[str, Any] | None = None, secret: str | None = None) -> tuple[TriggerRecord, str]:
    """Define a trigger; returns it and its secret (generated when not given: show it once).

    Raises:
        TriggerError: a bad name, URL, workflow path or pattern, or the name is taken.
    """
    check_trigger_name(name)
    check_repo_url(repo_url)
    workflow_path = check_workflow_path(workflow_path)
    for what, patterns in (("branch", branches), ("path", paths)):
        for pattern in patterns or []:
            if not isinstance(pattern, str) or not pattern or len(pattern) > 512:
                raise TriggerError(f"invalid {what} pattern {str(pattern)[:80]!r}", hint="an fnmatch pattern, e.g. main or src/*")
    if secret is not None and len(secret) < 8:
        raise TriggerError("the secret is too short", hint="8 characters or more, or leave it out to have one made")
    secret = secret or _secrets.token_urlsafe(32)
    record = ctx.store.triggers.create(name, repo_url=repo_url, workflow_path=workflow_path, secret=secret,
                                       branches=list(branches or []), paths=list(paths or []),
                                       params=dict(params or {}))
    return record, secret


def list_triggers(ctx: Context) -> list[TriggerRecord]:
    return ctx.store.triggers.list_all()


def delete_trigger(ctx: Context, name: str) -> None:
    """Remove a trigger and its delivery history (its checkouts stay: released specs use them).

    Raises:
        NotFoundError: no such trigger.
    """
    check_trigger_name(name)
    if not ctx.store.triggers.delete(name):
        raise NotFoundError(f"no trigger named {name!r}", trigger=name, hint="mloop trigger list shows the triggers")


def list_deliveries(ctx: Context, name: str, limit: int = 50) -> list[DeliveryRecord]:
    """A trigger's latest deliveries, newest first.

    Raises:
        NotFoundError: no such trigger.
    """
    check_trigger_name(name)
    ctx.store.triggers.get(name)
    return ctx.store.triggers.list_deliveries(name, limit=limit)


# -- push events -----------------------------------------------------------------------------------

@dataclass
class PushResult:
    """What came of one push event (answered as JSON with status 200)."""

    status: str  # started | ignored | duplicate
    trigger: str
    delivery: str
    provider: str
    message: str | None = None
    run_id: str | None = None
    commit: str | None = None
    ref: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def handle_push(ctx: Context, name: str, headers: Mapping[str, str], body: bytes) -> PushResult:
    """Handle one webhook event for trigger ``name``: verify, dedupe, filter, fetch, release, queue.

    Raises:
        TriggerError: a bad trigger name or payload (HTTP 400).
        PayloadTooLargeError: over :data:`MAX_PAYLOAD_BYTES` (413).
        NotFoundError: no such trigger (404).
        TriggerAuthError: no or a wrong signature (401); nothing is recorded.
        GitFetchError: the commit could not be fetched (502); recorded as failed.
        TriggerWorkflowError: the commit's workflow file could not be loaded or run with the
            trigger's parameters (422); recorded as failed.
    """
    check_trigger_name(name)
    if len(body) > MAX_PAYLOAD_BYTES:
        raise PayloadTooLargeError(f"the payload is over {MAX_PAYLOAD_BYTES} bytes", limit=MAX_PAYLOAD_BYTES)
    lowered = signatures.lower_headers(headers)
    trigger = ctx.store.triggers.get(name)
    provider = signatures.detect_provider(lowered)
    signatures.verify(provider, lowered, body, trigger.secret)

    payload = events.parse_json(body)
    delivery = signatures.delivery_id_of(provider, lowered)
    if not delivery:  # a sender without delivery ids: the same body is the same event
        delivery = "sha256:" + hashlib.sha256(body).hexdigest()[:40]
    elif not _DELIVERY_RE.fullmatch(delivery):
        raise TriggerError(f"invalid delivery id {delivery[:80]!r}")
    event = signatures.event_of(provider, lowered)
    result = PushResult(status="ignored", trigger=name, delivery=delivery, provider=provider)

    if not events.is_push_event(provider, event):
        return _record_skip(ctx, result, f"{event or 'unnamed'} event, not a push", record=event not in ("ping",))
    push = events.parse_push(provider, payload)
    result.ref, result.commit = push.ref, push.commit
    try:
        row = ctx.store.triggers.add_delivery(name, delivery, provider=provider, ref=push.ref, commit=push.commit)
    except DuplicateDelivery:
        result.status, result.message = "duplicate", "this delivery was received before: nothing runs again"
        return result

    reason = events.skip_reason(push, trigger.branches, trigger.paths) or (None if trigger.enabled else "the trigger is disabled")
    if reason:
        ctx.store.triggers.finish_delivery(row.id, status="ignored", message=reason)
        result.message = reason
        return result
    if push.commit is None or push.branch is None:  # skip_reason said so already; for the type checker
        raise TriggerError("not a branch push")
    try:
        checkout = checkout_commit(ctx, trigger, push.commit, push.branch)
        run_id = _queue_run(ctx, trigger, checkout, push, provider, delivery)
    except MloopError as exc:
        ctx.store.triggers.finish_delivery(row.id, status="failed", message=exc.message[-2000:])
        raise
    ctx.store.triggers.finish_delivery(row.id, status="started", run_id=run_id,
                                       message=f"run {run_id} queued for {push.commit[:12]}")
    result.status, result.run_id = "started", run_id
    result.message = f"run {run_id} queued"
    return result


def _record_skip(ctx: Context, result: PushResult, reason: str, *, record: bool) -> PushResult:
    result.message = reason
    if record:
        try:
            ctx.store.triggers.add_delivery(result.trigger, result.delivery, provider=result.provider,
                                            status="ignored", message=reason)
        except DuplicateDelivery:
            result.status = "duplicate"
    return result


def _queue_run(ctx: Context, trigger: TriggerRecord, checkout: Path, push: events.PushEvent, provider: str,
               delivery: str) -> str:
    from mloop.runs.service import create_run
    from mloop.workflow.loading import load_workflow_file

    workflow_file = resolve_in_checkout(checkout, trigger.workflow_path)
    try:
        spec = load_workflow_file(workflow_file, forget_local_modules=True)
    except MloopError as exc:
        raise TriggerWorkflowError(f"cannot load {trigger.workflow_path} at {push.commit}: {exc.message}",
                                   hint=exc.hint, trigger=trigger.name, commit=push.commit) from exc
    origin = {"kind": "git", "trigger": trigger.name, "provider": provider, "repo": mask_url(trigger.repo_url),
              "ref": push.ref, "commit": push.commit, "delivery": delivery}
    try:
        run = create_run(ctx, spec, dict(trigger.params), origin=origin, queued=True)
    except MloopError as exc:
        raise TriggerWorkflowError(f"cannot queue a run of {trigger.workflow_path} at {push.commit}: {exc.message}",
                                   hint=exc.hint, trigger=trigger.name, commit=push.commit) from exc
    return run.id


def resolve_in_checkout(checkout: Path, workflow_path: str) -> Path:
    """The workflow file inside ``checkout``, resolved (symlinks too) and checked to stay in it.

    Raises:
        TriggerWorkflowError: the path leaves the checkout, or no such file at that commit.
    """
    relative = check_workflow_path(workflow_path)
    root = checkout.resolve()
    full = (root / relative).resolve()
    if not full.is_relative_to(root):
        raise TriggerWorkflowError(f"workflow path {workflow_path!r} leaves the checkout", workflow_path=workflow_path)
    if not full.is_file():
        raise TriggerWorkflowError(f"no file {workflow_path!r} in the pushed commit", workflow_path=workflow_path,
                                   hint="check the trigger's --workflow path (relative to the repository root)")
    return full


# -- git -------------------------------------------------------------------------------------------

def checkout_commit(ctx: Context, trigger: TriggerRecord, commit: str, branch: str) -> Path:
    """The files of ``commit`` of the trigger's repository, in ``<home>/triggers/<name>/<commit>``
    (fetched once; a git repository at that commit, owner-only).

    Raises:
        GitFetchError: git could not fetch or check it out (git's words, shortened).
        TriggerError: a bad commit sha or branch name.
    """
    commit = events.check_sha(commit)
    check_trigger_name(trigger.name)
    if not _BRANCH_RE.fullmatch(branch) or branch.startswith(("-", "/")) or ".." in branch:
        raise TriggerError(f"unsupported branch name {branch[:80]!r}")
    base = ctx.settings.home_path / "triggers" / trigger.name
    _make_private_dirs(base)
    final = base / commit
    if final.is_dir():
        return final
    tmp = base / f".tmp-{commit}-{uuid.uuid4().hex[:8]}"
    os.mkdir(tmp, 0o700)
    try:
        _git(["init", "-q", str(tmp)], timeout=GIT_TIMEOUT)
        fetch = ["-C", str(tmp), "-c", "uploadpack.allowAnySHA1InWant=true", "fetch", "-q", "--no-tags"]
        url = trigger.repo_url
        try:
            _git([*fetch, "--depth=1", "--", url, commit], timeout=FETCH_TIMEOUT)
        except GitFetchError:
            # Servers that refuse a bare sha: fetch the branch and look for the commit in it.
            _git([*fetch, "--depth=50", "--", url, f"refs/heads/{branch}"], timeout=FETCH_TIMEOUT)
            try:
                _git(["-C", str(tmp), "cat-file", "-e", f"{commit}^{{commit}}"], timeout=GIT_TIMEOUT)
            except GitFetchError:
                raise GitFetchError(f"commit {commit} is not on {branch} of {mask_url(url)} (or is older than "
                                    "its last 50 commits)", commit=commit) from None
        _git(["-C", str(tmp), "-c", "advice.detachedHead=false", "checkout", "-q", "--detach", commit],
             timeout=GIT_TIMEOUT)
        head = _git(["-C", str(tmp), "rev-parse", "HEAD"], timeout=GIT_TIMEOUT).strip()
        if head != commit:
            raise GitFetchError(f"checked out {head[:40]!r}, not {commit}")
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another delivery of the same commit was quicker
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _make_private_dirs(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for folder in (path.parent, path):
        try:
            if folder.stat().st_mode & 0o077:
                os.chmod(folder, 0o700)
        except OSError:
            pass


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "", "LC_ALL": "C"})
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    return env


def _git(args: list[str], *, timeout: float) -> str:
    """Run ``git ARGS`` (no shell); its stdout.

    Raises:
        GitFetchError: git is missing, failed (its stderr, shortened) or ran over ``timeout``.
    """
    command = ["git", "-c", "protocol.ext.allow=never", *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=_git_env(),
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise GitFetchError("git is not installed on the server", hint="install git") from exc
    except subprocess.TimeoutExpired as exc:
        raise GitFetchError(f"git timed out after {timeout:.0f} s", hint="is the repository reachable from the server?") \
            from exc
    if done.returncode != 0:
        words = mask_url(" ".join(done.stderr.split()))[-500:] or f"exit code {done.returncode}"
        raise GitFetchError(f"git failed: {words}")
    return done.stdout
