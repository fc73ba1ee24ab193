"""Run comparison and value filters: ``mloop compare RUN RUN [RUN…]``, ``mloop runs --where/--sort``
and ``GET /api/v1/runs/compare``, on real runs that differ in parameters and data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from helpers import Cli, Embedded, pets, write_job, write_workflow

FLOW = """
    images = wf.data.OBSPlaceholder(name="images", object_type="directory")
    lr = wf.Placeholder(name="lr", placeholder_type=wf.PlaceholderType.FLOAT, default=0.1)
    acc = wf.Placeholder(name="acc", placeholder_type=wf.PlaceholderType.FLOAT, default=0.5)
    imagenet = [wf.steps.AnnotationFormatConfig(format_name=wf.steps.AnnotationFormatEnum.MA_IMAGENET_V1)]
    create = wf.steps.CreateDatasetStep(
        name="create",
        inputs=wf.steps.CreateDatasetInput(name="source", data=images),
        outputs=wf.steps.CreateDatasetOutput(name="dataset", config=wf.data.OBSOutputConfig(
            obs_path=work.join("dataset_work/"))),
        properties=wf.steps.DatasetProperties(
            dataset_name="pets", description="cats and dogs",
            import_config=wf.steps.ImportConfig(annotation_format_config=imagenet)),
    )
    train = job("train", params={"lr": lr, "acc": acc}, metric_file="metrics.json", depend=[create])
    workflow = wf.Workflow(name="cmp", desc="", steps=[create, train])
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Three finished runs: A (lr 0.1, 6 labeled images), B and C (lr 0.01, one more image)."""
    root = tmp_path_factory.mktemp("compare")
    write_job(root / "code", "write_metrics(args.out, accuracy=float(args.acc), loss=1 - float(args.acc))\n",
              args=("out", "lr", "acc"))
    flow = write_workflow(root, FLOW)
    first = pets(root / "images1")
    second = root / "images2"
    shutil.copytree(first, second)
    Image.new("RGB", (8, 8), (1, 2, 3)).save(second / "cat" / "cat9.png")
    backend = Embedded(root / ".mloop")
    try:
        runs = {}
        for name, values in {"a": {"lr": 0.1, "acc": 0.9, "images": str(first)},
                             "b": {"lr": 0.01, "acc": 0.98, "images": str(second)},
                             "c": {"lr": 0.01, "acc": 0.95, "images": str(second)}}.items():
            done = backend.run(flow, values)
            assert done.status == "succeeded", done.why()
            runs[name] = done.run.id
    finally:
        backend.close()
    return {"root": root, "runs": runs, "cli": Cli(root, root / ".mloop")}


def test_compare_marks_differences(world: dict[str, Any]) -> None:
    a, b = world["runs"]["a"], world["runs"]["b"]
    data = world["cli"].json("compare", a[:10], b[:10])

    assert [r["id"] for r in data["runs"]] == [a, b]
    rows = {(r["section"], r["name"]): r for r in data["rows"]}
    assert rows["parameters", "lr"] == {"section": "parameters", "name": "lr", "values": [0.1, 0.01], "differs": True}
    assert rows["metrics", "train.accuracy"]["values"] == [0.9, 0.98]
    assert rows["metrics", "train.accuracy"]["differs"]
    first, second = rows["datasets", "create.dataset"]["values"]
    assert first.startswith("pets:") and second.startswith("pets:") and first != second
    assert rows["datasets", "create.dataset"]["differs"]
    code = rows["code", "train"]
    assert code["values"][0] == code["values"][1] and len(code["values"][0]) == 64 and not code["differs"]
    assert all(v is not None and v >= 0 for v in rows["durations", "run"]["values"])
    assert all(v is not None for v in rows["durations", "train"]["values"])


def test_compare_table_fits_80_columns_and_marks_rows(world: dict[str, Any]) -> None:
    ids = [world["runs"][k][:12] for k in "abc"]
    result = world["cli"].ok("compare", *ids, COLUMNS="80")

    lines = result.out.splitlines()
    assert all(len(line) <= 80 for line in lines), result.out
    by_name: dict[tuple[str, str], str] = {}
    section = ""
    for line in lines[1:]:
        words = line.replace("≠", " ").split()
        if len(words) <= 2 and " ".join(words) in ("parameters", "final metrics", "dataset versions",
                                                      "code hashes", "durations"):
            section = " ".join(words)
        elif words:
            by_name[section, words[0]] = line
    lr = by_name["parameters", "lr"]
    assert lr.startswith("≠") and "0.1" in lr and "0.01" in lr
    assert by_name["final metrics", "train.accuracy"].startswith("≠")
    assert by_name["dataset versions", "create.dataset"].startswith("≠")
    assert not by_name["code hashes", "train"].startswith("≠")  # the same code
    for title in ("parameters", "final metrics", "dataset versions", "code hashes", "durations"):
        assert title in result.out


def test_compare_refuses_one_run_and_unknown_runs(world: dict[str, Any]) -> None:
    cli = world["cli"]
    one = cli("compare", world["runs"]["a"])
    assert one.code == 2 and "at least two runs" in one.text, str(one)
    missing = cli("compare", world["runs"]["a"], "zzzzzzzz")
    assert missing.code != 0 and "zzzzzzzz" in missing.text, str(missing)


def test_where_and_sort_select_and_order(world: dict[str, Any]) -> None:
    cli, runs = world["cli"], world["runs"]
    ids = lambda *args: [r["id"] for r in cli.json("runs", *args)]  # noqa: E731

    assert ids("--where", "accuracy>0.97") == [runs["b"]]
    assert ids("--where", "train.accuracy>=0.95", "--sort", "accuracy") == [runs["b"], runs["c"]]
    assert ids("--where", "lr==0.01", "--where", "loss<0.04") == [runs["b"]]
    assert ids("--where", "lr!=0.01") == [runs["a"]]
    assert ids("--sort", "accuracy") == [runs["b"], runs["c"], runs["a"]]
    assert ids("--sort", "-accuracy") == [runs["a"], runs["c"], runs["b"]]
    assert ids("--sort", "-loss", "-n", "1") == [runs["b"]]
    assert ids("--where", "images==" + str(world["root"] / "images1")) == [runs["a"]]
    assert ids("-w", "cmp", "--where", "accuracy<0.5") == []
    table = cli.ok("runs", "--where", "accuracy>0.97").out
    assert runs["b"][:12] in table and runs["a"][:12] not in table


@pytest.mark.parametrize("expression", ["accuracy", "accuracy=>0.9", ">0.9", "accuracy>", "accuracy ~ 1"])
def test_bad_where_expressions_are_refused(world: dict[str, Any], expression: str) -> None:
    result = world["cli"]("runs", "--where", expression)
    assert result.code == 2, str(result)
    assert "bad --where expression" in result.err and expression in result.err, str(result)


def test_unknown_where_name_is_refused(world: dict[str, Any]) -> None:
    result = world["cli"]("runs", "--where", "precision>0.5")
    assert result.code == 2 and "precision" in result.err and "accuracy" in result.err, str(result)


def test_api_serves_the_comparison(world: dict[str, Any]) -> None:
    from fastapi.testclient import TestClient

    from mloop.config import Settings
    from mloop.server.app import create_app

    a, c = world["runs"]["a"], world["runs"]["c"]
    app = create_app(Settings(home=world["root"] / ".mloop"), background=False)  # the routes, no queue
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {app.state.backend.store.tokens.create('t', 'read')[1]}"
        response = client.get("/api/v1/runs/compare", params={"ids": f"{a},{c[:10]}"})
        assert response.status_code == 200, response.text
        data = response.json()
        assert [r["id"] for r in data["runs"]] == [a, c]
        assert {r["name"] for r in data["rows"] if r["differs"] and r["section"] == "parameters"} >= {"lr", "acc"}
        assert client.get("/api/v1/runs/compare", params={"ids": a}).status_code in (400, 422)
