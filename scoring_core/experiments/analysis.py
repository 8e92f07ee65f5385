"""The experiment report: exposures joined to outcomes, per variant, with the split tested.

Methods (numpy and the standard library; no scipy):

- units per variant are the exposure log's units, each counted once (its first record);
- the sample-ratio-mismatch test is Pearson's chi-square of those counts against the
  weights the records carry (``k - 1`` degrees of freedom); its p-value is the regularised
  upper incomplete gamma function ``Q(df / 2, chi2 / 2)`` (series and continued fraction,
  as in Numerical Recipes' ``gammq``); p < 0.001 is a mismatch;
- the mean outcome of a variant has a 95% normal-approximation interval,
  ``mean +- 1.96 * s / sqrt(n)`` (``s`` with ``n - 1``; for a 0/1 metric this is the
  Wald interval of a proportion);
- the difference from the control has Welch's standard error
  ``sqrt(s_t^2 / n_t + s_c^2 / n_c)``; the relative lift ``mean_t / mean_c - 1`` has the
  delta method's ``sqrt(se_t^2 / mean_c^2 + mean_t^2 * se_c^2 / mean_c^4)``.

Units without an outcome are counted in ``units`` and left out of the means (their
count is ``outcomes``). With the shadow's pairs: how far the shadow's scores are from the
served ones (mean |diff|, Pearson, share agreeing at 0.70).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scoring_core import stats
from scoring_core.io import DataFileError, format_of

__all__ = [
    "SRM_P_VALUE",
    "Z_95",
    "analyse",
    "chi2_sf",
    "first_exposures",
    "read_jsonl",
    "read_outcomes",
]

SRM_P_VALUE = 0.001
Z_95 = 1.959963984540054  # the normal distribution's 97.5% quantile
_EPS = 1e-15


def _gamma_q(a: float, x: float) -> float:
    """The regularised upper incomplete gamma function Q(a, x)."""
    if x <= 0:
        return 1.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:  # series for P(a, x)
        term = total = 1.0 / a
        denominator = a
        for _ in range(10_000):
            denominator += 1
            term *= x / denominator
            total += term
            if abs(term) < abs(total) * _EPS:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    # Lentz's continued fraction for Q(a, x)
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < _EPS:
            break
    return min(1.0, math.exp(log_front) * h)


def chi2_sf(chi2: float, df: int) -> float:
    """P(X >= chi2) for X ~ chi-square with ``df`` degrees of freedom."""
    return _gamma_q(df / 2, chi2 / 2)


# -- reading --------------------------------------------------------------------------------


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Every record of a JSON Lines file; a line that is not a JSON object is an error."""
    records = []
    with Path(path).open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFileError(
                    f"{path}:{number}: not JSON ({exc.msg})", file=str(path)
                ) from None
            if not isinstance(record, dict):
                raise DataFileError(f"{path}:{number}: not a JSON object", file=str(path))
            records.append(record)
    return records


def first_exposures(
    records: Iterable[Mapping[str, Any]], experiment: str | None = None
) -> tuple[str, list[Mapping[str, Any]]]:
    """The experiment's key and each unit's first record (in the order units came)."""
    seen: dict[str, Mapping[str, Any]] = {}
    keys: set[str] = set()
    for record in records:
        key = str(record.get("experiment"))
        if experiment is not None and key != experiment:
            continue
        keys.add(key)
        seen.setdefault(str(record["unit"]), record)
    if not seen:
        raise DataFileError(
            "no exposure records"
            + (f" of experiment {experiment!r}" if experiment is not None else "")
        )
    if len(keys) > 1:
        raise DataFileError(
            f"the exposures are of {len(keys)} experiments ({', '.join(sorted(keys))}); "
            "pick one with --experiment KEY"
        )
    return keys.pop(), list(seen.values())


