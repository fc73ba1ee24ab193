"""Helpers for the inference-server tests: tiny model folders of each type, a real uvicorn server
on a free loopback port (in a thread), and worker subprocesses.

Nothing here stands in for mloop: models are real files loaded by the real loaders, servers are
real uvicorn on real sockets, requests are real HTTP.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

PYTHON = sys.executable


# -- model folders ------------------------------------------------------------------------------------
NET_PY = textwrap.dedent('''\
    import torch
    from torch import nn


    class TinyNet(nn.Module):
        """4 features -> 3 classes (log-probabilities)."""

        def __init__(self, hidden: int = 8) -> None:
            super().__init__()
            self.fc1 = nn.Linear(4, hidden)
            self.fc2 = nn.Linear(hidden, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.log_softmax(self.fc2(torch.relu(self.fc1(x))), dim=1)
''')


def _tiny_net(folder: Path) -> Any:
    import importlib.util

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "net.py").write_text(NET_PY)
    spec = importlib.util.spec_from_file_location(f"_test_net_{abs(hash(str(folder)))}", folder / "net.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # torch.jit.script reads the class's source through it
    spec.loader.exec_module(module)
    import torch

    torch.manual_seed(0)
    return module.TinyNet(hidden=8).eval()


def torchscript_model(folder: Path) -> Any:
    """A TorchScript classifier (4 features, classes a/b/c); returns the module for direct calls."""
    import torch

    net = _tiny_net(folder)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\..* is deprecated")
        torch.jit.script(net).save(str(folder / "model.pt"))
    (folder / "net.py").unlink()
    (folder / "config.json").write_text(json.dumps({"model_type": "PyTorch", "input_shape": [1, 4],
                                                    "input_dtype": "float32", "classes": ["a", "b", "c"]}))
    return net


def state_dict_model(folder: Path) -> Any:
    """A state dict + the class file named in config.json (with constructor kwargs)."""
    import torch

    net = _tiny_net(folder)
    torch.save(net.state_dict(), folder / "weights.pth")
    (folder / "config.json").write_text(json.dumps({
        "model_type": "PyTorch", "model_class": "net:TinyNet", "model_kwargs": {"hidden": 8},
        "state_dict_file": "weights.pth", "input_shape": [1, 4], "classes": ["a", "b", "c"]}))
    return net


def sklearn_model(folder: Path) -> Any:
    """A fitted LogisticRegression dumped with joblib (classes are the labels it saw)."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    y = np.array(["cat", "dog", "eel"])[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)]
    model = LogisticRegression(max_iter=500).fit(x, y)
    joblib.dump(model, folder / "model.joblib")
    return model


def onnx_model(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """``y = x @ W + b`` built with onnx.helper (input "x" of shape [N, 4], output [N, 2])."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    w = rng.normal(size=(4, 2)).astype(np.float32)
    b = rng.normal(size=(2,)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "B"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "model.onnx"))
    return w, b


# -- servers --------------------------------------------------------------------------------------------
def free_socket(host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(512)
    return sock


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on a free loopback port; yields the base URL."""
    import uvicorn

    sock = free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start within 20 s")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


@contextmanager
def serve_folder(model_dir: Path, **kwargs: Any) -> Iterator[str]:
    from mloop.serving.app import create_app

    kwargs.setdefault("model_name", "m")
    kwargs.setdefault("model_version", "1")
    with serve_app(create_app(model_dir, **kwargs)) as url:
        yield url


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        sample, _, label_text = head.partition("{")
        if sample != name:
            continue
        found = dict(part.split("=", 1) for part in label_text.rstrip("}").split(",") if part)
        if all(found.get(k, "").strip('"') == v for k, v in labels.items()):
            return float(value)
    return 0.0


# -- worker subprocesses -------------------------------------------------------------------------------
def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_worker(model_dir: Path, *args: str, pass_fds: tuple[int, ...] = (), log: Path | None = None,
                 **popen: Any) -> subprocess.Popen[bytes]:
    cmd = [PYTHON, "-m", "mloop.serving.worker", "--model-dir", str(model_dir), "--model-name", "m",
           "--model-version", "1", *args]
    out = open(log, "wb") if log is not None else subprocess.PIPE
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT if log is not None else subprocess.PIPE,
                            pass_fds=pass_fds, env=worker_env(), **popen)


def wait_for_file(path: Path, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the worker exited with {proc.returncode} before writing {path}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no ready file {path} after {timeout} s")
        time.sleep(0.05)
    return json.loads(path.read_text())


STDLIB_SERVICE = textwrap.dedent('''\
    """A ModelArts-style service with no heavy imports: echoes, sleeps or raises on request."""
    import json
    import os
    import time

    from model_service.model_service import SingleNodeService


    class EchoService(SingleNodeService):
        def __init__(self, model_name, model_path):
            super().__init__(model_name, model_path)
            with open(os.path.join(model_path, "settings.json")) as fh:
                self.settings = json.load(fh)

        def _preprocess(self, data):
            return data

        def _inference(self, data):
            if data.get("started_file"):
                open(data["started_file"], "w").close()
            time.sleep(float(data.get("sleep", 0)))
            if data.get("fail"):
                raise ValueError("asked to fail")
            return {"echo": data.get("value"), "pid": os.getpid(), "tag": self.settings["tag"]}
''')


def stdlib_service(folder: Path, tag: str = "v1") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "customize_service.py").write_text(STDLIB_SERVICE)
    (folder / "settings.json").write_text(json.dumps({"tag": tag}))
    return folder
