"""``close()`` while 32 threads score through the real ONNX step.

Every call either returns a valid result from a named step (with that step's value for
its row) or raises EngineClosedError: nothing else, no crash, and ``close()`` returns.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fault_kit import SHIPPED_MODEL, calling_config, calling_rows, formula

from scoring_core import Engine, EngineClosedError

THREADS = 32
ROWS = calling_rows(256, seed=61)


def _worker(
    engine: Any, start: threading.Barrier, seed: int, outcomes: list[tuple[str, Any, Any]]
) -> None:
    rng = np.random.default_rng(seed)
    start.wait()
    while True:
        batch = bool(rng.integers(2))
        rows = rng.integers(0, len(ROWS), size=int(rng.integers(1, 9)) if batch else 1)
        try:
            result = engine.score_batch(ROWS[rows]) if batch else engine.score(ROWS[rows[0]])
        except EngineClosedError as exc:
            outcomes.append(("closed", rows, exc))
            return
        except BaseException as exc:  # anything else is a failure of the test
            outcomes.append(("raised", rows, exc))
            return
        outcomes.append(("batch" if batch else "single", rows, result))


TIMEOUTS = {
    "no timeouts": {},
    "the onnx step under the watchdog": {"neural": 1000},
    "the formula on worker threads": {"formula": 1000},
}


@pytest.mark.parametrize("timeouts", list(TIMEOUTS))
def test_close_while_32_threads_score_gives_results_or_engine_closed_only(
    tmp_path: Path, timeouts: str
) -> None:
    model = Path(shutil.copy(SHIPPED_MODEL, tmp_path / "model.onnx"))
    config = calling_config(model)
    for step in config["chain"]:
        if step["name"] in TIMEOUTS[timeouts]:
            step["timeout_ms"] = TIMEOUTS[timeouts][step["name"]]
    engine = Engine.from_config(config)
    expected = {
        "neural": engine.score_step("neural", ROWS).scores,
        "formula": formula(ROWS),
    }
    start = threading.Barrier(THREADS + 1)
    per_thread: list[list[tuple[str, Any, Any]]] = [[] for _ in range(THREADS)]
    threads = [
        threading.Thread(target=_worker, args=(engine, start, seed, per_thread[seed]))
        for seed in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    start.wait()
    time.sleep(0.15)  # let every thread get going
    close_error: BaseException | None = None
    closed_at = time.perf_counter()
    try:
        engine.close()
    except BaseException as exc:
        close_error = exc
    close_took = time.perf_counter() - closed_at
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)
    outcomes = [outcome for thread_outcomes in per_thread for outcome in thread_outcomes]

    # close() returned, quickly and without error
    assert close_error is None
    assert close_took < 2.0
    # every thread ended on EngineClosedError, and nothing else was raised
    raised = Counter(f"{type(o[2]).__name__}: {o[2]}"[:160] for o in outcomes if o[0] == "raised")
    assert raised == {}
    assert sum(o[0] == "closed" for o in outcomes) == THREADS
    # every result came from a named step, with that step's value for each of its rows
    results = [o for o in outcomes if o[0] in ("single", "batch")]
    assert len(results) > THREADS  # the threads were scoring when close() came
    for kind, rows, result in results:
        scorers = [result.scorer] if kind == "single" else list(result.scorers)
        scores = [result.score] if kind == "single" else list(result.scores)
        assert len(scores) == len(rows)
        for row, scorer, score in zip(rows, scorers, scores, strict=True):
            assert scorer in expected
            assert score == pytest.approx(expected[scorer][row], abs=1e-6)
    # afterwards: closed, idempotent, and says so
    assert engine.closed
    assert engine.diagnostics()["engine"]["closed"] is True
    engine.close()
    with pytest.raises(EngineClosedError):
        engine.score(ROWS[0])
