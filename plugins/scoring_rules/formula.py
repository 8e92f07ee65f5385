"""The compiled form of a rules formula, and how it scores a batch.

Every term is linear in the features except the ``|a_i - b_i|`` inside a similarity, so
the whole formula folds into

    score = clamp(offset + X @ weights + sum_k |X[:, j] - X[:, j + k]| @ coefficients_k)

``offset`` gathers the bias, the constants and the ``1`` of each ``1 - |a_i - b_i|``;
``weights`` the ``feature`` and ``mean`` terms; the absolute differences are grouped by
the distance ``k`` between their two columns. Pairing ``user_d`` with ``spot_d`` (columns
``d`` and ``d + 12``) is a single distance, and its differences come from one contiguous
subtraction of the flattened batch against itself shifted by ``k``: a fast vector loop,
where ``X[:, A] - X[:, B]`` would run a short loop per row. Differences that straddle two
rows are computed but never read, so a row's score depends on that row alone. Each
distinct distance costs one such pass (about 0.6 ms per 100k rows of 39 features); pairs
at many different distances cost about what gathering ``X[:, A]`` would.

A row's score depends on that row alone, bit for bit, whatever batch it sits in: the
subtractions and absolute values are elementwise (one IEEE rounding per element), and each
row's weighted sum is :func:`numpy.einsum` ``"ij,j->i"``, whose C loop sums one row at a
time in an order set by the row's width alone. A BLAS matrix-vector product
(``np.matmul``) does not: its order depends on the batch's shape, and a row scored alone
differed from the same row in a batch by one float32 ulp in about half the rows
(``engine.score`` against ``engine.score_batch``). einsum is slower than BLAS here (about
80 against 50 us per 16k rows of 15 columns) and still far above the 20 M rows/s bar.

Batches are scored in chunks of :data:`CHUNK_ROWS` rows, so the second pass over a chunk
finds it in cache. Sums run in float32 (the input's precision); the offset and the clamp
are applied in float64, so ``clamp`` bounds are met exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from scoring_rules.options import RulesOptions
from scoring_rules.resolve import FormulaError, resolve

__all__ = ["CHUNK_ROWS", "AbsoluteDifferences", "LinearFormula", "build_formula"]

CHUNK_ROWS = 16_384
"""Rows per pass: a chunk (2.5 MB at 39 features) and its scratch copy stay in cache."""

Float32Array = npt.NDArray[np.float32]
Float64Array = npt.NDArray[np.float64]


def _scalar(value: float) -> Float64Array:
    array = np.array(value, dtype=np.float64)
    array.flags.writeable = False
    return array


def _frozen(values: npt.ArrayLike) -> Float32Array:
    array = np.ascontiguousarray(values, dtype=np.float32)
    array.flags.writeable = False
    return array


@dataclass(frozen=True)
class AbsoluteDifferences:
    """``|X[:, j] - X[:, j + shift]| @ coefficients`` for ``j`` from ``first`` on."""

    shift: int
    first: int
    coefficients: Float32Array

    @property
    def stop(self) -> int:
        return self.first + len(self.coefficients)


@dataclass(frozen=True)
class LinearFormula:
    """A rules formula folded into one offset, one weight vector and absolute differences.

    ``weights`` covers the columns ``first .. first + len(weights) - 1`` (the span of
    features with a non-zero weight); it is empty when no ``feature`` or ``mean`` term
    has weight. Immutable, so one formula can score from many threads at once.
    """

    feature_names: tuple[str, ...]
    offset: float
    first: int
    weights: Float32Array
    differences: tuple[AbsoluteDifferences, ...]
    clamp: tuple[float, float] | None
    # 0-d arrays: a ufunc takes them about a microsecond faster than Python floats,
    # which is a tenth of the time of a single row
    _offset: Float64Array = field(init=False, repr=False, compare=False)
    _clamp: tuple[Float64Array, Float64Array] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_offset", _scalar(self.offset))
        bounds = None if self.clamp is None else (_scalar(self.clamp[0]), _scalar(self.clamp[1]))
        object.__setattr__(self, "_clamp", bounds)

    def evaluate(self, X: Float32Array) -> Float64Array:
        """Score a C-contiguous float32 batch of shape ``(n, len(feature_names))``."""
        n = X.shape[0]
        partial = np.empty(n, dtype=np.float32)
        scratch = None
        if self.differences and n:
            scratch = np.empty(min(n, CHUNK_ROWS) * X.shape[1], dtype=np.float32)
        if n <= CHUNK_ROWS:
            self._sum_chunk(X, partial, scratch)
        else:
            for start in range(0, n, CHUNK_ROWS):
                stop = min(start + CHUNK_ROWS, n)
                self._sum_chunk(X[start:stop], partial[start:stop], scratch)
        scores: Float64Array = np.add(partial, self._offset)  # float32 + float64 -> float64
        if self._clamp is not None:
            np.maximum(scores, self._clamp[0], out=scores)
            np.minimum(scores, self._clamp[1], out=scores)
        return scores

    def _sum_chunk(self, X: Float32Array, out: Float32Array, scratch: Float32Array | None) -> None:
        # einsum, not np.matmul: BLAS sums a row in an order that depends on the batch's
        # shape (see the module's doc); einsum reads the column slice of X as it is.
        if len(self.weights):
            np.einsum(
                "ij,j->i", X[:, self.first : self.first + len(self.weights)], self.weights, out=out
            )
        else:
            out.fill(0.0)
        if scratch is None:
            return
        rows, width = X.shape
        flat = X.reshape(-1)
        differences = scratch[: rows * width]
        for term in self.differences:
            # Row r, column j of `differences` is X[r, j] - X[r, j + shift]; only the
            # columns first .. stop - 1 are computed, and only they are read.
            begin, end = term.first, (rows - 1) * width + term.stop
            part = differences[begin:end]
            np.subtract(flat[begin:end], flat[begin + term.shift : end + term.shift], out=part)
            np.abs(part, out=part)
            columns = differences.reshape(rows, width)[:, term.first : term.stop]
            out += np.einsum("ij,j->i", columns, term.coefficients)

    def describe(self) -> dict[str, Any]:
        """The folded formula, by feature name, as a JSON-serialisable dict."""
        names = self.feature_names
        weights = {names[self.first + j]: float(w) for j, w in enumerate(self.weights) if w != 0.0}
        similarity = [
            {
                "a": names[term.first + j],
                "b": names[term.first + j + term.shift],
                "weight": float(-c),
            }
            for term in self.differences
            for j, c in enumerate(term.coefficients)
            if c != 0.0
        ]
        used = set(weights) | {p["a"] for p in similarity} | {p["b"] for p in similarity}
        return {
            "offset": self.offset,
            "weights": weights,
            "similarity": similarity,
            "clamp": list(self.clamp) if self.clamp is not None else None,
            "features_used": len(used),
        }


def build_formula(options: RulesOptions, feature_names: Sequence[str]) -> LinearFormula:
    """Resolve ``options`` against ``feature_names`` and fold them into a LinearFormula.

    :raises FormulaError: a name does not resolve; ``problems`` lists each one.
    """
    names = tuple(feature_names)
    resolution = resolve(options, names)
    if resolution.problems:
        raise FormulaError(resolution.problems)
    width = len(names)
    offset = options.bias
    weights = np.zeros(width, dtype=np.float64)
    by_shift: dict[int, Float64Array] = {}
    for term in resolution.terms:
        if term.kind == "constant":
            offset += term.weight * term.constant
        elif term.kind == "similarity":
            share = term.weight / len(term.pairs)
            for a, b in term.pairs:
                low, high = min(a, b), max(a, b)
                offset += share  # share * (1 - |a - b|) = share - share * |a - b|
                by_shift.setdefault(high - low, np.zeros(width, dtype=np.float64))[low] -= share
        else:
            share = term.weight / len(term.columns)
            for column in term.columns:
                weights[column] += share
    first, used = _span(weights)
    differences = []
    for shift, coefficients in sorted(by_shift.items()):
        start, kept = _span(coefficients)
        if len(kept):
            differences.append(AbsoluteDifferences(shift, start, _frozen(kept)))
    return LinearFormula(
        feature_names=names,
        offset=float(offset),
        first=first,
        weights=_frozen(used),
        differences=tuple(differences),
        clamp=options.clamp,
    )


def _span(values: Float64Array) -> tuple[int, Float64Array]:
    """The first non-zero position and the values from there to the last non-zero one."""
    nonzero = np.flatnonzero(values)
    if not len(nonzero):
        return 0, values[:0]
    return int(nonzero[0]), values[nonzero[0] : nonzero[-1] + 1]
