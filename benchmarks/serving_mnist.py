"""The MNIST CNN served over HTTP on loopback: mloop with dynamic batching on and off, and a bare
FastAPI endpoint calling the same model with no mloop code, at concurrency 1, 16 and 64.

    .venv/bin/python benchmarks/serving_mnist.py [--seconds 5] [--concurrency 1,16,64] [--pin] [--repeats 3]

The model is ``examples/mnist/code/net.py`` with random weights (seed 0), saved by the example's
own ``train.save_model`` (TorchScript ``model.pt`` + ``config.json``): the forward cost is what
matters here, not the accuracy. Each request is one 28x28 image as JSON
``{"inputs": [[[...]]]}`` (pixel/255 with 3 decimals, ~5 KB), the same bytes for every server.

Servers (each its own process, uvicorn with uvloop + httptools, access log off, 1 torch thread
on a 2-core machine):

* ``mloop batching``: ``python -m mloop.serving.worker`` (max batch 32, max wait 5 ms);
* ``mloop no batching``: the same with ``--no-batching`` (one forward pass per request);
* ``bare FastAPI``: an ``async def`` endpoint that parses the JSON and calls the TorchScript model
  inline, the reference point; ``bare FastAPI (optimized)`` does the same with the model frozen
  and ``optimize_for_inference``-d as mloop's loader does, so the two differ only by mloop's code.

The load generator is one asyncio process with raw HTTP/1.1 keep-alive connections (one per
concurrent client, a request as soon as the previous answer arrived): cheap enough not to need a
core of its own. ``--pin`` puts it on CPU 1 and the server on CPU 0 with ``taskset`` (so each
server, its model thread included, has one core). All servers run for the whole benchmark and
the points are taken in rounds (every server at a level, then the next level), so load from
elsewhere on the machine falls on all of them alike; ``--repeats N`` runs N rounds and reports
each figure's median.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MNIST_CODE = ROOT / "examples" / "mnist" / "code"
PYTHON = sys.executable

BARE_SERVER = textwrap.dedent('''\
    import json, sys, warnings
    import numpy as np
    import torch
    import uvicorn
    from fastapi import FastAPI, Request, Response

    warnings.filterwarnings("ignore")
    model_path, port, optimize = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
    torch.set_num_threads(1)
    model = torch.jit.load(model_path).eval()
    if optimize:
        model = torch.jit.optimize_for_inference(torch.jit.freeze(model))
    with torch.inference_mode():
        for _ in range(3):
            model(torch.zeros(1, 1, 28, 28))
    app = FastAPI()

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        body = json.loads(await request.body())
        x = torch.from_numpy(np.asarray(body["inputs"], dtype=np.float32))
        with torch.inference_mode():
            y = model(x)
        probs = y.exp()
        out = {"outputs": y.tolist(), "probabilities": probs.tolist(),
               "predictions": [str(i) for i in y.argmax(dim=1).tolist()]}
        return Response(json.dumps(out), media_type="application/json")

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
''')


def build_model(folder: Path) -> Path:
    """The MNIST CNN with random weights, written by the example's own save_model."""
    code = textwrap.dedent(f'''\
        import argparse, sys, torch
        sys.path.insert(0, {str(MNIST_CODE)!r})
        import train
        from net import Net
        torch.manual_seed(0)
        args = argparse.Namespace(epochs=0, lr=0.0, gamma=0.0, batch_size=0, seed=0)
        train.save_model(Net(), __import__("pathlib").Path({str(folder)!r}), accuracy=0.0, loss=0.0, args=args,
                         test_size=0)
    ''')
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([PYTHON, "-c", code], check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def request_bytes(port: int) -> bytes:
    import numpy as np

    rng = np.random.default_rng(0)
    image = (rng.integers(0, 256, size=(1, 1, 28, 28)) / 255.0).round(3)
    body = json.dumps({"inputs": image.tolist()}).encode()
    head = (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head + body


async def _client(port: int, payload: bytes, stop_at: float, warm_until: float, latencies: list[float],
                  errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while True:
            started = time.perf_counter()
            if started >= stop_at:
                return
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            match = re.search(rb"content-length: *(\d+)", head, re.IGNORECASE)
            body = await reader.readexactly(int(match.group(1)) if match else 0)
            done = time.perf_counter()
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(head.split(b"\r\n", 1)[0].decode() + " " + body[:200].decode("utf-8", "replace"))
            elif started >= warm_until:
                latencies.append(done - started)
    finally:
        writer.close()


async def load(port: int, concurrency: int, seconds: float, warmup: float) -> dict[str, float]:
    payload = request_bytes(port)
    now = time.perf_counter()
    warm_until, stop_at = now + warmup, now + warmup + seconds
    latencies: list[float] = []
    errors: list[str] = []
    await asyncio.gather(*(_client(port, payload, stop_at, warm_until, latencies, errors)
                           for _ in range(concurrency)))
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, first: {errors[0]}")
    latencies.sort()
    n = len(latencies)
    return {"rps": n / seconds, "p50_ms": latencies[n // 2] * 1e3,
            "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1e3, "mean_ms": statistics.fmean(latencies) * 1e3,
            "requests": n}


def run_load(port: int, concurrency: int, seconds: float, warmup: float, pin: bool) -> dict[str, float]:
    """The load generator in its own process (optionally pinned to CPU 1)."""
    cmd = [PYTHON, __file__, "--load", str(port), str(concurrency), str(seconds), str(warmup)]
    if pin:
        cmd = ["taskset", "-c", "1", *cmd]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def batch_counts(port: int) -> tuple[float, float]:
    """(instances, forward passes) so far, from the server's Prometheus metrics."""
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    values = []
    for name in ("mloop_batch_size_sum", "mloop_batch_size_count"):
        m = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
        values.append(float(m.group(1)) if m else 0.0)
    return values[0], values[1]


def _median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over the repeats."""
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per point")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each point")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--pin", action="store_true", help="server on CPU 0, load generator on CPU 1 (taskset)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="rounds over all servers and levels; the tables show each figure's median")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    work = Path(tempfile.mkdtemp(prefix="mloop-serving-bench-"))
    try:
        model_dir = build_model(work / "mnist")
        (work / "bare.py").write_text(BARE_SERVER)
        servers = {
            "mloop batching": [PYTHON, "-m", "mloop.serving.worker", "--model-dir", str(model_dir), "--model-name",
                               "mnist", "--model-version", "1", "--max-batch-size", "32", "--max-wait-ms", "5",
                               "--threads", "1", "--log-level", "warning"],
            "mloop no batching": [PYTHON, "-m", "mloop.serving.worker", "--model-dir", str(model_dir), "--model-name",
                                  "mnist", "--model-version", "1", "--no-batching", "--threads", "1",
                                  "--log-level", "warning"],
            "bare FastAPI": [PYTHON, str(work / "bare.py"), str(model_dir / "model.pt"), "PORT", "0"],
            "bare FastAPI (optimized)": [PYTHON, str(work / "bare.py"), str(model_dir / "model.pt"), "PORT", "1"],
        }
        env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
        runs: dict[tuple[str, int], list[dict[str, float]]] = {}
        batches: dict[tuple[str, int], list[float]] = {}
        print(f"MNIST CNN (random weights) over HTTP on loopback; {os.cpu_count()} CPUs; {args.seconds:g} s per "
              f"point after {args.warmup:g} s warm-up; {args.repeats} round(s), servers interleaved; load generator "
              + ("pinned to CPU 1, server to CPU 0" if args.pin else "unpinned"), flush=True)
        procs: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        try:
            # Every server is up for the whole run (idle ones cost nothing) and the points are taken
            # in rounds, server after server at each concurrency: load from elsewhere on the machine
            # then lands on all of them alike instead of on whichever happened to run at the time.
            for label, template in servers.items():
                port = free_port()
                cmd = [str(port) if c == "PORT" else c for c in template]
                if "--model-dir" in cmd:
                    cmd += ["--port", str(port)]
                if args.pin:
                    cmd = ["taskset", "-c", "0", *cmd]
                log = open(work / f"server-{len(procs)}.log", "wb")  # noqa: SIM115 - closed with the process
                procs[label] = (subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log), port)
                log.close()
            for label, (proc, port) in procs.items():
                wait_ready(port, proc)
            for rnd in range(args.repeats):
                for c in levels:
                    for label, (proc, port) in procs.items():
                        ours = label.startswith("mloop")
                        before = batch_counts(port) if ours else (0.0, 0.0)
                        r = run_load(port, c, args.seconds, args.warmup, args.pin)
                        after = batch_counts(port) if ours else (0.0, 0.0)
                        runs.setdefault((label, c), []).append(r)
                        passes = after[1] - before[1]
                        batch = f"{(after[0] - before[0]) / passes:.1f}" if passes else "-"
                        if passes:
                            batches.setdefault((label, c), []).append((after[0] - before[0]) / passes)
                        print(f"  round {rnd + 1} {label:<26} c={c:<3} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:7.2f} ms"
                              f"  p99 {r['p99_ms']:7.2f} ms  mean batch {batch}", flush=True)
        finally:
            for proc, _ in procs.values():
                proc.terminate()
            for proc, _ in procs.values():
                proc.wait(timeout=30)
        results = [(label, c, _median_run(runs[(label, c)]),
                    f"{statistics.median(batches[(label, c)]):.1f}" if (label, c) in batches else "-")
                   for label in servers for c in levels]
        print()
        if args.repeats > 1:
            print(f"medians over {args.repeats} rounds:")
        print("| server | concurrency | requests/s | p50 ms | p99 ms | mean batch |")
        print("|---|---:|---:|---:|---:|---:|")
        for label, c, r, batch in results:
            print(f"| {label} | {c} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {batch} |")
        by = {(label, c): r for label, c, r, _ in results}
        top = max(levels)
        if ("mloop batching", top) in by and ("mloop no batching", top) in by:
            on, off = by[("mloop batching", top)], by[("mloop no batching", top)]
            print(f"\nbatching at c={top}: {on['rps'] / off['rps']:.2f}x the throughput of no batching "
                  f"(target >= 3x), p99 {on['p99_ms']:.1f} ms (target < 50 ms)")
        if 1 in levels:
            ours = by[("mloop batching", 1)]["p50_ms"]
            for ref in ("bare FastAPI", "bare FastAPI (optimized)"):
                base = by[(ref, 1)]["p50_ms"]
                print(f"c=1 p50: mloop {ours:.2f} ms vs {ref} {base:.2f} ms ({(ours / base - 1) * 100:+.1f}%; "
                      f"target within 10%)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        port, conc, secs, warm = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        print(json.dumps(asyncio.run(load(port, conc, secs, warm))))
        sys.exit(0)
    sys.exit(main())
