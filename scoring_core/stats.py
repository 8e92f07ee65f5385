"""Statistics for comparing scores: correlation, agreement, error, AUC.

Numpy only (no scipy): Spearman correlation is Pearson's on average ranks, AUC is the
Mann-Whitney statistic on average ranks. A metric that is undefined on the data (a
constant score, a label with one class) is ``None``, never NaN, so a report stays valid
JSON. ``scoring compare`` uses them, and so can an experiment's analysis.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_THRESHOLD",
    "agreement",
    "auc",
    "average_ranks",
    "is_binary",
    "pearson",
    "spearman",
]

DEFAULT_THRESHOLD = 0.70  # the app's "called" cut
Floats = npt.NDArray[np.float64]


def average_ranks(values: Floats) -> Floats:
    """1-based ranks; tied values share the average of their ranks (scipy's 'average')."""
    n = values.shape[0]
    order = np.argsort(values, kind="mergesort")
    inverse = np.empty(n, dtype=np.intp)
    inverse[order] = np.arange(n)
    ordered = values[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    group = np.cumsum(starts)[inverse]
    bounds = np.r_[np.flatnonzero(starts), n]
    ranks: Floats = 0.5 * (bounds[group] + bounds[group - 1] + 1)
    return ranks


def pearson(a: Floats, b: Floats) -> float | None:
    """Pearson correlation; None when either side is constant or there are < 2 rows."""
    if a.shape[0] < 2:
        return None
    da, db = a - a.mean(), b - b.mean()
    denominator = float(np.sqrt(np.dot(da, da) * np.dot(db, db)))
    if denominator == 0.0 or not np.isfinite(denominator):
        return None
    return float(np.clip(np.dot(da, db) / denominator, -1.0, 1.0))


def spearman(a: Floats, b: Floats) -> float | None:
    """Spearman rank correlation (Pearson on average ranks)."""
    if a.shape[0] < 2:
        return None
    return pearson(average_ranks(a), average_ranks(b))


def agreement(a: Floats, b: Floats, threshold: float) -> float | None:
    """Share of rows where both sides make the same decision (score >= threshold)."""
    if a.shape[0] == 0:
        return None
    return float(np.mean((a >= threshold) == (b >= threshold)))


def auc(scores: Floats, labels: Floats) -> float | None:
    """ROC AUC for a 0/1 label; None unless both classes are present."""
    positive = labels == 1
    n_pos = int(positive.sum())
    n_neg = int(labels.shape[0] - n_pos)
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = average_ranks(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def is_binary(labels: Floats) -> bool:
    return labels.shape[0] > 0 and bool(np.isin(labels, (0.0, 1.0)).all())
