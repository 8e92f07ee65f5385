"""The server's life: readiness while chains load, a start that cannot build, SIGTERM
during a burst (no accepted request lost, cleanup hooks once, exit 0), and ``--workers 2``
(metrics of the whole server, a reload that reaches every worker)."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from serve_helpers import PLUGIN, ServerProcess

TOKEN = "t0ken"
FEATURES = [{"name": f"f{i}", "min": 0, "max": 1} for i in range(3)]


def slow_chain(
    folder: Path, name: str, *, sleep_ms: int = 0, load_ms: int = 0, **extra: Any
) -> str:
    config = {
        "name": name,
        "features": FEATURES,
        "plugins": [PLUGIN.name],  # local plugins sit in the config's folder
        "chain": [
            {
                "name": "slow",
                "scorer": "slow_mean",
                "options": {"sleep_ms": sleep_ms, "load_ms": load_ms},
            }
        ],
        **extra,
    }
    shutil.copyfile(PLUGIN, folder / PLUGIN.name)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def infer(url: str, model: str, n: int = 1) -> httpx.Response:
    request = {
        "inputs": [
            {"name": "features", "datatype": "FP32", "shape": [n, 3], "data": [0.5] * (3 * n)}
        ]
    }
    return httpx.post(f"{url}/v2/models/{model}/infer", json=request, timeout=30)


def test_ready_is_503_until_every_chain_is_built(tmp_path: Path) -> None:
    config = slow_chain(tmp_path, "loading", load_ms=1500)
    with ServerProcess([config], wait_ready=False) as server:
        ready = httpx.get(server.url + "/v2/health/ready")
        assert ready.status_code == 503
        assert "still loading" in ready.json()["error"]
        assert "still loading" in infer(server.url, "loading").json()["error"]
        assert httpx.get(server.url + "/ping").status_code == 503
        server.wait(ready=True)
        assert infer(server.url, "loading").status_code == 200


def test_a_slow_step_without_timeout_never_holds_the_event_loop(tmp_path: Path) -> None:
    """A one-row request to a chain whose plugin step takes 3 s is scored off the loop:
    health checks and another model answer at once meanwhile."""
    slow = slow_chain(tmp_path, "slow", sleep_ms=3000)
    quick = slow_chain(tmp_path, "quick")
    with ServerProcess([slow, quick]) as server:
        waiting = threading.Thread(target=infer, args=(server.url, "slow"))
        waiting.start()
        time.sleep(0.3)  # the slow request is in flight
        started = time.monotonic()
        assert httpx.get(server.url + "/v2/health/live", timeout=5).status_code == 200
        assert infer(server.url, "quick").status_code == 200
        answered_in = time.monotonic() - started
        waiting.join()
    assert answered_in < 2.0  # not after the slow step's 3 s


def test_a_chain_that_cannot_be_built_stops_the_server_with_exit_2(tmp_path: Path) -> None:
    config = slow_chain(tmp_path, "needs", require=["absent"])
    with pytest.raises(AssertionError, match="exited 2") as failed:
        ServerProcess([config], wait_ready=False).wait(ready=True)
    assert "absent" in str(failed.value)
    assert "Traceback" not in str(failed.value)


def test_a_bad_config_fails_before_the_port_opens(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("chain: [}\n")
    with pytest.raises(AssertionError, match="exited 2"):
        ServerProcess([str(bad)], wait_ready=False)


def test_sigterm_during_a_burst_loses_no_accepted_request(tmp_path: Path) -> None:
    closed_log = tmp_path / "closed.log"
    configs = [slow_chain(tmp_path, "slow", sleep_ms=300), slow_chain(tmp_path, "other")]
    server = ServerProcess(configs, env={"SCORING_TEST_CLOSED_LOG": str(closed_log)})
    answers: list[Any] = []
    connected = threading.Barrier(7)

    def one() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            client.get("/v2/health/live")  # the keep-alive connection is open
            connected.wait()
            request = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 3],
                                   "data": [0.5] * 3}]}  # fmt: skip
            try:
                answers.append(client.post("/v2/models/slow/infer", json=request).status_code)
            except httpx.HTTPError as exc:
                answers.append(repr(exc))

    burst = [threading.Thread(target=one) for _ in range(6)]
    for thread in burst:
        thread.start()
    connected.wait()
    time.sleep(0.2)  # every request has arrived: two score, four wait for a thread
    server.terminate()
    for thread in burst:
        thread.join(30)
    assert server.stop() == 0, server.output()
    assert answers == [200] * 6
    lines = closed_log.read_text().splitlines()
    assert sorted(line.split()[1] for line in lines) == ["other", "slow"]
    assert "Traceback" not in server.output()


def test_two_workers_report_the_whole_server_and_reload_together(tmp_path: Path) -> None:
    closed_log = tmp_path / "closed.log"
    config = slow_chain(tmp_path, "pair")
    env = {"SCORING_ADMIN_TOKEN": TOKEN, "SCORING_TEST_CLOSED_LOG": str(closed_log)}
    with ServerProcess([config, "--workers", "2"], env=env) as server:
        deadline = time.monotonic() + 30  # both workers up: each answers the control socket
        while time.monotonic() < deadline:
            reload = httpx.post(
                server.url + "/v2/repository/models/pair/load",
                headers={"authorization": f"Bearer {TOKEN}"},
                timeout=30,
            )
            if reload.json().get("workers") == 2:
                break
            time.sleep(0.1)
        assert reload.status_code == 200, reload.text
        assert reload.json()["workers"] == 2
        assert reload.json()["steps"] == {"slow": "reloaded"}
        for _ in range(20):  # a new connection each: the kernel spreads them over the workers
            assert infer(server.url, "pair", n=2).status_code == 200
        for _ in range(6):
            text = httpx.get(server.url + "/metrics").text
            assert 'scoring_rows_served_total{chain="pair",step="slow"} 40.0' in text
            assert 'scoring_step_calls_total{chain="pair",step="slow"} 20.0' in text
            assert 'scoring_step_ready{chain="pair",step="slow"} 1.0' in text
            assert text.count("# TYPE scoring_rows_served_total counter") == 1
    assert server.process.returncode == 0
    assert len(closed_log.read_text().splitlines()) == 2  # one engine per worker, closed once
