"""Running the server: one process, or a supervisor and N workers behind one port.

uvicorn serves the app. Its own handling of SIGTERM is kept (stop accepting, let the
requests in flight finish, then the lifespan's shutdown closes every engine) except
that it re-raises the signal afterwards, which would end the process with the signal
instead of exit code 0; :class:`_Server` leaves that out.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Generator
from typing import Any

import uvicorn

from scoring_core.server.app import Settings, build_app
from scoring_core.server.workers import EXIT_BUILD_FAILED, supervise

__all__ = ["GRACEFUL_SHUTDOWN_S", "run"]

logger = logging.getLogger("scoring_core.server")

#: how long requests in flight get to finish after SIGTERM
GRACEFUL_SHUTDOWN_S = 30.0


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        signals = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _config(settings: Settings, **where: Any) -> tuple[uvicorn.Config, Any]:
    fast = importlib.util.find_spec("httptools") is not None
    app = build_app(settings)
    return uvicorn.Config(
        app,
        http="httptools" if fast else "h11",
        loop="uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio",
        lifespan="on",
        access_log=False,
        log_level=settings.extra.get("log_level", "info"),
        timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN_S),
        **where,
    ), app.state.server


def _serve(built: tuple[uvicorn.Config, Any], sockets: list[socket.socket] | None = None) -> int:
    config, app_server = built
    server = _Server(config)
    failed = threading.Event()

    def build_failed() -> None:
        failed.set()
        server.should_exit = True

    app_server.on_build_failed = build_failed
    server.run(sockets=sockets)
    if failed.is_set():
        logger.error("error: %s", app_server.repository.not_ready_reason())
        return EXIT_BUILD_FAILED
    return 0


def _worker(settings: Settings, sock: socket.socket) -> None:
    """One worker process of ``--workers N`` (the supervisor's target)."""
    raise SystemExit(_serve(_config(settings), sockets=[sock]))


def run(settings: Settings, *, host: str, port: int, workers: int = 1) -> int:
    """Serve until SIGTERM or SIGINT; the process's exit code (0 after a clean stop)."""
    if workers <= 1:
        return _serve(_config(settings, host=host, port=port))
    state_dir = tempfile.mkdtemp(prefix="scoring-serve-")
    try:
        settings.state_dir = state_dir
        sock = uvicorn.Config(build_app, host=host, port=port).bind_socket()
        logger.info("listening on http://%s:%d with %d workers", host, port, workers)
        try:
            return supervise(
                _worker, settings, sock, workers, stop_timeout_s=GRACEFUL_SHUTDOWN_S + 15
            )
        finally:
            sock.close()
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