def read_outcomes(
    path: str, unit: str | None, metric: str | None
) -> tuple[dict[str, float], str, str]:
    """``{unit: outcome}`` from a CSV, JSON Lines or Parquet file, and the two column names.

    ``unit`` defaults to a column named ``unit``, ``metric`` to the one other column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    fmt = format_of(path)
    try:
        if fmt == "csv":
            import pyarrow.csv as pacsv

            table = pacsv.read_csv(path)
        elif fmt == "jsonl":
            import pyarrow.json as pajson

            table = pajson.read_json(path)
        elif fmt == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        else:
            raise DataFileError(f"{path}: the outcomes are a .csv, .jsonl or .parquet file")
    except (OSError, pa.ArrowException) as exc:
        raise DataFileError(f"{path}: cannot read the outcomes ({exc})", file=path) from None
    columns = list(table.column_names)
    unit = unit or ("unit" if "unit" in columns else None)
    if unit is None or unit not in columns:
        raise DataFileError(
            f"{path} has no unit column {unit or 'unit'!r}; pass --unit COL (its columns: "
            f"{', '.join(columns)})",
            file=path,
        )
    if metric is None:
        others = [c for c in columns if c != unit]
        if len(others) != 1:
            raise DataFileError(f"{path}: pass --metric COL, one of {', '.join(others)}", file=path)
        metric = others[0]
    if metric not in columns:
        raise DataFileError(
            f"{path} has no metric column {metric!r} (its columns: {', '.join(columns)})",
            file=path,
        )
    try:
        values = pc.cast(table[metric], pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowException:
        raise DataFileError(f"{path}: the metric {metric!r} is not numbers", file=path) from None
    units = pc.cast(table[unit], pa.string()).to_pylist()
    outcomes: dict[str, float] = {}
    for u, value in zip(units, values.tolist(), strict=True):
        if u is not None and value is not None and math.isfinite(value):
            outcomes.setdefault(u, float(value))
    return outcomes, unit, metric


# -- the numbers ----------------------------------------------------------------------------


def _mean_ci(values: np.ndarray) -> tuple[float | None, float | None, float | None, float | None]:
    """(mean, low, high, standard error); Nones when there are no values."""
    n = values.shape[0]
    if n == 0:
        return None, None, None, None
    mean = float(values.mean())
    se = float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    if not math.isfinite(se):
        return mean, None, None, None
    return mean, mean - Z_95 * se, mean + Z_95 * se, se


def analyse(
    records: Sequence[Mapping[str, Any]],
    outcomes: Mapping[str, float],
    *,
    experiment: str,
    metric: str,
    shadow_pairs: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The report (docs/experiments.md shows its JSON); ``records`` are first exposures."""
    weights: dict[str, float] = {}
    for record in records:
        for name, weight in (record.get("weights") or {}).items():
            weights.setdefault(str(name), float(weight))
    for record in records:
        weights.setdefault(str(record["variant"]), 0.0)
    names = list(weights)
    units = {name: 0 for name in names}
    served: dict[str, dict[str, int]] = {name: {} for name in names}
    values: dict[str, list[float]] = {name: [] for name in names}
    for record in records:
        name = str(record["variant"])
        units[name] += 1
        step = str(record.get("scorer"))
        served[name][step] = served[name].get(step, 0) + 1
        outcome = outcomes.get(str(record["unit"]))
        if outcome is not None:
            values[name].append(outcome)
    total = sum(units.values())
    weight_sum = sum(weights.values()) or 1.0
    all_values = [v for name in names for v in values[name]]
    binary = bool(all_values) and all(v in (0.0, 1.0) for v in all_values)
    rows = []
    control = names[0]
    control_stats = _mean_ci(np.array(values[control], dtype=np.float64))
    for name in names:
        array = np.array(values[name], dtype=np.float64)
        mean, low, high, se = _mean_ci(array)
        row: dict[str, Any] = {
            "name": name,
            "units": units[name],
            "outcomes": int(array.shape[0]),
            "observed_share": units[name] / total if total else None,
            "expected_share": weights[name] / weight_sum,
            "mean": mean,
            "ci_low": low,
            "ci_high": high,
            "lift": None,
            "lift_ci_low": None,
            "lift_ci_high": None,
            "diff": None,
            "diff_ci_low": None,
            "diff_ci_high": None,
            "served_by": dict(sorted(served[name].items(), key=lambda kv: -kv[1])),
        }
        c_mean, _, _, c_se = control_stats
        if (
            name != control
            and mean is not None
            and se is not None
            and c_mean is not None
            and c_se is not None
        ):
            diff_se = math.sqrt(se**2 + c_se**2)
            row["diff"] = mean - c_mean
            row["diff_ci_low"] = row["diff"] - Z_95 * diff_se
            row["diff_ci_high"] = row["diff"] + Z_95 * diff_se
            if c_mean != 0:
                lift = mean / c_mean - 1
                lift_se = math.sqrt(se**2 / c_mean**2 + mean**2 * c_se**2 / c_mean**4)
                row["lift"] = lift
                row["lift_ci_low"] = lift - Z_95 * lift_se
                row["lift_ci_high"] = lift + Z_95 * lift_se
        rows.append(row)
    return {
        "experiment": experiment,
        "metric": metric,
        "binary": binary,
        "units": total,
        "outcomes": len(all_values),
        "variants": rows,
        "srm": srm(units, weights),
        "shadow": None if shadow_pairs is None else shadow_agreement(shadow_pairs),
        "method": (
            "95% CIs by the normal approximation; difference: Welch's standard error; "
            "relative lift: the delta method; SRM: Pearson's chi-square against the weights"
        ),
    }


def srm(units: Mapping[str, int], weights: Mapping[str, float]) -> dict[str, Any]:
    """Pearson's chi-square of the units per variant against the weights."""
    total = sum(units.values())
    weight_sum = sum(weights.values()) or 1.0
    chi2 = 0.0
    for name, observed in units.items():
        expected = total * weights.get(name, 0.0) / weight_sum
        if expected > 0:
            chi2 += (observed - expected) ** 2 / expected
        elif observed:
            chi2 = math.inf
    df = max(len(units) - 1, 1)
    p_value = 0.0 if math.isinf(chi2) else chi2_sf(chi2, df)
    return {"chi2": chi2, "df": df, "p_value": p_value, "ok": p_value >= SRM_P_VALUE}


def shadow_agreement(pairs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    served = np.array([float(p["served_score"]) for p in pairs], dtype=np.float64)
    shadow = np.array([float(p["shadow_score"]) for p in pairs], dtype=np.float64)
    return {
        "pairs": int(served.shape[0]),
        "chain": pairs[0].get("shadow_chain") if pairs else None,
        "mean_abs_diff": float(np.abs(served - shadow).mean()) if served.size else None,
        "pearson": stats.pearson(served, shadow),
        "agreement": stats.agreement(served, shadow, stats.DEFAULT_THRESHOLD),
        "threshold": stats.DEFAULT_THRESHOLD,
    }
