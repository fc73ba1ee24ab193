"""Git-push triggers end to end: a real bare repository (git CLI) holding a tiny workflow, push
events signed like GitHub, Gitea and GitLab send them, handled by ``handle_push`` and through the
FastAPI app; the queued run executes the workflow file of the pushed commit."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import write_job, write_workflow
from mloop.config import Settings
from mloop.context import Context
from mloop.errors import GitFetchError, TriggerAuthError
from mloop.runs.open import open_backend
from mloop.runs.service import execute_run
from mloop.triggers.service import create_trigger, handle_push

pytestmark = pytest.mark.timeout(120)

SECRET = "integration-secret-1"
GIT_ENV = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
IDENTITY = ["-c", "user.name=mloop tests", "-c", "user.email=tests@example.com", "-c", "commit.gpgsign=false"]


def git(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(["git", *IDENTITY, *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


class Repo:
    """A bare repository (what the trigger fetches from) and a clone to commit and push in."""

    def __init__(self, root: Path) -> None:
        self.bare = root / "flows.git"
        self.work = root / "work"
        git("init", "-q", "--bare", "--initial-branch=main", str(self.bare))
        git("init", "-q", "--initial-branch=main", str(self.work))
        write_workflow(self.work, """
            workflow = wf.Workflow(name="pushed", desc="from a push", steps=[job("train", code="code")])
        """)
        write_job(self.work / "code", """
            text = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "message.txt")).read()
            os.makedirs(args.out, exist_ok=True)
            open(os.path.join(args.out, "result.txt"), "w").write(text)
            print("message:", text)
        """)

    def commit(self, message: str, branch: str = "main") -> str:
        """Commit ``code/message.txt`` = ``message`` and push it to ``branch``; the commit's sha."""
        (self.work / "code" / "message.txt").write_text(message)
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "-m", f"message {message}", cwd=self.work)
        git("push", "-q", str(self.bare), f"HEAD:refs/heads/{branch}", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)


def push_payload(sha: str, branch: str = "main", modified: tuple[str, ...] = ("code/message.txt",)) -> bytes:
    """A GitHub-shaped push event (Gitea's is the same shape; GitLab adds checkout_sha)."""
    commit = {"id": sha, "message": "update", "timestamp": "2024-05-01T12:00:00Z",
              "author": {"name": "t", "email": "t@example.com"}, "added": [], "removed": [],
              "modified": list(modified)}
    return json.dumps({"ref": f"refs/heads/{branch}", "before": "0" * 39 + "1", "after": sha, "checkout_sha": sha,
                       "object_kind": "push", "total_commits_count": 1,
                       "commits": [commit], "head_commit": commit,
                       "repository": {"full_name": "octo/flows"}}).encode()


def signed(body: bytes, delivery: str, provider: str = "github", secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if provider == "github":
        return {"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": "sha256=" + digest}
    if provider == "gitea":
        return {"X-Gitea-Event": "push", "X-Gitea-Delivery": delivery, "X-Gitea-Signature": digest}
    return {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": delivery, "X-Gitlab-Token": secret}


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "git")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / ".mloop")


@pytest.fixture
def ctx(settings: Settings) -> Iterator[Context]:
    backend = open_backend(settings)
    yield backend
    backend.close()


def _result_text(checkout: Path) -> str:
    found = sorted(checkout.glob("out/**/result.txt"))
    assert len(found) == 1, found
    return found[0].read_text()


