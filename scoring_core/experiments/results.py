"""Scores of an experiment: a ScoreResult or BatchResult that also says each row's variant."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from scoring_core.results import EXHAUSTED_SCORER, BatchResult, Provenance, ScoreResult, StepFailure

__all__ = ["ExperimentBatchResult", "ExperimentScoreResult", "merge_batches"]


class ExperimentScoreResult(ScoreResult):
    """One row's score, as :class:`~scoring_core.ScoreResult`, and ``variant``: the name of
    the unit's variant, or None for a unit outside the experiment's coverage (scored by
    the control).

    It wraps the variant engine's result instead of copying it (a copy cost 1.1 us a row,
    measured with ``benchmarks/bench_experiment.py``): every field of a ScoreResult,
    including any added later, reads through to it.
    """

    __slots__ = ("_result", "variant")

    _result: ScoreResult
    variant: str | None

    @classmethod
    def of(cls, result: ScoreResult, variant: str | None) -> ExperimentScoreResult:
        out = cls.__new__(cls)
        out._result = result
        out.variant = variant
        return out

    # the fields read most, without the detour through __getattr__
    @property
    def score(self) -> float:  # type: ignore[override]
        return self._result.score

    @property
    def scorer(self) -> str:  # type: ignore[override]
        return self._result.scorer

    @property
    def fallbacks(self) -> tuple[Any, ...]:  # type: ignore[override]
        return self._result.fallbacks

    @property
    def defaults_used(self) -> tuple[str, ...]:  # type: ignore[override]
        return self._result.defaults_used

    def __getattr__(self, name: str) -> Any:
        # a field of ScoreResult this class does not name (an unset slot raises first)
        return getattr(self._result, name)

    def as_dict(self) -> dict[str, Any]:
        return {**self._result.as_dict(), "variant": self.variant}

    def __repr__(self) -> str:
        return f"{self._result!r}"[:-1] + f", variant={self.variant!r})"


class ExperimentBatchResult(BatchResult):
    """Scores of many rows, as :class:`~scoring_core.BatchResult`, and ``variants``: per row
    the variant's name, or None outside coverage (an object array of length ``n``).

    Provenance is per row (the variants' chains may share step names, so a step name alone
    does not say which chain served): :meth:`provenance_of` is exact, and
    :attr:`provenance` maps each step name that served rows to the provenance of its first
    such row.
    """

    __slots__ = ("_row_provenances", "variants")

    variants: npt.NDArray[np.object_]
    _row_provenances: npt.NDArray[np.object_]

    @property
    def provenance(self) -> dict[str, Provenance]:
        out: dict[str, Provenance] = {}
        names = [*self.step_names, EXHAUSTED_SCORER]
        for row, origin in enumerate(self._row_provenances.tolist()):
            if origin is not None:
                out.setdefault(names[int(self.scorer_index[row])], origin)
        return out

    def provenance_of(self, row: int) -> Provenance | None:
        origin: Provenance | None = self._row_provenances[row]
        return origin


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
    origins = np.full(n, None, dtype=object)
    for positions, part in parts:
        mapping = []
        for name in part.step_names:
            if name not in names:
                names.append(name)
            mapping.append(names.index(name))
        lookup = np.array([*mapping, -1], dtype=np.int16)  # -1 (on_exhausted) stays -1
        scores[positions] = part.scores
        if part._provenances:  # one per step, then on_exhausted's: index -1 picks it
            by_step = np.empty(len(part._provenances), dtype=object)
            by_step[:] = part._provenances
            origins[positions] = by_step[part.scorer_index]
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
    out._row_provenances = origins
    return out
