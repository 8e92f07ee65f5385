"""Scoring through an experiment: each unit's variant, every engine promise kept, and one
exposure record per first exposure, written off the scoring path."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from experiment_kit import PLUGIN, ROW, ab_experiment, chain_file, experiment_file, step
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import scoring_core
import scoring_core.metrics
from scoring_core import EngineClosedError, Experiment, InputError
from scoring_core.experiments.exposures import EXPOSURE_FIELDS


def exposures(folder: Path) -> list[dict[str, Any]]:
    path = folder / "exposures.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_unit_is_scored_by_its_variants_chain_and_says_which(tmp_path: Path) -> None:
    with ab_experiment(tmp_path) as experiment:
        for unit in (f"user-{i}" for i in range(50)):
            r = experiment.score(ROW, unit=unit)
            variant = experiment.assign(unit)
            assert r.variant == variant
            assert (r.score, r.scorer) == (
                (0.25, "low") if variant == "control" else (0.75, "high")
            )
            assert isinstance(r, scoring_core.ScoreResult)


def test_the_unit_may_be_a_field_of_the_row(tmp_path: Path) -> None:
    with ab_experiment(tmp_path) as experiment:
        r = experiment.score({"user_id": "user-7", "f0": 0.1, "f1": 0.2, "f2": 0.3})
        assert r.variant == experiment.assign("user-7")
        assert experiment.score(ROW, unit=7).variant == experiment.assign("7")


def test_an_empty_or_missing_unit_id_is_an_input_error(tmp_path: Path) -> None:
    with ab_experiment(tmp_path) as experiment:
        with pytest.raises(InputError, match="an empty unit id"):
            experiment.score(ROW, unit="")
        with pytest.raises(
            InputError, match=r"no unit id: pass unit=\.\.\. or give the row a 'user_id'"
        ):
            experiment.score(ROW)
        with pytest.raises(InputError, match="row 1: an empty unit id"):
            experiment.score_batch(np.stack([ROW, ROW]), units=["a", ""])


def test_fallbacks_inside_a_variant_are_kept(tmp_path: Path) -> None:
    chain_file(tmp_path, "control", step("low", "constant", value=0.25))
    chain_file(tmp_path, "treatment", step("model", "raises"), step("formula", "mean"))
    path = experiment_file(
        tmp_path,
        "experiment: fb\nunit: user_id\nvariants:\n"
        "  - {name: control, config: control.yaml, weight: 0.0}\n"
        "  - {name: treatment, config: treatment.yaml, weight: 1.0}\n"
        "exposures: exposures.jsonl\n",
    )
    with Experiment.from_yaml(path, plugins=[PLUGIN]) as experiment:
        r = experiment.score(ROW, unit="u1")
        assert (r.variant, r.scorer) == ("treatment", "formula")
        assert [f.step for f in r.fallbacks] == ["model"]
        b = experiment.score_batch(np.stack([ROW, ROW]), units=["u2", "u3"])
        assert b.scorers.tolist() == ["formula", "formula"]
        assert [[f.step for f in row] for row in b.fallbacks] == [["model"], ["model"]]
        diagnostics = experiment.diagnostics()
        assert diagnostics["chains"]["treatment"]["steps"][0]["name"] == "model"
    assert [e["scorer"] for e in exposures(tmp_path)] == ["formula"] * 3


def test_a_unit_outside_coverage_is_scored_by_the_control_and_logs_nothing(tmp_path: Path) -> None:
    with ab_experiment(tmp_path, coverage=0.2) as experiment:
        outside = next(f"u{i}" for i in range(100) if experiment.assign(f"u{i}") is None)
        r = experiment.score(ROW, unit=outside)
        assert (r.variant, r.score, r.scorer) == (None, 0.25, "low")
    assert exposures(tmp_path) == []


def test_score_batch_gives_each_row_its_units_variant(tmp_path: Path) -> None:
    units = [f"user-{i}" for i in range(200)]
    rows = np.random.default_rng(1).random((200, 3)).astype(np.float32)
    with ab_experiment(tmp_path, weights=(0.3, 0.7)) as experiment:
        b = experiment.score_batch(rows, units=units)
        expected = [experiment.assign(u) for u in units]
        assert b.variants.tolist() == expected
        assert b.scores.tolist() == [0.25 if v == "control" else 0.75 for v in expected]
        assert b.scorers.tolist() == ["low" if v == "control" else "high" for v in expected]
        frame = pd.DataFrame(rows, columns=["f0", "f1", "f2"]).assign(user_id=units)
        assert experiment.score_batch(frame).variants.tolist() == expected


def test_one_record_per_first_exposure_with_every_field(tmp_path: Path) -> None:
    with ab_experiment(tmp_path, weights=(0.2, 0.8)) as experiment:
        for _ in range(3):
            for unit in ("a", "b", "c"):
                experiment.score(ROW, unit=unit)
        experiment.score_batch(np.stack([ROW] * 3), units=["a", "d", "d"])
    records = exposures(tmp_path)
    assert [r["unit"] for r in records] == ["a", "b", "c", "d"]
    first = records[0]
    assert tuple(first) == EXPOSURE_FIELDS
    assert first["experiment"] == "test-ab"
    assert first["hash_version"] == 2
    assert first["weights"] == {"control": 0.2, "treatment": 0.8}
    assert first["ts"].endswith("Z")
    assert first["ts"][:2] == "20"
    assert first["variant"] == experiment.assign("a")
    assert first["chain"] == first["variant"]  # the chain's name: its file's stem
    assert first["bucket"] == experiment.bucket("a")


def test_exposures_of_single_rows_and_batches_carry_the_serving_chains_provenance(
    tmp_path: Path,
) -> None:
    with ab_experiment(tmp_path) as experiment:
        experiment.score(ROW, unit="a")
        batch = experiment.score_batch(np.stack([ROW] * 4), units=["b", "c", "d", "e"])
        expected = {
            "a": experiment.engines[experiment.assign("a") or "control"].score(ROW).provenance
        }
        for row, unit in enumerate(["b", "c", "d", "e"]):
            origin = batch.provenance_of(row)
            assert origin is not None
            assert origin.chain == batch.variants[row]
            expected[unit] = origin
    records = {r["unit"]: r for r in exposures(tmp_path)}
    assert set(records) == set(expected)
    for unit, origin in expected.items():
        assert origin is not None
        assert records[unit]["provenance"] == origin.as_dict()
        assert records[unit]["provenance"]["chain"] == records[unit]["chain"]


def test_exposures_are_written_within_about_a_second_without_a_close(tmp_path: Path) -> None:
    with ab_experiment(tmp_path) as experiment:
        experiment.score(ROW, unit="early")
        deadline = time.monotonic() + 3
        while not exposures(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [r["unit"] for r in exposures(tmp_path)] == ["early"]


def test_nothing_logged_is_lost_on_a_clean_close(tmp_path: Path) -> None:
    units = [f"user-{i}" for i in range(20_000)]
    rows = np.tile(ROW, (len(units), 1))
    with ab_experiment(tmp_path) as experiment:
        experiment.score_batch(rows, units=units)
    assert len(exposures(tmp_path)) == 20_000


class Collect:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[dict[str, Any]]]] = []

    @scoring_core.hookimpl
    def scoring_exposures(self, experiment: str, records: Any) -> None:
        self.calls.append((experiment, [dict(r) for r in records]))


def test_a_plugin_receives_the_exposure_records(tmp_path: Path) -> None:
    sink = Collect()
    with ab_experiment(tmp_path, plugins=(sink,)) as experiment:
        experiment.score(ROW, unit="a")
        experiment.score(ROW, unit="b")
    sent = [r for _, records in sink.calls for r in records]
    assert {name for name, _ in sink.calls} == {"test-ab"}
    assert sent == exposures(tmp_path)


def test_the_remembered_units_are_bounded(tmp_path: Path) -> None:
    with ab_experiment(tmp_path, extra="remember_units: 2\n") as experiment:
        for unit in ("a", "b", "a", "c", "a"):
            experiment.score(ROW, unit=unit)
    # a, b remembered; c empties the memory; a is then new again
    assert [r["unit"] for r in exposures(tmp_path)] == ["a", "b", "c", "a"]


def test_exposures_are_counted_in_metrics(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    with ab_experiment(tmp_path) as experiment:
        scoring_core.metrics.register_experiment(experiment, registry)
        for i in range(40):
            experiment.score(ROW, unit=f"u{i % 30}")
    from prometheus_client import generate_latest

    text = generate_latest(registry).decode()
    samples = {
        s.labels["variant"]: s.value
        for family in text_string_to_metric_families(text)
        if family.name == "scoring_exposures"
        for s in family.samples
        if s.name == "scoring_exposures_total"
    }
    by_variant = {"control": 0, "treatment": 0}
    for record in exposures(tmp_path):
        by_variant[record["variant"]] += 1
    assert samples == by_variant
    assert sum(samples.values()) == 30
    assert 'scoring_rows_served_total{chain="control",step="low"}' in text


def test_a_closed_experiment_refuses_to_score(tmp_path: Path) -> None:
    experiment = ab_experiment(tmp_path)
    experiment.close()
    experiment.close()  # idempotent
    with pytest.raises(EngineClosedError, match="the experiment is closed"):
        experiment.score(ROW, unit="a")
