"""What an experiment adds to one row's score: ``exp.score(row, unit=...)`` against
``engine.score(row)`` on the same chain, exposures on.

    python benchmarks/bench_experiment.py [--number 2000] [--blocks 41]

The experiment sends every unit to its `neural` variant (weight 1; the control, weight 0,
is the formula), a chain built from the shipped `scoring.yaml`, so both sides run the
same ONNX model; the engine side is that variant's own engine. Blocks of ``number``
Calls alternate between the two sides, one of each back to back, and the figure is the
median of the paired differences (paired, because this machine is shared and noisy). Two cases:

- returning units: each unit was seen before (the assignment is remembered, nothing is
  logged): what a service pays for most calls;
- new units: each call is a unit's first exposure (the hash is computed, and an exposure
  record is queued for the writer thread): the worst case.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import scoring_core

ROOT = Path(__file__).resolve().parents[1]
TARGET_US = 3.0


def experiment_file(folder: Path) -> Path:
    path = folder / "bench-ab.yaml"
    path.write_text(
        "experiment: bench-ab\nunit: user_id\nvariants:\n"
        f"  - {{name: formula, config: {ROOT / 'examples/experiment/formula.yaml'}, weight: 0}}\n"
        f"  - {{name: neural, config: {ROOT / 'scoring.yaml'}, weight: 1}}\n"
        f"exposures: {folder / 'exposures.jsonl'}\n"
    )
    return path


def paired_median_us(
    engine_call: Callable[[], object],
    experiment_call: Callable[[], object],
    number: int,
    blocks: int,
) -> tuple[float, float, float]:
    """(engine us/call, experiment us/call, median of the paired differences, in us).

    Each pair is one call of each side, back to back, in alternating order; the median of
    ``number * blocks`` pairs ignores the calls another process interrupted (this machine
    is shared, and busy)."""
    clock = time.perf_counter_ns
    engine_ns, experiment_ns, differences = [], [], []
    for i in range(number * blocks):
        if i % 2:
            t0 = clock()
            engine_call()
            t1 = clock()
            experiment_call()
            t2 = clock()
            e, x = t1 - t0, t2 - t1
        else:
            t0 = clock()
            experiment_call()
            t1 = clock()
            engine_call()
            t2 = clock()
            x, e = t1 - t0, t2 - t1
        engine_ns.append(e)
        experiment_ns.append(x)
        differences.append(x - e)
    return (
        statistics.median(engine_ns) / 1e3,
        statistics.median(experiment_ns) / 1e3,
        statistics.median(differences) / 1e3,
    )


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=2000, help="pairs per block")
    parser.add_argument("--blocks", type=int, default=20)
    args = parser.parse_args(argv)
    row = np.random.default_rng(0).random(39).astype(np.float32)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        with scoring_core.Experiment.from_yaml(experiment_file(Path(folder))) as experiment:
            engine = experiment.engines["neural"]
            returning = [f"user-{i}" for i in range(1000)]
            for unit in returning:
                experiment.score(row, unit=unit)
            cycle = itertools.cycle(returning)
            # made beforehand, so that making the ids is not counted
            fresh = iter([f"new-user-{i:09d}" for i in range(args.number * args.blocks + 10)])
            for case, units in (("returning units", cycle), ("new units", fresh)):
                e, x, d = paired_median_us(
                    lambda: engine.score(row),
                    lambda units=units: experiment.score(row, unit=next(units)),
                    args.number,
                    args.blocks,
                )
                figures[case] = d
                figures[f"{case}: engine"] = e
                figures[f"{case}: experiment"] = x
            written = experiment.diagnostics()["experiment"]["exposures"]
        exposures = sum(written["written"].values()) + written["waiting"]
    print(
        f"{'case':<18}{'engine us':>11}{'exp us':>9}{'added us (paired median)':>27}{'target':>9}"
    )
    for case in ("returning units", "new units"):
        e, x, d = figures[f"{case}: engine"], figures[f"{case}: experiment"], figures[case]
        verdict = "ok" if d <= TARGET_US else "OVER"
        print(f"{case:<18}{e:11.2f}{x:9.2f}{d:27.2f}{f'<= {TARGET_US:g} {verdict}':>9}")
    print(f"exposure records logged: {exposures:,}")
    return figures


if __name__ == "__main__":
    main()
