"""Notification rules: which transitions are events, what a subscription wants, how settings
declare subscriptions, and the backoff schedule."""

from __future__ import annotations

from pathlib import Path

import pytest

from mloop.config import NotifySpec, Settings
from mloop.errors import ConfigError
from mloop.notify.notifier import MAX_ATTEMPTS, backoff_seconds
from mloop.notify.rules import check_target, event_name, matches, normalize_events, short_text


@pytest.mark.parametrize(("step", "before", "after", "expected"), [
    (None, "pending", "running", "run_started"),
    (None, "waiting_input", "running", None),  # a resumed run does not start again
    (None, "running", "succeeded", "run_succeeded"),
    (None, "running", "failed", "run_failed"),
    (None, "pending", "failed", "run_failed"),
    (None, "running", "stopped", "run_stopped"),
    (None, "running", "waiting_input", "run_waiting_input"),
    (None, None, "pending", None),
    ("train", "pending", "running", None),
    ("train", "running", "succeeded", "step_succeeded"),
    ("train", "running", "failed", "step_failed"),
    ("train", "running", "stopped", "step_stopped"),
    ("train", "pending", "waiting_input", "step_waiting_input"),
    ("train", "waiting_input", "waiting_input", None),  # what it waits for changed: no new event
    ("train", "pending", "skipped", None),
    ("train", "failed", "pending", None),
])
def test_transitions_map_to_events(step: str | None, before: str | None, after: str, expected: str | None) -> None:
    assert event_name(step, before, after) == expected


def test_short_and_full_event_names() -> None:
    assert normalize_events("failed, succeeded") == ["run_failed", "run_succeeded"]
    assert normalize_events("failed", step="train") == ["step_failed"]
    assert normalize_events(["run_failed", "step_failed", "run_failed"]) == ["run_failed", "step_failed"]
    assert normalize_events(None) == ["run_succeeded", "run_failed", "run_stopped", "run_waiting_input"]
    assert normalize_events("", step="train")[0].startswith("step_")
    with pytest.raises(ValueError, match="did you mean 'failed'"):
        normalize_events("faild")
    with pytest.raises(ValueError, match="did you mean 'run_failed'"):
        normalize_events("run_faild")
    with pytest.raises(ValueError, match="step"):
        normalize_events("started", step="train")


def test_targets_are_checked_by_channel() -> None:
    assert check_target("webhook", " https://hooks.example.com/x ") == "https://hooks.example.com/x"
    assert check_target("email", "a@b.co, c@d.org") == "a@b.co,c@d.org"
    for channel, target in [("webhook", "ftp://x"), ("slack", "hooks.slack.com/x"), ("email", "nobody"),
                            ("email", "a@b.co, oops")]:
        with pytest.raises(ValueError):
            check_target(channel, target)
    with pytest.raises(ValueError, match="did you mean 'slack'"):
        check_target("slak", "https://x")


def test_subscription_matching() -> None:
    every = {"events": ["run_failed", "step_failed"], "workflow_name": None, "step_name": None}
    assert matches(every, "run_failed", "mnist", None)
    assert matches(every, "step_failed", "mnist", "train")
    assert not matches(every, "run_succeeded", "mnist", None)
    one = {"events": ["step_failed", "run_failed"], "workflow_name": "mnist", "step_name": "train"}
    assert matches(one, "step_failed", "mnist", "train")
    assert not matches(one, "step_failed", "mnist", "eval")
    assert not matches(one, "step_failed", "other", "train")
    assert matches(one, "run_failed", "mnist", None)


def test_short_text() -> None:
    payload = {"workflow": "mnist", "run_number": 12, "to_status": "failed", "event": "run_failed",
               "failed_step": "train", "failed_exit_code": 1, "message": "step train failed"}
    assert short_text(payload) == "mnist #12 failed: step train (exit 1)"
    assert short_text({"workflow": "m", "run_number": 3, "to_status": "succeeded"}) == "m #3 succeeded"
    assert short_text({"workflow": "m", "run_number": 3, "to_status": "failed", "step": "eval",
                       "exit_code": 2}) == "m #3 step eval failed (exit 2)"


def test_backoff_doubles_from_5s_to_10_min() -> None:
    assert [backoff_seconds(n) for n in range(1, MAX_ATTEMPTS + 1)] == [5, 10, 20, 40, 80, 160, 320, 600]
    assert backoff_seconds(30) == 600


def test_notify_tables_in_mloop_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for key in [k for k in __import__("os").environ if k.startswith("MLOOP_")]:
        monkeypatch.delenv(key)
    (tmp_path / "mloop.toml").write_text(
        '[mloop]\nsmtp_host = "mail.example.com"\nsmtp_security = "ssl"\n\n'
        '[[notify]]\nname = "ci"\nworkflow = "mnist"\nevents = ["failed"]\nchannel = "webhook"\n'
        'target = "https://hooks.example.com/mloop"\nsecret = "s3"\n\n'
        '[[notify]]\nname = "team"\nchannel = "email"\ntarget = "ml@example.com"\nstep = "train"\n')
    monkeypatch.setenv("MLOOP_SMTP_PASSWORD", "from-env")
    settings = Settings()
    assert [s.name for s in settings.notify] == ["ci", "team"]
    assert settings.notify[0].events == ["run_failed"] and settings.notify[0].secret == "s3"
    assert settings.notify[1].events[0] == "step_succeeded"
    assert settings.smtp_host == "mail.example.com" and settings.smtp_security == "ssl"
    assert settings.smtp_password == "from-env"


def test_bad_notify_tables_are_config_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mloop.toml").write_text('[[notify]]\nname = "x"\nchannel = "webhook"\ntarget = "https://h/x"\n'
                                         'events = ["faild"]\n')
    with pytest.raises(ConfigError, match="did you mean 'failed'"):
        Settings()
    (tmp_path / "mloop.toml").write_text('[[notify]]\nname = "x"\nchannel = "pigeon"\ntarget = "https://h/x"\n')
    with pytest.raises(ConfigError, match="notify.0.channel"):
        Settings()
    with pytest.raises(ConfigError, match="email target"):
        Settings(notify=[{"name": "x", "channel": "email", "target": "nobody"}])
    monkeypatch.setenv("MLOOP_NOTIFY", '[{"name": "y", "channel": "slack", "target": "https://hooks/x"}]')
    (tmp_path / "mloop.toml").unlink()
    expected = NotifySpec.model_validate({"name": "y", "channel": "slack", "target": "https://hooks/x"})
    assert Settings().notify == [expected]
