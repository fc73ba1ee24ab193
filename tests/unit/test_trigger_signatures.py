"""Webhook signatures and push payloads of GitHub, Gitea and GitLab (mloop.triggers.signatures,
mloop.triggers.events), on payloads in each provider's documented push shape."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest

from mloop.errors import TriggerAuthError, TriggerError
from mloop.triggers import events, signatures
from mloop.triggers.service import check_repo_url, check_trigger_name, check_workflow_path

SECRET = "s3cret-for-tests"
SHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
BEFORE = "9049f1265b7d61be4a8904a9a27120d2064dab3b"


def github_push(ref: str = "refs/heads/main", after: str = SHA, modified: tuple[str, ...] = ("src/train.py",),
                added: tuple[str, ...] = (), deleted: bool = False) -> dict[str, Any]:
    """A GitHub ``push`` event (docs.github.com, webhook events and payloads: push)."""
    commit = {"id": after, "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433", "distinct": True,
              "message": "Update train.py", "timestamp": "2024-05-01T12:00:00Z",
              "url": f"https://github.com/octo/flows/commit/{after}",
              "author": {"name": "Octo Cat", "email": "octo@example.com", "username": "octocat"},
              "committer": {"name": "Octo Cat", "email": "octo@example.com", "username": "octocat"},
              "added": list(added), "removed": [], "modified": list(modified)}
    return {"ref": ref, "before": BEFORE, "after": after, "created": False, "deleted": deleted, "forced": False,
            "base_ref": None, "compare": f"https://github.com/octo/flows/compare/{BEFORE[:12]}...{after[:12]}",
            "commits": [] if deleted else [commit], "head_commit": None if deleted else commit,
            "repository": {"id": 1, "name": "flows", "full_name": "octo/flows",
                           "clone_url": "https://github.com/octo/flows.git", "default_branch": "main"},
            "pusher": {"name": "octocat", "email": "octo@example.com"},
            "sender": {"login": "octocat", "id": 1, "type": "User"}}


def gitea_push(ref: str = "refs/heads/main", after: str = SHA, modified: tuple[str, ...] = ("src/train.py",)
               ) -> dict[str, Any]:
    """A Gitea ``push`` event (docs.gitea.com, webhooks: push event)."""
    commit = {"id": after, "message": "Update train.py\n", "url": f"http://gitea.local/octo/flows/commit/{after}",
              "author": {"name": "octo", "email": "octo@example.com", "username": "octo"},
              "committer": {"name": "octo", "email": "octo@example.com", "username": "octo"},
              "verification": None, "timestamp": "2024-05-01T12:00:00Z",
              "added": [], "removed": [], "modified": list(modified)}
    return {"ref": ref, "before": BEFORE, "after": after, "compare_url": "http://gitea.local/octo/flows/compare",
            "commits": [commit], "total_commits": 1, "head_commit": commit,
            "repository": {"id": 1, "name": "flows", "full_name": "octo/flows",
                           "clone_url": "http://gitea.local/octo/flows.git", "default_branch": "main"},
            "pusher": {"id": 1, "login": "octo"}, "sender": {"id": 1, "login": "octo"}}


def gitlab_push(ref: str = "refs/heads/main", after: str = SHA, checkout_sha: str | None = SHA,
                modified: tuple[str, ...] = ("src/train.py",), total: int | None = None) -> dict[str, Any]:
    """A GitLab ``Push Hook`` (docs.gitlab.com, webhook events: push events)."""
    commit = {"id": after, "message": "Update train.py", "title": "Update train.py",
              "timestamp": "2024-05-01T12:00:00+00:00", "url": f"http://gitlab.local/octo/flows/-/commit/{after}",
              "author": {"name": "Octo", "email": "octo@example.com"},
              "added": [], "modified": list(modified), "removed": []}
    commits = [commit] if checkout_sha else []
    return {"object_kind": "push", "event_name": "push", "before": BEFORE, "after": after, "ref": ref,
            "ref_protected": True, "checkout_sha": checkout_sha, "user_id": 4, "user_name": "Octo",
            "user_username": "octo", "project_id": 15,
            "project": {"id": 15, "name": "flows", "path_with_namespace": "octo/flows",
                        "git_http_url": "http://gitlab.local/octo/flows.git", "default_branch": "main"},
            "commits": commits, "total_commits_count": len(commits) if total is None else total,
            "repository": {"name": "flows", "url": "git@gitlab.local:octo/flows.git"}}


def sig(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headers_for(provider: str, body: bytes, secret: str = SECRET) -> dict[str, str]:
    if provider == "github":
        return {"X-GitHub-Event": "push", "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
                "X-Hub-Signature-256": "sha256=" + sig(body, secret), "Content-Type": "application/json"}
    if provider == "gitea":  # Gitea sends GitHub's headers too; its own signature is the one checked
        return {"X-Gitea-Event": "push", "X-Gitea-Delivery": "f6266f16-1bf3-46a5-9ea4-602e06ead473",
                "X-Gitea-Signature": sig(body, secret), "X-GitHub-Event": "push",
                "X-GitHub-Delivery": "f6266f16-1bf3-46a5-9ea4-602e06ead473", "Content-Type": "application/json"}
    return {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": "13792a34-cac6-4fda-95a8-c58e00a3954e",
            "X-Gitlab-Token": secret, "Content-Type": "application/json"}


PAYLOADS: dict[str, Callable[..., dict[str, Any]]] = {"github": github_push, "gitea": gitea_push, "gitlab": gitlab_push}
SIGNATURE_HEADER = {"github": "X-Hub-Signature-256", "gitea": "X-Gitea-Signature", "gitlab": "X-Gitlab-Token"}


def _check(headers: dict[str, str], body: bytes, secret: str = SECRET) -> str:
    lowered = signatures.lower_headers(headers)
    provider = signatures.detect_provider(lowered)
    signatures.verify(provider, lowered, body, secret)
    return provider


@pytest.mark.parametrize("provider", ["github", "gitea", "gitlab"])
def test_good_signature_is_accepted_and_the_push_read(provider: str) -> None:
    body = json.dumps(PAYLOADS[provider]()).encode()
    headers = headers_for(provider, body)
    assert _check(headers, body) == provider
    lowered = signatures.lower_headers(headers)
    assert signatures.delivery_id_of(provider, lowered) == headers[{"github": "X-GitHub-Delivery",
                                                                     "gitea": "X-Gitea-Delivery",
                                                                     "gitlab": "X-Gitlab-Event-UUID"}[provider]]
    assert events.is_push_event(provider, signatures.event_of(provider, lowered))
    push = events.parse_push(provider, events.parse_json(body))
    assert (push.ref, push.branch, push.commit, push.paths) == ("refs/heads/main", "main", SHA, ("src/train.py",))
    assert events.skip_reason(push, ["main"], ["src/*"]) is None


@pytest.mark.parametrize("provider", ["github", "gitea", "gitlab"])
def test_header_names_are_case_insensitive(provider: str) -> None:
    body = json.dumps(PAYLOADS[provider]()).encode()
    for transform in (str.lower, str.upper):
        assert _check({transform(k): v for k, v in headers_for(provider, body).items()}, body) == provider


@pytest.mark.parametrize("provider", ["github", "gitea", "gitlab"])
def test_missing_wrong_truncated_and_other_secret_signatures_are_refused(provider: str) -> None:
    body = json.dumps(PAYLOADS[provider]()).encode()
    good = headers_for(provider, body)
    name = SIGNATURE_HEADER[provider]
    missing = {k: v for k, v in good.items() if k != name}
    if provider == "gitlab":
        missing["X-Gitlab-Event"] = "Push Hook"
    bad_variants = {
        "missing": missing,
        "wrong": {**good, name: good[name][:-4] + ("0000" if not good[name].endswith("0000") else "1111")},
        "truncated": {**good, name: good[name][: len(good[name]) // 2]},
        "empty": {**good, name: ""},
        "other secret": headers_for(provider, body, secret="another-secret-entirely"),
    }
    for what, headers in bad_variants.items():
        with pytest.raises(TriggerAuthError):
            _check(headers, body)
        assert TriggerAuthError.code == "trigger_unauthorized", what
    if provider != "gitlab":  # GitLab sends the secret itself, it signs nothing
        # the body is what is signed: another body under the same signature is refused
        with pytest.raises(TriggerAuthError):
            _check(good, body + b" ")


def test_github_signature_needs_its_sha256_prefix_and_gitea_its_own_header() -> None:
    body = json.dumps(github_push()).encode()
    with pytest.raises(TriggerAuthError):
        _check({"X-GitHub-Event": "push", "X-Hub-Signature-256": sig(body)}, body)
    # a Gitea event signed only with GitHub's header is refused: Gitea's own header is checked
    with pytest.raises(TriggerAuthError):
        _check({"X-Gitea-Event": "push", "X-Hub-Signature-256": "sha256=" + sig(body)}, body)
    # no provider headers at all
    with pytest.raises(TriggerAuthError):
        _check({"Content-Type": "application/json"}, body)
    # an empty secret refuses everything, even an "empty" signature
    with pytest.raises(TriggerAuthError):
        _check({"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": ""}, body, secret="")


@pytest.mark.parametrize("provider", ["github", "gitea", "gitlab"])
def test_branch_filters(provider: str) -> None:
    push = events.parse_push(provider, PAYLOADS[provider](ref="refs/heads/feature/x"))
    assert push.branch == "feature/x"
    assert events.skip_reason(push, [], []) is None
    assert events.skip_reason(push, ["feature/*"], []) is None
    assert events.skip_reason(push, ["main", "release-*"], []) == "branch 'feature/x' matches none of main, release-*"
    tag = events.parse_push(provider, PAYLOADS[provider](ref="refs/tags/v1.0"))
    assert tag.branch is None and "not a branch" in (events.skip_reason(tag, [], []) or "")


@pytest.mark.parametrize("provider", ["github", "gitea", "gitlab"])
def test_path_filters(provider: str) -> None:
    push = events.parse_push(provider, PAYLOADS[provider](modified=("docs/readme.md", "src/models/net.py")))
    assert set(push.paths) == {"docs/readme.md", "src/models/net.py"}
    assert events.skip_reason(push, [], ["src/**"]) is None
    assert events.skip_reason(push, [], ["*.py"]) is None
    assert events.skip_reason(push, [], ["flows/*", "*.yaml"]) == "no changed path matches flows/*, *.yaml"


def test_paths_from_added_modified_and_removed_of_every_commit() -> None:
    payload = github_push(modified=("a.py",), added=("new/b.py",))
    payload["commits"].append({**payload["commits"][0], "id": BEFORE, "added": [], "modified": ["a.py"],
                               "removed": ["old/c.txt"]})
    push = events.parse_push("github", payload)
    assert push.paths == ("new/b.py", "a.py", "old/c.txt")
    assert events.skip_reason(push, [], ["old/*"]) is None


def test_gitlab_cut_commit_list_does_not_filter_on_paths() -> None:
    push = events.parse_push("gitlab", gitlab_push(modified=("docs/x.md",), total=25))
    assert not push.paths_complete
    assert events.skip_reason(push, [], ["src/*"]) is None


def test_branch_deletion_is_ignored() -> None:
    zero = events.ZERO_SHA
    for push in (events.parse_push("github", github_push(after=zero, deleted=True)),
                 events.parse_push("gitea", gitea_push(after=zero)),
                 events.parse_push("gitlab", gitlab_push(after=zero, checkout_sha=None))):
        assert push.deleted and push.commit is None
        assert events.skip_reason(push, [], []) == "refs/heads/main was deleted"


def test_gitlab_uses_checkout_sha_then_after() -> None:
    other = "1" * 40
    assert events.parse_push("gitlab", gitlab_push(after=other, checkout_sha=SHA)).commit == SHA
    assert events.parse_push("gitlab", {**gitlab_push(after=other), "checkout_sha": None}).commit == other


@pytest.mark.parametrize("bad", ["not-a-sha", "G" * 40, SHA[:39], SHA + "0", "; rm -rf /", 12345, ["x"]])
def test_a_bad_commit_sha_is_refused(bad: Any) -> None:
    with pytest.raises(TriggerError):
        events.parse_push("github", {**github_push(), "after": bad})


@pytest.mark.parametrize("body", [b"", b"{", b"not json", b"[1, 2]", b"\xff\xfe", b'"text"'])
def test_bad_json_is_refused(body: bytes) -> None:
    with pytest.raises(TriggerError):
        events.parse_json(body)


def test_event_types() -> None:
    assert events.is_push_event("github", "push") and not events.is_push_event("github", "pull_request")
    assert events.is_push_event("gitlab", "Push Hook") and not events.is_push_event("gitlab", "Merge Request Hook")
    with pytest.raises(TriggerError):
        events.parse_push("github", {"zen": "Keep it logically awesome.", "hook_id": 1})  # a ping has no ref


@pytest.mark.parametrize("name", ["", "a" * 65, "../x", "a b", "a/b", "x;y", "é"])
def test_bad_trigger_names(name: str) -> None:
    with pytest.raises(TriggerError):
        check_trigger_name(name)
    assert check_trigger_name("train-on_push-1") == "train-on_push-1"


@pytest.mark.parametrize("path", ["/etc/passwd", "../flow.py", "a/../../flow.py", "", "~/flow.py", "a\\b.py", "x\x00.py"])
def test_bad_workflow_paths(path: str) -> None:
    with pytest.raises(TriggerError):
        check_workflow_path(path)
    assert check_workflow_path("flows/./train.py") == "flows/train.py"


@pytest.mark.parametrize("url", ["-uhack", "ext::sh -c touch% /tmp/x", "relative/path", "https://h/x y", ""])
def test_bad_repo_urls(url: str) -> None:
    with pytest.raises(TriggerError):
        check_repo_url(url)
    for good in ("https://github.com/octo/flows.git", "git@github.com:octo/flows.git", "/srv/git/flows.git",
                 "ssh://git@host/flows.git", "file:///srv/git/flows.git"):
        assert check_repo_url(good) == good
