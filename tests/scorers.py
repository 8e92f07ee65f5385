"""Fake scorers for the engine's tests: plain classes, registered per test."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import numpy as np

from scoring_core import ScorerContext


class MeanScorer:
    """The mean of each row: in [0, 1] whenever the features are."""

    def __init__(self, ctx: ScorerContext) -> None:
        self.ctx = ctx
        self.calls = 0
        self.closed = 0

    def score(self, X: np.ndarray) -> np.ndarray:
        self.calls += 1
        assert X.dtype == np.float32
        assert X.flags.c_contiguous
        return X.mean(axis=1)

    def close(self) -> None:
        self.closed += 1


class ConstantScorer:
    def __init__(self, ctx: ScorerContext) -> None:
        self.value = float(ctx.option("value", 0.25))
        self.rows_seen = 0

    def score(self, X: np.ndarray) -> np.ndarray:
        self.rows_seen += X.shape[0]
        return np.full(X.shape[0], self.value)


class NaNForHighFirstFeature:
    """NaN for rows whose first feature is above 0.5; the row mean otherwise."""

    def __init__(self, ctx: ScorerContext) -> None:
        self.rows_seen = 0

    def score(self, X: np.ndarray) -> np.ndarray:
        self.rows_seen += X.shape[0]
        out = X.mean(axis=1).astype(np.float64)
        out[X[:, 0] > 0.5] = np.nan
        return out


class RaisingScorer:
    def __init__(self, ctx: ScorerContext) -> None:
        pass

    def score(self, X: np.ndarray) -> np.ndarray:
        raise RuntimeError("backend exploded")


class RefusesToLoad:
    def __init__(self, ctx: ScorerContext) -> None:
        raise FileNotFoundError("model.onnx not found")


class WrongShapeScorer:
    def __init__(self, ctx: ScorerContext) -> None:
        pass

    def score(self, X: np.ndarray) -> np.ndarray:
        return np.zeros((X.shape[0], 2))


class OutOfRangeScorer:
    """Returns 1.5 for rows whose second feature is above 0.5."""

    def __init__(self, ctx: ScorerContext) -> None:
        pass

    def score(self, X: np.ndarray) -> np.ndarray:
        return np.where(X[:, 1] > 0.5, 1.5, 0.5)


class FailsOnClose:
    closed_order: ClassVar[list[str]] = []

    def __init__(self, ctx: ScorerContext) -> None:
        self.name = ctx.name

    def score(self, X: np.ndarray) -> np.ndarray:
        return np.full(X.shape[0], 0.5)

    def close(self) -> None:
        FailsOnClose.closed_order.append(self.name)
        raise OSError(f"cannot release {self.name}")


class CountingClose:
    """Records close calls in a shared list, to check order and count."""

    log: ClassVar[list[str]] = []
    lock = threading.Lock()

    def __init__(self, ctx: ScorerContext) -> None:
        self.name = ctx.name

    def score(self, X: np.ndarray) -> np.ndarray:
        return np.full(X.shape[0], 0.5)

    def close(self) -> None:
        with CountingClose.lock:
            CountingClose.log.append(self.name)


def built(engine: Any, step: str) -> Any:
    """The scorer object a step holds (white-box access for assertions)."""
    for candidate in engine._chain.steps:
        if candidate.name == step:
            return candidate.scorer
    raise KeyError(step)
