"""`scoring score --experiment`: each row scored by its unit's variant, a `variant` column,
the exposure log written, and rows without a unit id rejected."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from click.testing import CliRunner
from experiment_kit import FEATURES, experiment_file

from scoring_core.cli.main import cli
from scoring_core.experiments.assignment import Assigner


def files(tmp_path: Path) -> Path:
    # the shipped rules scorer, so the CLI's entry points are enough (no test plugin)
    for name, weight in (("control", 1.0), ("treatment", 0.5)):
        (tmp_path / f"{name}.yaml").write_text(
            json.dumps(
                {
                    "features": FEATURES,
                    "chain": [
                        {
                            "name": f"{name}_formula",
                            "scorer": "rules",
                            "options": {"terms": [{"feature": "f0", "weight": weight}]},
                        }
                    ],
                }
            )
        )
    return experiment_file(
        tmp_path,
        "experiment: cli-ab\nunit: user_id\nvariants:\n"
        "  - {name: control, config: control.yaml, weight: 0.5}\n"
        "  - {name: treatment, config: treatment.yaml, weight: 0.5}\n"
        "exposures: exposures.jsonl\n",
    )


def test_scoring_score_with_an_experiment_adds_the_variant_column(tmp_path: Path) -> None:
    experiment = files(tmp_path)
    source = tmp_path / "rows.csv"
    rows = [("u1", 0.1), ("u2", 0.2), ("", 0.3), ("u3", 0.4), ("u1", 0.5)]
    source.write_text("user_id,f0,f1,f2\n" + "".join(f"{u},{f},0.5,0.5\n" for u, f in rows))
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(
        cli, ["score", str(source), "-o", str(out), "--experiment", str(experiment)]
    )
    assert result.exit_code == 0, result.output
    scored = list(csv.DictReader(out.read_text().splitlines()))
    assigner = Assigner("cli-ab", [0.5, 0.5], 1.0, 2)
    names = ("control", "treatment")
    assert [(r["user_id"], r["variant"]) for r in scored] == [
        (u, names[assigner.assign(u)[0]]) for u in ("u1", "u2", "u3", "u1")
    ]
    assert [r["scorer"] for r in scored] == [f"{r['variant']}_formula" for r in scored]
    rejects = list(csv.DictReader((tmp_path / "out.rejects.csv").read_text().splitlines()))
    assert [(r["row"], r["column"], r["error"]) for r in rejects] == [
        ("3", "user_id", "an empty unit id")
    ]
    assert "experiment   cli-ab: 3 new exposure(s)" in result.stderr
    logged = [json.loads(line) for line in (tmp_path / "exposures.jsonl").read_text().splitlines()]
    assert [r["unit"] for r in logged] == ["u1", "u2", "u3"]


def test_a_missing_unit_column_stops_the_run(tmp_path: Path) -> None:
    experiment = files(tmp_path)
    source = tmp_path / "rows.csv"
    source.write_text("f0,f1,f2\n0.1,0.2,0.3\n")
    result = CliRunner().invoke(
        cli, ["score", str(source), "-o", str(tmp_path / "o.csv"), "--experiment", str(experiment)]
    )
    assert result.exit_code == 2
    assert "rows.csv has no unit column 'user_id' (the experiment's `unit:`)" in result.stderr


def test_experiment_and_config_together_are_a_usage_error(tmp_path: Path) -> None:
    experiment = files(tmp_path)
    result = CliRunner().invoke(
        cli,
        [
            "score",
            "x.csv",
            "--experiment",
            str(experiment),
            "--config",
            str(tmp_path / "control.yaml"),
        ],
    )
    assert result.exit_code == 2
    assert "give --experiment or --config, not both" in result.stderr


def test_metrics_of_an_experiment_run_cover_every_variant_and_the_exposures(
    tmp_path: Path,
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    experiment = files(tmp_path)
    source = tmp_path / "rows.csv"
    units = [f"u{i}" for i in range(40)]
    source.write_text("user_id,f0,f1,f2\n" + "".join(f"{u},0.5,0.5,0.5\n" for u in units))
    metrics = tmp_path / "run.prom"
    args = ["score", str(source), "-o", str(tmp_path / "out.csv"), "--experiment"]
    result = CliRunner().invoke(cli, [*args, str(experiment), "--metrics", str(metrics)])
    assert result.exit_code == 0, result.output
    samples = [
        s for family in text_string_to_metric_families(metrics.read_text()) for s in family.samples
    ]
    lines = (tmp_path / "exposures.jsonl").read_text().splitlines()
    logged = [json.loads(line)["variant"] for line in lines]
    exposures = {
        s.labels["variant"]: s.value for s in samples if s.name == "scoring_exposures_total"
    }
    assert exposures == {v: float(logged.count(v)) for v in ("control", "treatment")}
    assert all(exposures.values())  # 40 units: both variants got some
    served = {s.labels["step"]: s.value for s in samples if s.name == "scoring_rows_served_total"}
    assert served == {"control_formula": exposures["control"],
                      "treatment_formula": exposures["treatment"]}  # fmt: skip
