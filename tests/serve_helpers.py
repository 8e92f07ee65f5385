"""Starting the real ``scoring serve`` as a subprocess on a free port, for the tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SCORING = str(Path(sys.executable).with_name("scoring"))
PLUGIN = Path(__file__).resolve().parent / "serve_plugin.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """``scoring serve ARGS`` on a free port; ``url`` once it answers ``/v2/health/live``."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
        wait_ready: bool = True,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {**os.environ, "SCORING_LOAD_PLUGINS": "onnx,rules", **(env or {})}
        self.process = subprocess.Popen(
            [SCORING, "serve", *args, "--port", str(self.port)],
            cwd=cwd,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._output: str | None = None
        self._terminated = False
        self.wait(ready=wait_ready)

    def wait(self, *, ready: bool, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        route = "/v2/health/ready" if ready else "/v2/health/live"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the server exited {self.process.returncode}:\n{self.output()}"
                )
            try:
                if httpx.get(self.url + route, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"the server did not answer {route} in time:\n{self.output()}")

    def output(self) -> str:
        """What the server printed (once it has exited)."""
        if self.process.poll() is None:
            return "(still running)"
        if self._output is None:
            assert self.process.stdout is not None
            self._output = self.process.stdout.read()
            self.process.stdout.close()
        return self._output

    def terminate(self) -> None:
        """One SIGTERM, as Kubernetes sends it."""
        if not self._terminated:
            self._terminated = True
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout_s: float = 60) -> int:
        """SIGTERM, then wait; the exit code."""
        if self.process.poll() is None:
            self.terminate()
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        finally:
            self.output()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
