"""``--workers N``: N processes behind one port, and how they reach each other.

The supervisor (:func:`supervise`) binds the port once and starts N worker processes
(``spawn``), each running the same app on that socket; the kernel spreads connections
over them. It restarts a worker that dies, and on SIGTERM or SIGINT it passes SIGTERM to
every worker, waits for each to finish its requests and close its engines, and exits 0.

Each worker also listens on a control socket of its own, a Unix socket in the server's
state folder (``worker-<pid>.sock``). The worker an admin reload reaches reloads its
engines and asks every other worker to do the same before it answers, so the answer
covers the whole server; the worker a scrape reaches asks the others for their metrics
and adds them up (:mod:`scoring_core.server.http_metrics`). A request on the control
socket is one JSON line, and so is its answer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import signal
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["ControlServer", "ask_peers", "supervise"]

logger = logging.getLogger("scoring_core.server")

#: a worker that exits with this code could not build its chains: restarting will not help
EXIT_BUILD_FAILED = 2
_SOCKET_GLOB = "worker-*.sock"


class ControlServer:
    """This worker's control socket: ``handler(request) -> answer`` in a thread."""

    def __init__(self, state_dir: Path, handler: Callable[[dict[str, Any]], Any]) -> None:
        self.path = state_dir / f"worker-{os.getpid()}.sock"

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                try:
                    request = json.loads(self.rfile.readline())
                    answer = {"ok": True, "answer": handler(request)}
                except Exception as exc:  # answered, not raised: the asker reports it
                    answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                self.wfile.write(json.dumps(answer).encode() + b"\n")

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = Server(str(self.path), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="scoring-serve-control", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def ask_peers(state_dir: Path, request: dict[str, Any], timeout_s: float) -> list[Any]:
    """Send ``request`` to every other worker; their answers (a worker that is gone, or
    starting, is skipped). An answer that is an error raises RuntimeError."""
    own = state_dir / f"worker-{os.getpid()}.sock"
    answers = []
    for path in sorted(state_dir.glob(_SOCKET_GLOB)):
        if path == own:
            continue
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as peer:
                peer.settimeout(timeout_s)
                peer.connect(str(path))
                peer.sendall(json.dumps(request).encode() + b"\n")
                with peer.makefile("rb") as reader:
                    line = reader.readline()
        except (ConnectionRefusedError, FileNotFoundError):
            continue  # that worker has exited (or is being replaced)
        if not line:
            continue
        reply = json.loads(line)
        if not reply["ok"]:
            raise RuntimeError(f"worker {path.stem}: {reply['error']}")
        answers.append(reply["answer"])
    return answers


def supervise(
    target: Callable[..., None],
    settings: Any,
    sock: socket.socket,
    workers: int,
    *,
    stop_timeout_s: float,
) -> int:
    """Run ``target(settings, sock)`` in ``workers`` processes until SIGTERM or SIGINT;
    the exit code: 0 after a clean stop, else the first failing worker's."""
    context = multiprocessing.get_context("spawn")
    stopping = threading.Event()
    code = 0

    def start() -> multiprocessing.process.BaseProcess:
        process = context.Process(target=target, args=(settings, sock), name="scoring-serve")
        process.start()
        return process

    def on_signal(signum: int, frame: object) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    processes = [start() for _ in range(workers)]
    logger.info("started %d workers: %s", workers, ", ".join(str(p.pid) for p in processes))
    try:
        while not stopping.wait(0.2):
            for index, process in enumerate(processes):
                if process.is_alive():
                    continue
                if process.exitcode == EXIT_BUILD_FAILED:
                    code = EXIT_BUILD_FAILED
                    stopping.set()
                    break
                logger.error(
                    "worker %s exited (%s); starting another", process.pid, process.exitcode
                )
                processes[index] = start()
    finally:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + stop_timeout_s
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                logger.error("worker %s did not stop in time; killing it", process.pid)
                process.kill()
                process.join()
            if code == 0 and process.exitcode not in (0, None):
                code = process.exitcode if process.exitcode > 0 else 1
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code