def test_a_push_queues_a_run_of_that_commit(repo: Repo, ctx: Context, settings: Settings) -> None:
    create_trigger(ctx, "train-on-push", repo_url=str(repo.bare), workflow_path="flow.py", branches=["main"],
                   paths=["code/*", "flow.py"], secret=SECRET)
    first = repo.commit("v1")
    body = push_payload(first)

    result = handle_push(ctx, "train-on-push", signed(body, "d-1"), body)

    assert result.status == "started" and result.commit == first and result.run_id, result
    run = ctx.store.get_run(result.run_id)
    assert run.status == "pending" and run.workflow_name == "pushed"
    assert run.origin == {"kind": "git", "trigger": "train-on-push", "provider": "github", "repo": str(repo.bare),
                          "ref": "refs/heads/main", "commit": first, "delivery": "d-1"}
    checkout = settings.home_path / "triggers" / "train-on-push" / first
    release = ctx.store.get_release(run.release_id)
    assert str(checkout) in json.dumps(release.spec)  # the spec's code folder is that commit's checkout
    assert release.extend.get("git_commit_id") == first
    assert (checkout / "code" / "message.txt").read_text() == "v1"
    for folder in (checkout.parent, checkout.parent.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700

    # a redelivery (same delivery id) runs nothing
    again = handle_push(ctx, "train-on-push", signed(body, "d-1"), body)
    assert again.status == "duplicate" and again.run_id is None
    assert len(ctx.store.list_runs()) == 1

    # the next commit gets its own checkout; the first run still uses the first commit's files
    second = repo.commit("v2")
    body2 = push_payload(second)
    later = handle_push(ctx, "train-on-push", signed(body2, "d-2", provider="gitea"), body2)
    assert later.status == "started" and later.run_id
    assert (ctx.store.get_run(later.run_id).origin or {})["commit"] == second

    finished = execute_run(ctx, run.id)
    assert finished.status == "succeeded", finished.message
    assert _result_text(checkout) == "v1"

    deliveries = ctx.store.triggers.list_deliveries("train-on-push")
    assert [(d.delivery_id, d.status, d.run_id) for d in deliveries] == [
        ("d-2", "started", later.run_id), ("d-1", "started", run.id)]

    # a push changing only other paths, a deletion and a wrong signature run nothing
    third = repo.commit("v3")
    body3 = push_payload(third, modified=("docs/readme.md",))
    skipped = handle_push(ctx, "train-on-push", signed(body3, "d-3"), body3)
    assert skipped.status == "ignored" and "no changed path" in (skipped.message or "")
    gone = json.dumps({"ref": "refs/heads/main", "before": third, "after": "0" * 40, "deleted": True,
                       "commits": []}).encode()
    assert handle_push(ctx, "train-on-push", signed(gone, "d-4"), gone).status == "ignored"
    with pytest.raises(TriggerAuthError):
        handle_push(ctx, "train-on-push", signed(body3, "d-5", secret="not-the-secret"), body3)
    assert len(ctx.store.list_runs()) == 2
    assert [d.delivery_id for d in ctx.store.triggers.list_deliveries("train-on-push")][:2] == ["d-4", "d-3"]


def test_the_webhook_over_http(repo: Repo, settings: Settings, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from mloop.server.app import create_app

    app = create_app(settings, background=False)  # the routes, no queue: the test executes the run itself
    sha = repo.commit("over-http")
    with TestClient(app) as client:
        _, token = app.state.backend.store.tokens.create("test", "run")
        client.headers["Authorization"] = f"Bearer {token}"
        created = client.post("/api/v1/triggers", json={"name": "web", "repo_url": str(repo.bare),
                                                        "workflow_path": "flow.py", "branches": ["main"]})
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        assert created.json()["webhook_path"] == "/api/v1/triggers/git/web"
        listed = client.get("/api/v1/triggers").json()["triggers"]
        assert [t["name"] for t in listed] == ["web"] and "secret" not in listed[0]
        url = "/api/v1/triggers/git/web"
        body = push_payload(sha)

        # wrong signature: 401, nothing recorded or run
        refused = client.post(url, content=body, headers=signed(body, "h-0", secret="wrong-secret"))
        assert refused.status_code == 401 and refused.json()["code"] == "trigger_unauthorized"
        unsigned = client.post(url, content=body, headers={"X-GitHub-Event": "push", "X-GitHub-Delivery": "h-0"})
        assert unsigned.status_code == 401
        assert client.get(f"{url.replace('/git/web', '/web')}/deliveries").json()["deliveries"] == []

        # another branch: ignored, and recorded
        other = push_payload(sha, branch="feature")
        ignored = client.post(url, content=other, headers=signed(other, "h-1", secret=secret))
        assert ignored.status_code == 200 and ignored.json()["status"] == "ignored", ignored.text

        # the size limit, bad JSON, a bad trigger name, an unknown trigger
        big = b"{" + b" " * (5 * 1024 * 1024) + b"}"
        assert client.post(url, content=big, headers=signed(big, "h-2", secret=secret)).status_code == 413
        bad = b"{not json"
        bad_json = client.post(url, content=bad, headers=signed(bad, "h-3", secret=secret))
        assert bad_json.status_code == 400 and "not JSON" in bad_json.json()["message"]
        assert client.post("/api/v1/triggers/git/bad.name", content=body, headers=signed(body, "x")).status_code == 400
        assert client.post("/api/v1/triggers/git/nope", content=body, headers=signed(body, "x")).status_code == 404

        # a good push (GitLab style), then its redelivery
        started = client.post(url, content=body, headers=signed(body, "h-4", provider="gitlab", secret=secret))
        assert started.status_code == 200 and started.json()["status"] == "started", started.text
        duplicate = client.post(url, content=body, headers=signed(body, "h-4", provider="gitlab", secret=secret))
        assert duplicate.status_code == 200 and duplicate.json()["status"] == "duplicate"

        deliveries = client.get("/api/v1/triggers/web/deliveries").json()["deliveries"]
        assert [(d["delivery_id"], d["status"]) for d in deliveries] == [("h-4", "started"), ("h-1", "ignored")]
        assert "feature" in deliveries[1]["message"]

        # a repository the server cannot fetch from: 502, recorded as failed with git's words
        client.post("/api/v1/triggers", json={"name": "lost", "repo_url": str(tmp_path / "missing.git"),
                                              "workflow_path": "flow.py", "secret": SECRET})
        failed = client.post("/api/v1/triggers/git/lost", content=body, headers=signed(body, "h-5"))
        assert failed.status_code == 502 and failed.json()["code"] == "git_fetch_failed", failed.text
        lost = client.get("/api/v1/triggers/lost/deliveries").json()["deliveries"]
        assert lost[0]["status"] == "failed" and "git failed" in lost[0]["message"]

        assert client.delete("/api/v1/triggers/lost").status_code == 200
        assert client.delete("/api/v1/triggers/lost").status_code == 404

    with open_backend(settings) as ctx:
        runs = ctx.store.list_runs()
        origin = runs[0].origin or {}
        assert len(runs) == 1 and origin["commit"] == sha and origin["provider"] == "gitlab"
        assert execute_run(ctx, runs[0].id).status == "succeeded"
        assert _result_text(settings.home_path / "triggers" / "web" / sha) == "over-http"


def test_a_missing_workflow_file_or_commit_is_a_failed_delivery(repo: Repo, ctx: Context) -> None:
    create_trigger(ctx, "wrong-file", repo_url=str(repo.bare), workflow_path="flows/none.py", secret=SECRET)
    sha = repo.commit("x")
    body = push_payload(sha)
    with pytest.raises(Exception, match="no file 'flows/none.py'"):
        handle_push(ctx, "wrong-file", signed(body, "w-1"), body)
    create_trigger(ctx, "ghost", repo_url=str(repo.bare), workflow_path="flow.py", secret=SECRET)
    ghost = push_payload("f" * 40)
    with pytest.raises(GitFetchError):
        handle_push(ctx, "ghost", signed(ghost, "g-1"), ghost)
    assert [d.status for d in ctx.store.triggers.list_deliveries("wrong-file")] == ["failed"]
    assert [d.status for d in ctx.store.triggers.list_deliveries("ghost")] == ["failed"]
    assert ctx.store.list_runs() == []


def test_the_trigger_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from mloop.cli import app

    monkeypatch.setenv("MLOOP_HOME", str(tmp_path / ".mloop"))
    runner = CliRunner()
    created = runner.invoke(app, ["trigger", "create", "nightly", "--repo", "https://user:tok@git.example.com/f.git",
                                  "--workflow", "flows/train.py", "--branch", "main", "--path", "src/*",
                                  "-p", "epochs=3", "--secret", "a-long-secret"])
    assert created.exit_code == 0, created.output
    assert "a-long-secret" in created.output and "/api/v1/triggers/git/nightly" in created.output
    listed = runner.invoke(app, ["trigger", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    data = json.loads(listed.output)
    assert data[0]["params"] == {"epochs": "3"} and "secret" not in data[0]
    assert data[0]["repo_url"] == "https://***@git.example.com/f.git"
    assert runner.invoke(app, ["trigger", "deliveries", "nightly"]).exit_code == 0
    assert runner.invoke(app, ["trigger", "create", "bad", "--repo", "--upload-pack=x", "--workflow", "f.py"]
                         ).exit_code != 0
    assert runner.invoke(app, ["trigger", "delete", "nightly"]).exit_code == 0
    assert json.loads(runner.invoke(app, ["trigger", "list", "--json"]).output) == []
