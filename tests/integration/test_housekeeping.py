"""Housekeeping commands (issue 9, item 19): ``mloop retry -p``, Ctrl-C on a waiting run,
``mloop service stop --all``, ``mloop gc``."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from helpers import (  # noqa: F401 (fixtures)
    Cli, cli, database_url, process_gone, wait_until, write_job, write_workflow,
)
from test_service_manager import backend, version_model  # noqa: F401 (fixtures)

from mloop.context import Context
from mloop.serving.manager import service_processes
from mloop.services import serving
from mloop.services.models import register_model

pytestmark = pytest.mark.timeout(120)


def write_needs_big_n(tmp_path: Path) -> None:
    """prep -> check; ``check`` fails unless its parameter n is at least 5."""
    write_job(tmp_path / "prep", """
        with open(os.path.join(args.here, "prep_runs"), "a") as fh:
            fh.write("ran\\n")
    """, args=("out", "here"))
    write_job(tmp_path / "check", """
        n = int(args.n)
        print("check got n =", n, flush=True)
        if n < 5:
            sys.exit("n is too small")
    """, args=("out", "n"))
    write_workflow(tmp_path, """
        n = wf.Placeholder(name="n", placeholder_type=wf.PlaceholderType.INT, default=1)
        prep = job("prep", code="prep", params={"here": str(HERE)})
        check = job("check", code="check", params={"n": n}, depend=[prep])
        workflow = wf.Workflow(name="needs-big-n", desc="", steps=[prep, check])
    """)


class TestRetryWithChangedParameter:
    def test_retry_with_p_reruns_the_failed_step_with_the_new_value(self, tmp_path: Path, cli: Cli) -> None:
        write_needs_big_n(tmp_path)
        assert cli("run", "flow.py").code != 0
        run_id = cli.runs()[0]["id"]

        result = cli("retry", run_id[:10], "-p", "n=7")

        assert result.code == 0, str(result)
        shown = cli.show(run_id)
        assert shown["run"]["status"] == "succeeded" and shown["run"]["attempt"] == 2
        assert shown["run"]["params"]["n"] == 7
        assert "check got n = 7" in Path(shown["steps"]["check"]["log_path"]).read_text()
        assert (tmp_path / "prep_runs").read_text() == "ran\n"  # what succeeded is reused

    @pytest.mark.parametrize(("args", "expected"), [
        (["-p", "m=7"], ["no placeholder named 'm'", "n"]),
        (["-p", "n=abc"], ["n", "INT", "'abc'"]),
    ], ids=["unknown-name", "wrong-type"])
    def test_bad_value_is_refused_and_the_run_stays_failed(self, tmp_path: Path, cli: Cli, args: list[str],
                                                           expected: list[str]) -> None:
        write_needs_big_n(tmp_path)
        assert cli("run", "flow.py").code != 0
        run_id = cli.runs()[0]["id"]

        result = cli("retry", run_id, *args)

        assert result.code == 2, str(result)
        for text in expected:
            assert text in result.err, str(result)
        run = cli.show(run_id)["run"]
        assert (run["status"], run["attempt"], run["params"]["n"]) == ("failed", 1, 1)


class TestCtrlCWhileWaiting:
    def test_ctrl_c_leaves_a_waiting_run_waiting_and_input_resumes_it(self, tmp_path: Path, cli: Cli) -> None:
        write_job(tmp_path / "code", """
            os.makedirs(args.out, exist_ok=True)
            with open(os.path.join(args.out, "epochs.txt"), "w") as fh:
                fh.write(str(args.epochs))
        """, args=("out", "epochs"))
        write_workflow(tmp_path, """
            epochs = wf.Placeholder(name="epochs", placeholder_type=wf.PlaceholderType.INT, delay=True)
            prepare = job("prepare")
            train = job("train", params={"epochs": epochs}, depend=[prepare])
            workflow = wf.Workflow(name="delayed", desc="", steps=[prepare, train])
        """)
        engine = cli.start("run", "flow.py")

        def waiting() -> bool:
            runs = cli.runs()
            return bool(runs) and runs[0]["status"] == "waiting_input"

        wait_until(waiting, 60, lambda: f"the run to wait for input; mloop run said:\n{engine.output()}")
        run_id = cli.runs()[0]["id"]
        engine.proc.send_signal(signal.SIGINT)
        finished = engine.wait(timeout=30)

        assert finished.code == 0, str(finished)
        assert "mloop resume" in finished.text or "mloop input" in finished.text, str(finished)
        shown = cli.show(run_id)
        assert shown["run"]["status"] == "waiting_input"
        assert shown["steps"]["train"]["status"] == "waiting_input"
        assert shown["steps"]["prepare"]["status"] == "succeeded"

        resumed = cli("input", run_id, "epochs=4")

        assert resumed.code == 0, str(resumed)
        shown = cli.show(run_id)
        assert shown["run"]["status"] == "succeeded"
        assert shown["steps"]["train"]["status"] == "succeeded"


class TestServiceStopAll:
    def test_stop_all_stops_every_running_service(self, tmp_path: Path, backend: Context) -> None:
        ref = register_model(backend, "echo", version_model(tmp_path / "src" / "v1", "v1")).ref
        one = serving.deploy(backend, "svc-one", ref)
        two = serving.deploy(backend, "svc-two", ref)
        assert (one.status, two.status) == ("running", "running")
        runner = Cli(tmp_path, backend.settings.home_path)

        result = runner("service", "stop", "--all", "--timeout", "20")

        assert result.code == 0, str(result)
        assert "svc-one: stopped" in result.out and "svc-two: stopped" in result.out, str(result)
        assert {s.name: s.status for s in serving.list_services(backend)} == {"svc-one": "stopped",
                                                                             "svc-two": "stopped"}
        home = backend.settings.home_path
        assert not service_processes(home, "svc-one") and not service_processes(home, "svc-two")
        again = runner("service", "stop", "--all")
        assert again.code == 0 and "no service is running" in again.err, str(again)

    def test_stop_needs_a_name_or_all(self, tmp_path: Path, cli: Cli) -> None:
        result = cli("service", "stop")
        assert result.code == 2 and "--all" in result.err, str(result)


def _age(root: Path, seconds: float = 7200) -> None:
    """Make everything under ``root`` look older than gc's grace period."""
    then = time.time() - seconds
    for path in [root, *root.rglob("*")]:
        os.utime(path, (then, then), follow_symlinks=False)


