"""`scoring serve` against the floor of HTTP + JSON + ONNX Runtime, and MLServer.

Servers, each a process of its own on this machine, all with the same model
(models/calling_score/1/model.onnx) and the same Open Inference Protocol JSON request:

  (a) `scoring serve scoring.yaml` (one worker);
  (b) a minimal Starlette endpoint on uvicorn (httptools, uvloop) that parses the JSON
      with orjson (as (a) does), calls ONNX Runtime inline (one intra-op thread, as
      scoring.yaml) and answers JSON: the floor;
  (c) MLServer 1.7 with a custom runtime calling ONNX Runtime, when `--mlserver PYTHON`
      names a Python that has mlserver installed (kept out of the project's environment).

The load generator is asyncio over raw keep-alive sockets, C connections each sending its
next request when the last answer is in. Reported: single-row requests/s and p50/p99
latency per concurrency, and rows/s for 1,000-row requests; then each server's ratio and
p99 where (b) peaks and at its knee (the fewest clients within 5% of that peak). The
servers are measured in turn for each load (in the other order every other round),
--rounds times over; each figure is the median of its rounds, and each ratio to (b) the
median of the rounds' ratios (the load generator shares the machine's cores with the
server, and the machine is shared: one run is noisy, and it drifts between rounds).

    python benchmarks/bench_serve.py [--seconds 5] [--rounds 3] [--concurrency 1 2 4 8 16]
        [--mlserver /tmp/mlserver-venv/bin/python]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "calling_score" / "1" / "model.onnx"
SCORING = str(Path(sys.executable).with_name("scoring"))
FLOOR = "(b) Starlette + ORT"

FLOOR_APP = textwrap.dedent(
    """
    import sys
    import numpy as np
    import onnxruntime as ort
    import orjson
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name

    async def infer(request):
        tensor = orjson.loads(await request.body())["inputs"][0]
        X = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
        scores = session.run(None, {feed: X})[0].reshape(-1)
        body = {"model_name": "floor", "outputs": [
            {"name": "score", "datatype": "FP32", "shape": [len(scores)],
             "data": scores.tolist()}]}
        return Response(orjson.dumps(body), media_type="application/json")

    async def ready(request):
        return Response("{}", media_type="application/json")

    app = Starlette(routes=[Route("/v2/models/{name}/infer", infer, methods=["POST"]),
                            Route("/v2/health/ready", ready)])
    """
)

MLSERVER_RUNTIME = textwrap.dedent(
    """
    import numpy as np
    import onnxruntime as ort
    from mlserver import MLModel
    from mlserver.codecs import NumpyCodec
    from mlserver.types import InferenceRequest, InferenceResponse

    class OnnxRuntime(MLModel):
        async def load(self) -> bool:
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            self.session = ort.InferenceSession(
                self.settings.parameters.uri, options, providers=["CPUExecutionProvider"])
            self.feed = self.session.get_inputs()[0].name
            return True

        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            X = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32)
            scores = self.session.run(None, {self.feed: X})[0].reshape(-1)
            return InferenceResponse(model_name=self.name,
                                     outputs=[NumpyCodec.encode_output("score", scores)])
    """
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server at {url} exited {process.returncode}")
        try:
            if httpx.get(url + "/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the server at {url} did not get ready")


def request_bytes(port: int, model: str, rows: np.ndarray) -> bytes:
    body = json.dumps(
        {"inputs": [{"name": "features", "datatype": "FP32", "shape": list(rows.shape),
                     "data": rows.reshape(-1).tolist()}]}
    ).encode()  # fmt: skip
    head = (
        f"POST /v2/models/{model}/infer HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def one_client(port: int, payload: bytes, stop_at: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise SystemExit(f"a request failed: {head[:200]!r}")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


def load(port: int, payload: bytes, clients: int, seconds: float) -> list[float]:
    async def run() -> list[float]:
        latencies: list[float] = []
        warm_until = time.perf_counter() + min(1.0, seconds / 4)
        await asyncio.gather(*(one_client(port, payload, warm_until, []) for _ in range(clients)))
        stop_at = time.perf_counter() + seconds
        await asyncio.gather(
            *(one_client(port, payload, stop_at, latencies) for _ in range(clients))
        )
        return latencies

    return asyncio.run(run())


def start_servers(
    args: argparse.Namespace, workdir: Path
) -> dict[str, tuple[subprocess.Popen[bytes], int, str]]:
    servers = {}
    env = {**os.environ, "SCORING_LOAD_PLUGINS": "onnx,rules"}
    port = free_port()
    servers["(a) scoring serve"] = (
        subprocess.Popen([SCORING, "serve", str(ROOT / "scoring.yaml"), "--port", str(port)],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        port, "scoring",
    )  # fmt: skip
    port = free_port()
    (workdir / "floor_app.py").write_text(FLOOR_APP)
    floor = [sys.executable, "-c",
             f"import sys, uvicorn; sys.path.insert(0, {str(workdir)!r}); sys.argv[1:] = "
             f"[{str(MODEL)!r}]; import floor_app; uvicorn.run(floor_app.app, port={port}, "
             "http='httptools', loop='uvloop', access_log=False, log_level='warning')"]  # fmt: skip
    servers[FLOOR] = (
        subprocess.Popen(floor, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        port,
        "floor",
    )
    if args.mlserver:
        port = free_port()
        folder = workdir / "mlserver"
        model_dir = folder / "calling-score"
        model_dir.mkdir(parents=True)
        (model_dir / "runtime.py").write_text(MLSERVER_RUNTIME)
        shutil.copy(MODEL, model_dir / "model.onnx")
        (folder / "settings.json").write_text(json.dumps(
            {"http_port": port, "grpc_port": free_port(), "metrics_port": free_port(),
             "parallel_workers": args.mlserver_workers, "debug": False}))  # fmt: skip
        (model_dir / "model-settings.json").write_text(json.dumps(
            {"name": "calling-score", "implementation": "runtime.OnnxRuntime",
             "parameters": {"uri": str(model_dir / "model.onnx")}}))  # fmt: skip
        servers["(c) MLServer 1.7"] = (
            subprocess.Popen([str(Path(args.mlserver).with_name("mlserver")), "start", str(folder)],
                             cwd=model_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
            port, "calling-score",
        )  # fmt: skip
    for _, (process, port, _) in servers.items():
        wait_ready(f"http://127.0.0.1:{port}", process)
    return servers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--batch-clients", type=int, default=4)
    parser.add_argument("--mlserver", help="a Python with mlserver 1.7 installed")
    parser.add_argument("--mlserver-workers", type=int, default=0,
                        help="MLServer's parallel_workers (its default, 1, fails to start "
                        "its inference pool here: no current event loop)")  # fmt: skip
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    one, thousand = rng.random((1, 39), np.float32), rng.random((1000, 39), np.float32)
    with tempfile.TemporaryDirectory() as workdir:
        servers = start_servers(args, Path(workdir))
        try:
            loads = [*(str(c) for c in args.concurrency), "batch"]
            runs: dict[str, dict[str, list[tuple[float, float, float]]]] = {
                name: {key: [] for key in loads} for name in servers
            }
            for round_ in range(args.rounds):
                for key in loads:  # the servers in turn for each load: paired figures
                    # every other round in the other order: no server always goes first
                    order = list(servers.items())[:: -1 if round_ % 2 else 1]
                    for name, (_, port, model) in order:
                        if key == "batch":
                            payload = request_bytes(port, model, thousand)
                            lat = load(port, payload, args.batch_clients, args.seconds)
                            runs[name][key].append((len(lat) * 1000 / args.seconds, 0.0, 0.0))
                            continue
                        lat = load(port, request_bytes(port, model, one), int(key), args.seconds)
                        p50 = statistics.median(lat) * 1000
                        p99 = float(np.percentile(lat, 99)) * 1000
                        runs[name][key].append((len(lat) / args.seconds, p50, p99))
            results: dict[str, dict[str, tuple[float, float, float]]] = {
                name: {
                    key: tuple(statistics.median(column) for column in zip(*figures, strict=True))
                    for key, figures in by_key.items()
                }
                for name, by_key in runs.items()
            }
            # each round's (x) / (b) from the same round, then their median: the machine's
            # drift between rounds cancels out of a ratio taken minutes apart
            ratio = {
                name: {
                    key: statistics.median(
                        x[0] / b[0] for x, b in zip(by_key[key], runs[FLOOR][key], strict=True)
                    )
                    for key in loads
                }
                for name, by_key in runs.items()
            }
            print(f"medians of {args.rounds} rounds of {args.seconds:g} s each; x (b): the "
                  "median of each round's ratio to (b)")  # fmt: skip
            print(f"{'server':<22} {'clients':>7} {'req/s':>9} {'x (b)':>6} {'p50 ms':>8} "
                  f"{'p99 ms':>8}")  # fmt: skip
            for name in servers:
                for clients in args.concurrency:
                    rate, p50, p99 = results[name][str(clients)]
                    print(f"{name:<22} {clients:>7} {rate:>9.0f} "
                          f"{ratio[name][str(clients)]:>6.2f} {p50:>8.2f} {p99:>8.2f}")  # fmt: skip
            print(f"\n{'server':<22} {'1,000-row requests, clients':>28} {'rows/s':>10} "
                  f"{'x (b)':>6}")  # fmt: skip
            for name in servers:
                rows_per_s = results[name]["batch"][0]
                print(f"{name:<22} {args.batch_clients:>28} {rows_per_s:>10.0f} "
                      f"{ratio[name]['batch']:>6.2f}")  # fmt: skip
            floor = results[FLOOR]
            peak = max(args.concurrency, key=lambda c: floor[str(c)][0])
            # past one core's worth of clients (b)'s req/s is a plateau and its argmax lands
            # anywhere on it: the knee is where the plateau starts
            knee = min(
                c for c in args.concurrency if floor[str(c)][0] >= 0.95 * floor[str(peak)][0]
            )
            for what, clients in (("peaks", peak), ("reaches 95% of its peak (the knee)", knee)):
                print(f"\n(b) {what} at {clients} clients ({floor[str(clients)][0]:.0f} req/s)")
                for name, by_clients in results.items():
                    _, _, p99 = by_clients[str(clients)]
                    print(f"{name:<22} at {clients} clients: {ratio[name][str(clients)]:.2f}x (b) "
                          f"in req/s, p99 {p99:.2f} ms")  # fmt: skip
            for name in results:
                print(f"{name:<22} 1,000-row rows/s {ratio[name]['batch']:.2f}x (b)")
        finally:
            for process, _, _ in servers.values():
                process.terminate()
                process.wait(30)


if __name__ == "__main__":
    main()
