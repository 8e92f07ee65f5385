"""A local plugin for the server's tests: a slow scorer, and a cleanup hook that writes
one line to the file ``$SCORING_TEST_CLOSED_LOG`` each time an engine closes."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

import scoring_core


class SlowMean:
    """The row mean, after sleeping ``sleep_ms`` per call."""

    def __init__(self, ctx: Any) -> None:
        self.sleep_s = float(ctx.option("sleep_ms", 0)) / 1000
        time.sleep(float(ctx.option("load_ms", 0)) / 1000)  # a slow model load

    def score(self, X: np.ndarray) -> np.ndarray:
        time.sleep(self.sleep_s)
        return X.mean(axis=1)


@scoring_core.hookimpl
def scoring_register_scorers(register: Any) -> None:
    register("slow_mean", SlowMean)


@scoring_core.hookimpl
def scoring_engine_closed(engine: Any) -> None:
    path = os.environ.get("SCORING_TEST_CLOSED_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"closed {engine.name} {os.getpid()}\n")
