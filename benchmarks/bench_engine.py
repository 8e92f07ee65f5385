"""The engine's own overhead per call, against calling the same scorer directly.

    python benchmarks/bench_engine.py [--features 39] [--repeat 7]

A trivial in-memory scorer (it returns a slice of its input) isolates what the
engine adds: input checks, output checks, counters, provenance. Every figure is
the best of several runs, and the overhead is measured against the raw call in
the same run, because this machine is noisy.
"""

from __future__ import annotations

import argparse
import os
import timeit
from collections.abc import Callable
from typing import Any

import numpy as np

import scoring_core
from scoring_core.testing import engine_for, scorer_plugin


class FirstColumn:
    """Returns the first feature of each row: about the cheapest scorer possible."""

    def __init__(self, ctx: scoring_core.ScorerContext) -> None:
        pass

    def score(self, X: np.ndarray) -> np.ndarray:
        return X[:, 0]


def best_us(fn: Callable[[], Any], number: int, repeat: int) -> float:
    """Best time per call in microseconds over ``repeat`` runs of ``number`` calls."""
    fn()  # warm up
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=39)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=20000)
    args = parser.parse_args(argv)

    os.environ.setdefault("SCORING_LOAD_PLUGINS", "")
    plugin = scorer_plugin("first", FirstColumn)
    names = [f"f{i}" for i in range(args.features)]
    rng = np.random.default_rng(0)
    row = rng.random(args.features).astype(np.float32)
    row_dict = dict(zip(names, row.tolist(), strict=True))
    batch = rng.random((1000, args.features)).astype(np.float32)
    scorer = FirstColumn(None)  # type: ignore[arg-type]
    X1 = row.reshape(1, -1)

    chain = [{"name": "only", "scorer": "first"}]
    with engine_for(chain, plugins=[plugin], features=names, output_range=[0, 1]) as engine:
        n, r = args.number, args.repeat
        figures = {
            "raw scorer, 1 row": best_us(lambda: scorer.score(X1), n, r),
            "engine.score(array)": best_us(lambda: engine.score(row), n, r),
            "engine.score(dict)": best_us(lambda: engine.score(row_dict), n, r),
            "raw scorer, 1k rows": best_us(lambda: scorer.score(batch), n // 10, r),
            "engine.score_batch(1k)": best_us(lambda: engine.score_batch(batch), n // 10, r),
        }
    raw1, raw1k = figures["raw scorer, 1 row"], figures["raw scorer, 1k rows"]
    print(f"{'what':<26}{'us/call':>10}{'overhead us':>14}")
    for name, value in figures.items():
        base = raw1k if "1k" in name else raw1
        overhead = "" if name.startswith("raw") else f"{value - base:14.2f}"
        print(f"{name:<26}{value:10.2f}{overhead}")
    return figures


if __name__ == "__main__":
    main()
