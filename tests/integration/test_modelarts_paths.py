"""ModelArts path notations in every SDK path field (issue 14, items 2 and 3): ``obs://`` is the
obs root everywhere (code_dir, OBSOutputConfig, OBSPath inputs, storages), and ``/bucket/dir/``
is an OBS path when ``/bucket`` is no local folder; no folder is created at the file-system root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import Embedded, write_job, write_workflow

BODY = '''
cicd = wf.data.OutputStorage(name="cicd", default="/cnnorth4-test-xyz/flow/")
step = wf.steps.JobStep(
    name="train",
    algorithm=wf.BaseAlgorithm(code_dir="obs://bucket/code/", boot_file="job.py"),
    inputs=[wf.steps.JobInput(name="data", data=wf.data.OBSPath(obs_path="obs://bucket/in/")),
            wf.steps.JobInput(name="more", data=wf.data.OBSPath(obs_path="/dxh-test-xyz/project/data/"))],
    outputs=[wf.steps.JobOutput(name="out", obs_config=wf.data.OBSOutputConfig(obs_path="obs://bucket/out/")),
             wf.steps.JobOutput(name="model", obs_config=wf.data.OBSOutputConfig(obs_path=cicd.join("model/")))],
    spec=resources())
workflow = wf.Workflow(name="ma-paths", desc="", steps=[step])
'''

JOB = '''
for name in ("data", "more"):
    with open(os.path.join(getattr(args, name), "x.txt")) as fh:
        text = fh.read()
    with open(os.path.join(args.out, name + ".txt"), "w") as fh:
        fh.write(text)
with open(os.path.join(args.model, "model.bin"), "w") as fh:
    fh.write("m")
with open(os.path.join(args.out, "where.txt"), "w") as fh:
    fh.write(os.path.dirname(os.path.abspath(__file__)))
'''


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def _obs(home: Path) -> Path:
    return home / "artifacts" / "obs"


def test_obs_and_bucket_paths_in_every_field(tmp_path: Path, home: Path) -> None:
    assert not os.path.exists("/cnnorth4-test-xyz") and not os.path.exists("/dxh-test-xyz")
    obs = _obs(home)
    write_job(obs / "bucket" / "code", JOB, args=("data", "more", "out", "model"))
    (obs / "bucket" / "in").mkdir(parents=True)
    (obs / "bucket" / "in" / "x.txt").write_text("from obs://bucket/in")
    (obs / "dxh-test-xyz" / "project" / "data").mkdir(parents=True)
    (obs / "dxh-test-xyz" / "project" / "data" / "x.txt").write_text("from /dxh-test-xyz/project/data")
    (obs / "bucket" / "out").mkdir(parents=True)  # an OBSOutputConfig path is an existing folder
    flow = write_workflow(tmp_path / "project", BODY)
    backend = Embedded(home)
    try:
        done = backend.run(flow)
    finally:
        backend.close()
    assert done.run.status == "succeeded", done
    assert (obs / "bucket" / "out" / "data.txt").read_text() == "from obs://bucket/in"
    assert (obs / "bucket" / "out" / "more.txt").read_text() == "from /dxh-test-xyz/project/data"
    assert not (tmp_path / "project" / "obs:").exists()
    models = list((obs / "cnnorth4-test-xyz" / "flow").glob("*/model/model.bin"))
    assert len(models) == 1, list((obs).rglob("*"))
    assert not os.path.exists("/cnnorth4-test-xyz") and not os.path.exists("/dxh-test-xyz")


def test_obs_output_as_placeholder_value_and_cli_value(tmp_path: Path, home: Path) -> None:
    """A data placeholder given ``obs://`` / ``/bucket/`` at run time, and an output path from a
    str placeholder, resolve by the same rule."""
    obs = _obs(home)
    code = tmp_path / "project" / "code"
    write_job(code, '''
with open(os.path.join(args.data, "x.txt")) as fh:
    text = fh.read()
with open(os.path.join(args.out, "copy.txt"), "w") as fh:
    fh.write(text)
''', args=("data", "out"))
    (obs / "b2" / "in").mkdir(parents=True)
    (obs / "b2" / "in" / "x.txt").write_text("placeholder")
    (obs / "b2" / "res").mkdir(parents=True)
    flow = write_workflow(tmp_path / "project", '''
data = wf.data.OBSPlaceholder(name="data", object_type="directory")
target = wf.Placeholder(name="target", placeholder_type=wf.PlaceholderType.STR, default="obs://b2/res/")
step = wf.steps.JobStep(
    name="copy", algorithm=wf.BaseAlgorithm(code_dir=str(HERE / "code"), boot_file="job.py"),
    inputs=[wf.steps.JobInput(name="data", data=data)],
    outputs=[wf.steps.JobOutput(name="out", obs_config=wf.data.OBSOutputConfig(obs_path=target))],
    spec=resources())
workflow = wf.Workflow(name="ma-values", desc="", steps=[step])
''')
    backend = Embedded(home)
    try:
        done = backend.run(flow, {"data": "/b2/in/"}, base_dir=str(tmp_path))
    finally:
        backend.close()
    assert done.run.status == "succeeded", done
    assert (obs / "b2" / "res" / "copy.txt").read_text() == "placeholder"


def test_local_mode_refuses_to_create_at_the_root(tmp_path: Path, home: Path) -> None:
    obs = _obs(home)
    write_job(obs / "bucket" / "code", "", args=())
    flow = write_workflow(tmp_path / "project", '''
cicd = wf.data.OutputStorage(name="cicd", default="/cnnorth4-test-xyz/flow/")
step = wf.steps.JobStep(
    name="train", algorithm=wf.BaseAlgorithm(code_dir="obs://bucket/code/", boot_file="job.py"),
    outputs=[wf.steps.JobOutput(name="model", obs_config=wf.data.OBSOutputConfig(obs_path=cicd.join("m/")))],
    spec=resources())
workflow = wf.Workflow(name="ma-local", desc="", steps=[step])
''')
    backend = Embedded(home, obs_absolute_paths="local")
    try:
        with pytest.raises(Exception, match="never creates folders at the file-system root"):
            backend.run(flow)
    finally:
        backend.close()
    assert not os.path.exists("/cnnorth4-test-xyz")