class TestGc:
    def test_gc_removes_only_unreferenced_files_and_dry_run_removes_nothing(self, tmp_path: Path,
                                                                         backend: Context) -> None:
        from mloop.services.datasets import create_dataset

        home = backend.settings.home_path
        runner = Cli(tmp_path, home)
        write_job(tmp_path / "code", "print('hi')\n")
        write_workflow(tmp_path, """
            workflow = wf.Workflow(name="tiny", desc="", steps=[job("only")])
        """)
        assert runner("run", "flow.py").code == 0
        kept_run = home / "runs" / runner.runs()[0]["id"]
        assert kept_run.is_dir()
        deleted_run = home / "runs" / "0123456789abcdef0123456789abcdef"
        (deleted_run / "logs").mkdir(parents=True)
        (deleted_run / "logs" / "only.log").write_text("x" * 5000)

        (tmp_path / "data" / "cat").mkdir(parents=True)
        from PIL import Image

        noise = Image.frombytes("RGB", (200, 200), os.urandom(200 * 200 * 3))
        noise.save(tmp_path / "data" / "cat" / "big.png")  # over PACK_MAX: a loose object
        create_dataset(backend, "pets", tmp_path / "data")
        register_model(backend, "echo", version_model(tmp_path / "src" / "v1", "v1"))
        root = Path(backend.artifacts.root.removeprefix("file://"))
        objects = root / "datasets" / "objects"
        kept_objects = [p for p in objects.rglob("*") if p.is_file()]
        assert kept_objects
        orphan_object = objects / "ff" / ("0" * 62)  # objects/<digest[:2]>/<digest[2:]>
        orphan_object.parent.mkdir(exist_ok=True)
        orphan_object.write_bytes(b"y" * 3000)
        blobs = root / "models" / "blobs"
        kept_blobs = sorted(blobs.glob("*/*"))
        assert kept_blobs
        orphan_blob = blobs / "ee" / ("ee" + "1" * 62)
        (orphan_blob).mkdir(parents=True)
        (orphan_blob / "weights.bin").write_bytes(b"z" * 4000)
        orphan_manifest = blobs / "ee" / (orphan_blob.name + ".manifest.json")
        orphan_manifest.write_text("[]")
        fresh_run = home / "runs" / "fedcba9876543210fedcba9876543210"  # too new: maybe still being written
        fresh_run.mkdir()
        _age(home)
        _age(root)
        os.utime(fresh_run)
        garbage = [deleted_run, orphan_object, orphan_blob, orphan_manifest]

        dry = runner("gc", "--dry-run")

        assert dry.code == 0, str(dry)
        for path in garbage:
            assert path.exists()
            assert f"would remove" in dry.out and path.name in dry.out, str(dry)
        assert "4.9 KiB" in dry.out and "2.9 KiB" in dry.out and "3.9 KiB" in dry.out, str(dry)
        assert kept_run.name not in dry.out and fresh_run.name not in dry.out

        done = runner("gc")

        assert done.code == 0, str(done)
        assert "removed" in done.out and "freed" in done.err, str(done)
        for path in garbage:
            assert not path.exists(), path
        assert kept_run.is_dir() and fresh_run.is_dir()
        assert all(p.exists() for p in kept_objects) and all(p.exists() for p in kept_blobs), str(done)
        assert runner("gc").err.strip() == "nothing to remove"
        shown = runner.ok("dataset", "verify", "pets")
        assert shown.code == 0
