"""What a push event says: the ref, the branch, the pushed commit, the changed paths.

GitHub's and Gitea's push events carry ``ref``, ``after`` (the new tip; 40 zeros when the
branch is deleted) and ``commits[]`` with ``added``/``modified``/``removed``; GitLab's Push
Hook has the same plus ``checkout_sha`` (null on a deletion) and ``total_commits_count`` (its
``commits`` list stops at 20, so paths beyond them are unknown).
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mloop.errors import TriggerError

__all__ = ["PushEvent", "ZERO_SHA", "is_push_event", "match_any", "parse_json", "parse_push", "skip_reason"]

ZERO_SHA = "0" * 40
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
_MAX_PATHS = 10_000


@dataclass(frozen=True)
class PushEvent:
    """One push, as mloop needs it.

    Attributes:
        ref: the full ref (``refs/heads/main``).
        branch: the branch name (``main``), or None for a tag or another kind of ref.
        commit: the pushed commit (40 lower-case hex), or None when the ref was deleted.
        paths: the changed paths of the pushed commits (added, modified, removed).
        paths_complete: False when the provider cut the commit list short (GitLab's 20).
    """

    ref: str
    branch: str | None
    commit: str | None
    paths: tuple[str, ...] = field(default_factory=tuple)
    paths_complete: bool = True

    @property
    def deleted(self) -> bool:
        return self.commit is None


def parse_json(body: bytes) -> dict[str, Any]:
    """The payload as a JSON object.

    Raises:
        TriggerError: not UTF-8 JSON, or not an object.
    """
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise TriggerError("the payload is not JSON", hint="set the webhook's content type to application/json") \
            from exc
    if not isinstance(data, dict):
        raise TriggerError("the payload is not a JSON object")
    return data


def is_push_event(provider: str, event: str) -> bool:
    """Whether the event header names a push (GitHub/Gitea ``push``, GitLab ``Push Hook``)."""
    if provider == "gitlab":
        return event in ("Push Hook", "Tag Push Hook", "")
    return event in ("push", "")


def check_sha(value: Any, what: str = "commit") -> str:
    """``value`` if it is a commit sha: 40 hex digits (returned lower-case).

    Raises:
        TriggerError: it is not.
    """
    if not isinstance(value, str) or not _SHA_RE.fullmatch(value.lower()):
        raise TriggerError(f"the payload's {what} is not a 40-hex-digit commit sha: {str(value)[:80]!r}")
    return value.lower()


def parse_push(provider: str, payload: dict[str, Any]) -> PushEvent:
    """Read a push event of ``provider`` (github, gitea, gitlab).

    Raises:
        TriggerError: a payload without the fields of a push (ref, after), or a bad sha.
    """
    ref = payload.get("ref")
    if not isinstance(ref, str) or not ref or len(ref) > 1024:
        raise TriggerError("the payload has no ref: not a push event?")
    if provider == "gitlab":
        after = payload.get("checkout_sha") or payload.get("after")
    else:
        after = payload.get("after")
    if after is None or after == ZERO_SHA or payload.get("deleted") is True:
        commit = None
    else:
        commit = check_sha(after)
        if commit == ZERO_SHA:
            commit = None
    branch = ref[len("refs/heads/"):] if ref.startswith("refs/heads/") else None
    commits = payload.get("commits") or []
    if not isinstance(commits, list):
        raise TriggerError("the payload's commits is not a list")
    paths: list[str] = []
    seen: set[str] = set()
    for entry in commits:
        if not isinstance(entry, dict):
            continue
        for key in ("added", "modified", "removed"):
            for path in entry.get(key) or []:
                if isinstance(path, str) and path not in seen and len(seen) < _MAX_PATHS:
                    seen.add(path)
                    paths.append(path)
    complete = True
    total = payload.get("total_commits_count")
    if provider == "gitlab" and isinstance(total, int) and total > len(commits):
        complete = False
    return PushEvent(ref=ref, branch=branch or None, commit=commit, paths=tuple(paths), paths_complete=complete)


def match_any(value: str, patterns: Iterable[str]) -> bool:
    """Whether ``value`` matches one of the fnmatch ``patterns`` (case-sensitive; ``*`` spans ``/``)."""
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


def skip_reason(push: PushEvent, branches: list[str], paths: list[str]) -> str | None:
    """Why the push starts nothing (a deletion, a tag, a branch or paths the trigger doesn't
    watch), or None when it should start a run."""
    if push.deleted:
        return f"{push.ref} was deleted"
    if push.branch is None:
        return f"{push.ref} is not a branch"
    if branches and not match_any(push.branch, branches):
        return f"branch {push.branch!r} matches none of {', '.join(branches)}"
    if paths and push.paths_complete and not any(match_any(p, paths) for p in push.paths):
        return f"no changed path matches {', '.join(paths)}"
    return None
