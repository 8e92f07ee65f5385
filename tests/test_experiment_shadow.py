"""A shadow chain scores beside the served one and never slows, fails or changes it."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np
import pytest
from experiment_kit import RELEASE, ROW, ab_experiment
from prometheus_client import CollectorRegistry, generate_latest

import scoring_core.metrics
from scoring_core.experiments import shadow as shadow_module


def served_figures(experiment, units: list[str]) -> tuple[list[float], float]:
    """The served scores, and the median seconds of one call."""
    scores, seconds = [], []
    for unit in units:
        started = time.perf_counter()
        scores.append(experiment.score(ROW, unit=unit).score)
        seconds.append(time.perf_counter() - started)
    return scores, statistics.median(seconds)


def pairs(folder: Path) -> list[dict]:
    path = folder / "exposures.shadow.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_shadows_pairs_are_logged_and_its_score_never_served(tmp_path: Path) -> None:
    with ab_experiment(tmp_path, shadow="mean") as experiment:
        for i in range(20):
            assert experiment.score(ROW, unit=f"u{i}").score in (0.25, 0.75)
        experiment.score_batch(np.stack([ROW, ROW]), units=["b1", "b2"])
    logged = pairs(tmp_path)
    assert len(logged) == 22
    assert {round(p["shadow_score"], 6) for p in logged} == {0.4}
    assert {p["served_score"] for p in logged} <= {0.25, 0.75}
    assert logged[0]["shadow_chain"] == "candidate"


@pytest.mark.parametrize("scorer", ["hangs", "raises"])
def test_a_shadow_that_hangs_or_raises_leaves_served_scores_and_latency_unchanged(
    tmp_path: Path, scorer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shadow_module, "MAX_WAITING", 5)
    units = [f"user-{i}" for i in range(300)]
    (tmp_path / "plain").mkdir()
    (tmp_path / "shadowed").mkdir()
    RELEASE.clear()
    try:
        with ab_experiment(tmp_path / "plain") as plain:
            plain_scores, _ = served_figures(plain, units)
            _, plain_latency = served_figures(plain, units)
        registry = CollectorRegistry()
        with ab_experiment(tmp_path / "shadowed", shadow=scorer) as shadowed:
            scoring_core.metrics.register_experiment(shadowed, registry)
            shadow_scores, _ = served_figures(shadowed, units)
            _, shadow_latency = served_figures(shadowed, units)
            deadline = time.monotonic() + 5
            while scorer == "raises" and time.monotonic() < deadline:
                if shadowed.diagnostics()["experiment"]["shadow"]["waiting"] == 0:
                    break
                time.sleep(0.01)
            diagnostics = shadowed.diagnostics()["experiment"]["shadow"]
            text = generate_latest(registry).decode()
    finally:
        RELEASE.set()
    assert shadow_scores == plain_scores
    assert shadow_latency < plain_latency * 2 + 50e-6, (shadow_latency, plain_latency)
    rows = diagnostics["rows"]
    if scorer == "hangs":
        assert rows["dropped"] > 0  # the queue filled behind the hung call
        assert rows["scored"] == 0
        dropped = rows["dropped"]
        sample = f'scoring_shadow_rows_total{{experiment="test-ab",outcome="dropped"}} {dropped}.0'
        assert sample in text
    else:
        assert rows["failed"] > 0
        assert 'scoring_shadow_rows_total{experiment="test-ab",outcome="failed"}' in text


def test_percent_shadows_that_share_of_units(tmp_path: Path) -> None:
    units = [f"u{i}" for i in range(2000)]
    with ab_experiment(tmp_path, shadow="mean", percent=10) as experiment:
        experiment.score_batch(np.tile(ROW, (len(units), 1)), units=units)
    share = len(pairs(tmp_path)) / len(units)
    assert 0.07 < share < 0.13


def test_the_report_gives_the_shadows_agreement_with_the_served_scores(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from scoring_core.cli.main import cli

    units = [f"u{i}" for i in range(40)]
    with ab_experiment(tmp_path, shadow="mean") as experiment:
        for unit in units:
            experiment.score(ROW, unit=unit)
    (tmp_path / "outcomes.csv").write_text(
        "unit,called\n" + "".join(f"{u},{i % 2}\n" for i, u in enumerate(units))
    )
    result = CliRunner().invoke(
        cli,
        [
            "experiment",
            "report",
            "--exposures",
            str(tmp_path / "exposures.jsonl"),
            "--outcomes",
            str(tmp_path / "outcomes.csv"),
            "--shadow",
            str(tmp_path / "exposures.shadow.jsonl"),
            "--json",
        ],
    )
    shadow = json.loads(result.stdout)["shadow"]
    served = [experiment.assign(u) for u in units]
    expected_diff = sum(abs((0.25 if v == "control" else 0.75) - 0.4) for v in served) / 40
    assert shadow["pairs"] == 40
    assert shadow["chain"] == "candidate"
    assert shadow["mean_abs_diff"] == pytest.approx(expected_diff, abs=1e-6)
    assert shadow["pearson"] is None  # the shadow's score is constant here
    treated = sum(v == "treatment" for v in served)
    assert shadow["agreement"] == pytest.approx((40 - treated) / 40)  # 0.75 >= 0.70 > 0.4
