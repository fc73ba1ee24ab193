"""ModelArts training scripts run unchanged in a JobStep: ``moxing`` copies from ``obs://``,
``deep_moxing``'s ``analyse`` writes the evaluation report and the step's metrics, and files the
job writes into its working folder (``artefacts/``, ``outputs/``) are kept (issue 14, items 5, 7, 8)."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import Embedded, database_url, embedded, write_workflow  # noqa: F401 (fixtures)

# Written as seed 003's train.py is: moxing in, train, predict without shuffling, analyse, moxing out.
TRAIN_PY = '''\
import argparse, json, os, sys

import moxing as mox
from deep_moxing.model_analysis.api import analyse

parser = argparse.ArgumentParser()
parser.add_argument('--data_url', type=str, default='obs://flowers/data_set', help='the training data')
parser.add_argument('--train_url', type=str)
parser.add_argument('--eval_url', type=str)
args, _ = parser.parse_known_args()

local_data = os.path.join(os.environ['MA_JOB_DIR'], 'data')
mox.file.copy_parallel(args.data_url, local_data)
mox.file.copy_parallel(args.data_url, args.data_url)  # data_url already is the OBS path: a no-op

classes = sorted(mox.file.list_directory(os.path.join(local_data, 'train')))
samples = []
for idx, cls in enumerate(classes):
    for name in sorted(os.listdir(os.path.join(local_data, 'train', cls))):
        path = os.path.join(local_data, 'train', cls, name)
        with open(path) as fh:
            samples.append((path, float(fh.read()), idx))
centroids = [sum(v for _, v, c in samples if c == k) / sum(1 for s in samples if s[2] == k) for k in range(len(classes))]

pred_list, label_list, name_list = [], [], []
for path, value, label in samples:
    pred_list.append(min(range(len(classes)), key=lambda k: abs(centroids[k] - value)))
    label_list.append(label)
    name_list.append(path)
label_dict = {}
for idx, item in enumerate(label_list):
    label_dict[idx] = int(item)

os.makedirs('artefacts', exist_ok=True)
with open('artefacts/train.log', 'w') as fh:
    fh.write('centroids %r\\n' % centroids)
with open(os.path.join(args.train_url, 'model.json'), 'w') as fh:
    json.dump({'classes': classes, 'centroids': centroids}, fh)

eval_local = os.path.join(os.environ['MA_JOB_DIR'], 'eval')
analyse(task_type='image_classification', pred_list=pred_list, label_list=label_list, name_list=name_list,
        label_map_dict=json.dumps(label_dict), save_path=eval_local)
mox.file.copy_parallel(eval_local, args.eval_url)
'''


def _flowers(root: Path) -> None:
    values = {"daisy": [1.0, 1.2, 0.9, 5.5], "roses": [5.0, 5.2, 4.8, 1.1]}
    for cls, numbers in values.items():
        folder = root / "flowers" / "data_set" / "train" / cls
        folder.mkdir(parents=True)
        for i, v in enumerate(numbers):
            (folder / f"{cls}{i}.txt").write_text(str(v))


def test_seed_003_style_training_script_runs_unchanged(tmp_path: Path, embedded: Embedded) -> None:
    _flowers(Path(embedded.settings.resolved_obs_root))
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text(TRAIN_PY)
    flow = write_workflow(tmp_path, """
        workflow = wf.Workflow(name="flowers", desc="seed 003", steps=[
            job("train", script="train.py", params={"data_url": "obs://flowers/data_set"},
                outputs=("train_url", "eval_url")),
        ])
    """)
    done = embedded.run(flow)
    assert done.status == "succeeded", done.why()
    assert done.metric("train", "accuracy") == 0.75  # one outlier per class
    assert done.metric("train", "macro_f1") == 0.75
    outputs = done.steps["train"].outputs
    report_path = Path(outputs["eval_url"]["url"], "model_analysis_results.json")
    report = json.loads(report_path.read_text())
    assert report["samples"] == 8 and report["confusion_matrix"]["matrix"] == [[3, 1], [1, 3]]
    assert {Path(s["name"]).name for s in report["misclassified"]["samples"]} == {"daisy3.txt", "roses3.txt"}
    assert Path(outputs["train_url"]["url"], "model.json").is_file()
    # the working folder's artefacts/ is kept as a step artifact, shown as an output
    kept = done.steps["train"].outputs["workdir"]
    assert Path(kept["url"], "artefacts", "train.log").read_text().startswith("centroids")
    artifacts = {a.name: a for a in embedded.store.list_artifacts(done.run.id, "train")}
    assert artifacts["workdir"].uri == kept["url"]


MODULE_PY = '''\
import os

os.makedirs("artefacts/plots", exist_ok=True)
with open("artefacts/plots/loss.csv", "w") as fh:
    fh.write("1,0.5\\n")
os.makedirs("outputs", exist_ok=True)
with open("outputs/ckpt.bin", "wb") as fh:
    fh.write(b"x" * 10)
with open("scratch.tmp", "w") as fh:
    fh.write("not kept")
with open("artefacts/shipped.txt", "a") as fh:
    fh.write(" and changed")
'''


def test_a_module_writing_artefacts_keeps_them(tmp_path: Path, embedded: Embedded) -> None:
    code = tmp_path / "code"
    (code / "artefacts").mkdir(parents=True)
    (code / "artefacts" / "shipped.txt").write_text("shipped")
    (code / "artefacts" / "untouched.txt").write_text("came with the code")
    (code / "job.py").write_text(MODULE_PY)
    flow = write_workflow(tmp_path, """
        workflow = wf.Workflow(name="module", desc="m", steps=[job("train", outputs=())])
    """)
    done = embedded.run(flow)
    assert done.status == "succeeded", done.why()
    kept = Path(done.steps["train"].outputs["workdir"]["url"])
    files = sorted(p.relative_to(kept).as_posix() for p in kept.rglob("*") if p.is_file())
    assert files == ["artefacts/plots/loss.csv", "artefacts/shipped.txt", "outputs/ckpt.bin"]
    assert (kept / "artefacts" / "shipped.txt").read_text() == "shipped and changed"


def test_keeping_can_be_turned_off(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "job.py").write_text(MODULE_PY.replace("artefacts/shipped.txt\", \"a\"", "artefacts/new.txt\", \"w\""))
    flow = write_workflow(tmp_path, """
        workflow = wf.Workflow(name="module", desc="m", steps=[job("train", outputs=())])
    """)
    backend = Embedded(tmp_path / ".mloop", keep_workdir_patterns=[])
    try:
        done = backend.run(flow)
    finally:
        backend.close()
    assert done.status == "succeeded", done.why()
    assert "workdir" not in done.steps["train"].outputs
