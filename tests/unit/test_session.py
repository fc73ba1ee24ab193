"""``mloop.session.Session`` (issue 14, item 1): ModelArts' arguments and environment forms,
none required; a session naming an mloop server sends the workflow verbs there."""

from __future__ import annotations

from pathlib import Path

import pytest

from mloop import workflow as wf
from mloop.client import client_for
from mloop.config import Settings
from mloop.session import Session, settings_for


def _workflow(session: Session) -> wf.Workflow:
    algorithm = wf.BaseAlgorithm(code_dir="obs://bucket/code/", boot_file="train.py")
    step = wf.steps.JobStep(name="train", algorithm=algorithm, spec=wf.steps.JobSpec(
        resource=wf.steps.JobResource(flavor={"flavor_id": "cpu.small"})))
    return wf.Workflow(name="ci", desc="", steps=[step], session=session)


def test_modelarts_arguments_accepted_none_required(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK", "HUAWEICLOUD_SDK_PASSWORD", "SDK_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert Session().mode == "local"
    s = Session(access_key="AK", secret_key="SK", region_name="cn-north-4", project_id="p1")
    assert (s.access_key, s.region_name, s.project_id) == ("AK", "cn-north-4", "p1")
    s = Session(username="u", password="pw", account="acc", region_name="r", project_id="p",
                config_file="~/.modelarts.cfg", authorize_by_token=True, iam_endpoint="iam.example")
    assert s.extra == {"iam_endpoint": "iam.example"} and s.authorize_by_token
    assert "SK" not in repr(Session(access_key="AK", secret_key="SK")) and "pw" not in repr(s)
    workflow = _workflow(Session(access_key="AK", secret_key="SK", region_name="r", project_id="p"))
    assert workflow.to_spec()["steps"][0]["name"] == "train"


def test_environment_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUAWEICLOUD_SDK_AK", "env-ak")
    monkeypatch.setenv("HUAWEICLOUD_SDK_SK", "env-sk")
    monkeypatch.setenv("HUAWEICLOUD_SDK_PASSWORD", "env-pw")
    s = Session(region_name="r", project_id="p")
    assert (s.access_key, s.secret_key, s.password) == ("env-ak", "env-sk", "env-pw")
    assert Session(access_key="given").access_key == "given"


def test_server_session_selects_client_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))  # no saved `mloop login`
    for name in ("MLOOP_SERVER_URL", "MLOOP_SERVER", "MLOOP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    base = Settings(home=tmp_path / "home")
    assert client_for(settings_for(Session(access_key="AK"), base)) is None
    settings = settings_for(Session(server_url="http://mloop.example:8080", token="tok"), base)
    assert (settings.server_url, settings.token) == ("http://mloop.example:8080", "tok")
    client = client_for(settings)
    assert client is not None
    client.close()
