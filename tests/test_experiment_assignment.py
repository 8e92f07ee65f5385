"""Assignment is GrowthBook's: its published vectors, and its SDK unit by unit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from experiment_kit import ab_experiment

from scoring_core.experiments.assignment import (
    Assigner,
    bucket_ranges,
    choose_variant,
    fnv1a32,
    gb_hash,
)

CASES = json.loads((Path(__file__).parent / "data" / "growthbook_cases.json").read_text())


@pytest.mark.parametrize(("seed", "unit", "version", "expected"), CASES["hash"])
def test_the_hash_matches_growthbooks_published_vectors(
    seed: str, unit: str, version: int, expected: float | None
) -> None:
    if expected is None:  # an unknown hash version: GrowthBook answers None, we refuse it
        with pytest.raises(ValueError, match="hash_version is 1 or 2"):
            gb_hash(seed, unit, version)
        return
    assert gb_hash(seed, unit, version) == expected
    assert Assigner(seed, [1.0], 1.0, version).bucket(unit) == expected
    assert Assigner(seed, [1.0], 1.0, version, fast=False).bucket(unit) == expected


def _valid(args: list) -> bool:
    count, coverage, weights = args
    return (
        0 <= coverage <= 1
        and weights is not None
        and len(weights) == count
        and abs(sum(weights) - 1) < 1e-6
    ) or (weights is None and 0 <= coverage <= 1)


@pytest.mark.parametrize(
    ("name", "args", "expected"), [c for c in CASES["getBucketRange"] if _valid(c[1])]
)
def test_bucket_ranges_match_growthbooks_published_vectors(
    name: str, args: list, expected: list
) -> None:
    count, coverage, weights = args
    weights = weights or [1 / count] * count
    ranges = bucket_ranges(weights, coverage)
    assert [[round(a, 6), round(b, 6)] for a, b in ranges] == expected, name


def test_the_vectors_growthbook_would_silently_equalise_are_left_to_the_config_check() -> None:
    skipped = [c[0] for c in CASES["getBucketRange"] if not _valid(c[1])]
    assert "weights sum below 1" in skipped
    assert "negative coverage" in skipped


@pytest.mark.parametrize(("name", "bucket", "ranges", "expected"), CASES["chooseVariation"])
def test_choosing_a_variant_matches_growthbooks_published_vectors(
    name: str, bucket: float, ranges: list, expected: int
) -> None:
    assert choose_variant(bucket, [tuple(r) for r in ranges]) == expected, name


def test_fnv1a32_of_known_strings() -> None:
    assert fnv1a32("") == 0x811C9DC5
    assert fnv1a32("a") == 0xE40C292C  # the FNV reference value


SETTINGS = [
    ("calling-score-ab", [0.5, 0.5], 1.0, 2),
    ("calling-score-ab", [0.2, 0.8], 1.0, 2),
    ("seed-x", [0.1, 0.3, 0.6], 0.5, 2),
    ("other", [0.25, 0.25, 0.5], 0.8, 1),
    ("v1-seed", [0.5, 0.5], 1.0, 1),
]


@pytest.mark.parametrize(("seed", "weights", "coverage", "version"), SETTINGS)
def test_every_unit_gets_the_variant_the_growthbook_sdk_gives_it(
    seed: str, weights: list[float], coverage: float, version: int
) -> None:
    growthbook = pytest.importorskip("growthbook")
    variations = [f"v{i}" for i in range(len(weights))]
    mine = Assigner(seed, weights, coverage, version)
    pure = Assigner(seed, weights, coverage, version, fast=False)
    units = [f"user-{i}" for i in range(10_000)] + ["ünïcode-1", "ユーザー2"]
    disagreements = []
    for unit in units:
        gb = growthbook.GrowthBook(attributes={"user_id": unit})
        result = gb.run(
            growthbook.Experiment(
                key="k",
                variations=variations,
                weights=weights,
                coverage=coverage,
                hashVersion=version,
                seed=seed,
                hashAttribute="user_id",
            )
        )
        theirs = result.variationId if result.inExperiment else -1
        index, _ = mine.assign(unit)
        if index != theirs or pure.assign(unit)[0] != theirs:
            disagreements.append((unit, index, theirs))
    assert disagreements == []


def test_a_20_80_split_of_100000_units_is_within_3_standard_deviations() -> None:
    assigner = Assigner("split-check", [0.2, 0.8], 1.0, 2)
    n = 100_000
    first = sum(assigner.assign(f"unit-{i}")[0] == 0 for i in range(n))
    sd = (n * 0.2 * 0.8) ** 0.5
    assert abs(first - n * 0.2) < 3 * sd, (first, sd)


def test_coverage_leaves_units_out_in_proportion() -> None:
    assigner = Assigner("coverage", [0.5, 0.5], 0.3, 2)
    n = 20_000
    enrolled = sum(assigner.assign(f"u{i}")[0] >= 0 for i in range(n))
    sd = (n * 0.3 * 0.7) ** 0.5
    assert abs(enrolled - n * 0.3) < 4 * sd


def test_the_same_unit_gets_the_same_variant_in_another_process(tmp_path: Path) -> None:
    experiment = ab_experiment(tmp_path)
    with experiment:
        here = [experiment.assign(f"user-{i}") for i in range(200)]
    code = (
        "import sys; sys.path.insert(0, 'tests')\n"
        "from pathlib import Path\n"
        "from experiment_kit import PLUGIN\n"
        "from scoring_core import Experiment\n"
        f"e = Experiment.from_yaml({str(tmp_path / 'experiment.yaml')!r}, plugins=[PLUGIN])\n"
        "print(','.join(str(e.assign(f'user-{i}')) for i in range(200)))\n"
        "e.close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
        check=True,
    )
    assert done.stdout.strip().split(",") == [str(v) for v in here]
    assert set(here) == {"control", "treatment"}
