"""`scoring experiment report`: the split tested, means and lifts with CIs, served-by."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from scoring_core.cli.main import cli
from scoring_core.experiments.analysis import Z_95, chi2_sf


def write_log(path: Path, variants: list[tuple[str, str, str]], weights: dict[str, float]) -> None:
    """(unit, variant, scorer) per record."""
    with path.open("w") as out:
        for unit, variant, scorer in variants:
            record = {
                "ts": "2026-12-03T10:00:00.000Z",
                "experiment": "calling-score-ab",
                "unit": unit,
                "variant": variant,
                "hash_version": 2,
                "bucket": 0.5,
                "weights": weights,
                "scorer": scorer,
                "chain": variant,
                "provenance": None,
            }
            out.write(json.dumps(record) + "\n")


def write_outcomes(path: Path, outcomes: dict[str, float]) -> None:
    path.write_text("user_id,called\n" + "".join(f"{u},{v}\n" for u, v in outcomes.items()))


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["experiment", "report", *args])
    return result.exit_code, result.stdout, result.stderr


def test_a_skewed_exposure_log_is_flagged_as_a_sample_ratio_mismatch(tmp_path: Path) -> None:
    log = tmp_path / "exposures.jsonl"
    records = [(f"c{i}", "formula", "formula") for i in range(600)]
    records += [(f"t{i}", "neural", "neural") for i in range(400)]
    write_log(log, records, {"formula": 0.5, "neural": 0.5})
    write_outcomes(tmp_path / "outcomes.csv", {f"c{i}": i % 2 for i in range(600)})
    code, out, err = run(
        "--exposures", str(log), "--outcomes", str(tmp_path / "outcomes.csv"), "--unit", "user_id"
    )
    assert code == 1
    assert "SAMPLE RATIO MISMATCH: chi2 40.00, p 2.5e-10 < 0.001" in err
    assert "sample ratio: chi2 40.00, df 1, p 2.54e-10: MISMATCH" in out
    code, out, _ = run(
        "--exposures",
        str(log),
        "--outcomes",
        str(tmp_path / "outcomes.csv"),
        "--unit",
        "user_id",
        "--json",
    )
    srm = json.loads(out)["srm"]
    assert srm["ok"] is False
    assert srm["chi2"] == pytest.approx(40.0)


def test_a_split_that_follows_its_weights_passes(tmp_path: Path) -> None:
    log = tmp_path / "exposures.jsonl"
    records = [(f"c{i}", "formula", "formula") for i in range(205)]
    records += [(f"t{i}", "neural", "neural") for i in range(795)]
    write_log(log, records, {"formula": 0.2, "neural": 0.8})
    write_outcomes(tmp_path / "o.csv", {f"c{i}": 1 for i in range(3)})
    code, out, _ = run(
        "--exposures",
        str(log),
        "--outcomes",
        str(tmp_path / "o.csv"),
        "--unit",
        "user_id",
        "--json",
    )
    report = json.loads(out)
    assert code == 0
    assert report["srm"]["ok"] is True
    assert [v["expected_share"] for v in report["variants"]] == [0.2, 0.8]
    assert [v["observed_share"] for v in report["variants"]] == [0.205, 0.795]


def test_means_lift_and_cis_match_a_hand_computation(tmp_path: Path) -> None:
    log = tmp_path / "exposures.jsonl"
    control = {"c1": 1, "c2": 0, "c3": 0, "c4": 1}  # mean 0.5, s^2 = 1/3
    treatment = {"t1": 1, "t2": 1, "t3": 1, "t4": 0}  # mean 0.75, s^2 = 1/4
    records = [(u, "formula", "formula") for u in control]
    records += [(u, "neural", "neural") for u in treatment]
    write_log(log, records, {"formula": 0.5, "neural": 0.5})
    write_outcomes(tmp_path / "o.csv", {**control, **treatment})
    _, out, _ = run(
        "--exposures",
        str(log),
        "--outcomes",
        str(tmp_path / "o.csv"),
        "--unit",
        "user_id",
        "--json",
    )
    formula, neural = json.loads(out)["variants"]
    se_c, se_t = math.sqrt((1 / 3) / 4), math.sqrt(0.25 / 4)
    assert formula["mean"] == 0.5
    assert formula["ci_low"] == pytest.approx(0.5 - 1.959964 * se_c, abs=1e-6)
    assert formula["ci_high"] == pytest.approx(0.5 + 1.959964 * se_c, abs=1e-6)
    assert formula["lift"] is None
    assert neural["mean"] == 0.75
    assert neural["lift"] == pytest.approx(0.5)  # 0.75 / 0.5 - 1
    lift_se = math.sqrt(se_t**2 / 0.5**2 + 0.75**2 * se_c**2 / 0.5**4)
    assert neural["lift_ci_low"] == pytest.approx(0.5 - Z_95 * lift_se)
    assert neural["lift_ci_high"] == pytest.approx(0.5 + Z_95 * lift_se)
    assert neural["diff"] == pytest.approx(0.25)
    assert neural["diff_ci_high"] - neural["diff"] == pytest.approx(
        Z_95 * math.sqrt(se_c**2 + se_t**2)
    )
    assert json.loads(out)["binary"] is True


def test_a_continuous_metric_is_reported_with_its_own_spread(tmp_path: Path) -> None:
    log = tmp_path / "exposures.jsonl"
    write_log(
        log,
        [
            ("a", "formula", "formula"),
            ("b", "formula", "formula"),
            ("c", "neural", "neural"),
            ("d", "neural", "neural"),
        ],
        {"formula": 0.5, "neural": 0.5},
    )
    (tmp_path / "o.jsonl").write_text(
        "".join(
            json.dumps({"unit": u, "minutes": v}) + "\n"
            for u, v in [("a", 2.0), ("b", 4.0), ("c", 5.0), ("d", 7.0)]
        )
    )
    _, out, _ = run("--exposures", str(log), "--outcomes", str(tmp_path / "o.jsonl"), "--json")
    report = json.loads(out)
    assert report["metric"] == "minutes"
    assert report["binary"] is False
    formula, neural = report["variants"]
    assert (formula["mean"], neural["mean"]) == (3.0, 6.0)
    assert formula["ci_high"] - 3.0 == pytest.approx(Z_95 * math.sqrt(2.0 / 2))
    assert neural["lift"] == pytest.approx(1.0)


def test_a_variant_that_fell_back_is_reported_as_served_by_both_steps(tmp_path: Path) -> None:
    log = tmp_path / "exposures.jsonl"
    records = [(f"c{i}", "formula", "formula") for i in range(50)]
    records += [(f"t{i}", "neural", "neural" if i < 35 else "formula") for i in range(50)]
    write_log(log, records, {"formula": 0.5, "neural": 0.5})
    write_outcomes(tmp_path / "o.csv", {"c1": 1})
    code, out, _ = run(
        "--exposures", str(log), "--outcomes", str(tmp_path / "o.csv"), "--unit", "user_id"
    )
    assert code == 0
    neural_line = next(line for line in out.splitlines() if line.startswith("neural"))
    assert neural_line.endswith("neural 70.0%, formula 30.0%")
    _, out, _ = run(
        "--exposures",
        str(log),
        "--outcomes",
        str(tmp_path / "o.csv"),
        "--unit",
        "user_id",
        "--json",
    )
    assert json.loads(out)["variants"][1]["served_by"] == {"neural": 35, "formula": 15}


def test_a_missing_unit_column_names_the_columns_there_are(tmp_path: Path) -> None:
    log = tmp_path / "exposures.jsonl"
    write_log(log, [("a", "formula", "formula")], {"formula": 0.5, "neural": 0.5})
    write_outcomes(tmp_path / "o.csv", {"a": 1})
    code, _, err = run("--exposures", str(log), "--outcomes", str(tmp_path / "o.csv"))
    assert code == 2
    assert "has no unit column 'unit'; pass --unit COL (its columns: user_id, called)" in err


@pytest.mark.parametrize(
    ("chi2", "df"), [(0.5, 1), (3.84, 1), (40.0, 1), (7.0, 2), (12.3, 3), (150.0, 4), (0.0, 2)]
)
def test_the_chi_square_p_value_matches_scipy(chi2: float, df: int) -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    assert chi2_sf(chi2, df) == pytest.approx(scipy_stats.chi2.sf(chi2, df), rel=1e-9, abs=1e-300)


def test_the_normal_quantile_is_scipys() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    assert scipy_stats.norm.ppf(0.975) == pytest.approx(Z_95, rel=1e-12)
