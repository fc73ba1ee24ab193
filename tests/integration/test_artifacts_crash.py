"""A real process killed in the middle of an atomic write leaves the old artifact readable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mloop.artifacts import ArtifactStore

SRC = Path(__file__).resolve().parents[2] / "src"

WRITER = textwrap.dedent(
    """
    import sys, time
    from fsspec.callbacks import Callback
    from mloop.artifacts import ArtifactStore

    class StallAfterFirstChunk(Callback):
        def call(self, *args, **kwargs):
            if self.value:  # one chunk is on disk under the temporary name
                print("half-written", flush=True)
                time.sleep(60)

    ArtifactStore(sys.argv[1]).write_bytes("model.bin", b"new" * (1 << 20), callback=StallAfterFirstChunk())
    """
)


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL is POSIX")
def test_sigkill_during_write_keeps_the_old_content(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    store = ArtifactStore(str(root))
    store.write_bytes("model.bin", b"old model")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "half-written", proc.stderr.read() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert store.read_bytes("model.bin") == b"old model"
    # A killed process cannot clean up: its temporary sibling stays, hidden and never
    # under the artifact's own name.
    leftovers = sorted(p.name for p in root.iterdir() if p.name != "model.bin")
    assert len(leftovers) == 1 and leftovers[0].startswith(".model.bin.") and leftovers[0].endswith(".tmp")
