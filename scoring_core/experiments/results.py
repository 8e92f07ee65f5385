"""Scores of an experiment: a ScoreResult or BatchResult that also says each row's variant."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from scoring_core.results import BatchResult, ScoreResult, StepFailure

__all__ = ["ExperimentBatchResult", "ExperimentScoreResult", "merge_batches"]


def _slots(cls: type) -> tuple[str, ...]:
    """Every slot of ``cls`` and its bases (a field added to ScoreResult is copied too)."""
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        slots = klass.__dict__.get("__slots__", ())
        names.extend([slots] if isinstance(slots, str) else slots)
    return tuple(name for name in names if name not in ("__weakref__", "__dict__"))


class ExperimentScoreResult(ScoreResult):
    """One row's score, as :class:`~scoring_core.ScoreResult`, and ``variant``: the name of
    the unit's variant, or None for a unit outside the experiment's coverage (scored by
    the control)."""

    __slots__ = ("variant",)

    variant: str | None

    @classmethod
    def of(cls, result: ScoreResult, variant: str | None) -> ExperimentScoreResult:
        out = cls.__new__(cls)
        for name in _SCORE_SLOTS:
            setattr(out, name, getattr(result, name, None))
        out.variant = variant
        return out

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "variant": self.variant}

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, variant={self.variant!r})"


_SCORE_SLOTS = _slots(ScoreResult)


class ExperimentBatchResult(BatchResult):
    """Scores of many rows, as :class:`~scoring_core.BatchResult`, and ``variants``: per row
    the variant's name, or None outside coverage (an object array of length ``n``)."""

    __slots__ = ("variants",)

    variants: npt.NDArray[np.object_]


def merge_batches(
    n: int,
    parts: Sequence[tuple[npt.NDArray[np.intp], BatchResult]],
    variants: npt.NDArray[np.object_],
) -> ExperimentBatchResult:
    """One result for ``n`` rows from the results of row subsets (``positions``, result).

    Step names are merged in order of first appearance; each part's failures keep their
    steps and reasons, at the rows' positions in the whole batch.
    """
    names: list[str] = []
    scores = np.empty(n, dtype=np.float64)
    scorer_index = np.full(n, -1, dtype=np.int16)
    failures: list[StepFailure] = []
    defaults: list[tuple[str, ...]] | None = None
    for positions, part in parts:
        mapping = []
        for name in part.step_names:
            if name not in names:
                names.append(name)
            mapping.append(names.index(name))
        lookup = np.array([*mapping, -1], dtype=np.int16)  # -1 (on_exhausted) stays -1
        scores[positions] = part.scores
        scorer_index[positions] = lookup[part.scorer_index]
        for failure in part._failures:
            failures.append(
                StepFailure(failure.step, positions[failure.rows], failure.reason, failure.kind)
            )
        if part.defaults_used is not None:
            if defaults is None:
                defaults = [()] * n
            for position, used in zip(positions.tolist(), part.defaults_used, strict=True):
                defaults[position] = used
    out = ExperimentBatchResult(
        scores,
        scorer_index,
        names,
        failures,
        None if defaults is None else tuple(defaults),
    )
    out.variants = variants
    return out
