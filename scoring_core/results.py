"""What scoring returns: a score, the step that produced it, and why earlier steps did not.

Every score also says what produced it (:class:`Provenance`): the chain, the step, its
scorer, the model version and sha256, and the configuration's sha256. One immutable
provenance object is built per loaded scorer (per reload), and results hold a reference to
the one that scored them: nothing is built per row until someone asks for a dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["EXHAUSTED_SCORER", "BatchResult", "Fallback", "Provenance", "ScoreResult"]

#: The ``scorer`` of a score served by ``on_exhausted: {score: x}``.
EXHAUSTED_SCORER = "on_exhausted"


@dataclass(frozen=True, slots=True)
class Provenance:
    """What produced a score: one object per loaded scorer, shared by every score it gave.

    :ivar chain: the chain's name (the YAML's ``name:``, else the config file's stem, else
        ``default``).
    :ivar step: the chain step (``on_exhausted`` for the configured default).
    :ivar scorer: the registered scorer the step uses (``onnx``); None for the default.
    :ivar model_version: the model version that scored (the version folder's number for a
        versioned model folder, else the version the model file carries); None if unknown.
    :ivar model_sha256: the sha256 of the model file that scored; None if not a file model.
    :ivar config_sha256: the sha256 of the configuration file (of its canonical JSON for
        ``Engine.from_config``).
    """

    chain: str
    step: str
    scorer: str | None
    model_version: str | None
    model_sha256: str | None
    config_sha256: str | None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "chain": self.chain,
            "step": self.step,
            "scorer": self.scorer,
            "model_version": self.model_version,
            "model_sha256": self.model_sha256,
            "config_sha256": self.config_sha256,
        }

    @property
    def stamp(self) -> str:
        """One line for a served model version: ``chain/step@version`` (``@sha256:...``
        when the model carries no version, nothing when there is no model)."""
        if self.model_version is not None:
            return f"{self.chain}/{self.step}@{self.model_version}"
        if self.model_sha256 is not None:
            return f"{self.chain}/{self.step}@sha256:{self.model_sha256[:12]}"
        return f"{self.chain}/{self.step}"


@dataclass(frozen=True, slots=True)
class Fallback:
    """A step that was tried and did not produce the score.

    ``kind`` is a short code for counting (``unavailable``, ``error``, ``bad_shape``,
    ``non_finite``, ``out_of_range``); ``reason`` is the sentence a person reads.
    """

    step: str
    reason: str
    kind: str = "error"


def fallback_text(step: str, kind: str, reason: str, *, detail: bool = True) -> str:
    """One fallback as ``"step: reason"``; with ``detail=False`` an unavailable step reads
    ``"step: unavailable"`` (see :meth:`BatchResult.fallback_reasons`)."""
    return f"{step}: {'unavailable' if not detail and kind == 'unavailable' else reason}"


class ScoreResult:
    """One row's score.

    :ivar score: the score.
    :ivar scorer: the name of the chain step that produced it (``on_exhausted`` for the
        configured default).
    :ivar fallbacks: one :class:`Fallback` per step tried before it, in chain order.
    :ivar defaults_used: the features that were missing and took their default.
    :ivar provenance: what produced the score (:class:`Provenance`), or None when the
        result was not made by an engine.
    """

    __slots__ = ("defaults_used", "fallbacks", "provenance", "score", "scorer")

    def __init__(
        self,
        score: float,
        scorer: str,
        fallbacks: tuple[Fallback, ...] = (),
        defaults_used: tuple[str, ...] = (),
        provenance: Provenance | None = None,
    ) -> None:
        self.score = score
        self.scorer = scorer
        self.fallbacks = fallbacks
        self.defaults_used = defaults_used
        self.provenance = provenance

    @property
    def is_default(self) -> bool:
        """True when no step could score the row and ``on_exhausted`` served its default."""
        return self.scorer == EXHAUSTED_SCORER

    def as_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "scorer": self.scorer,
            "fallbacks": [
                {"step": f.step, "reason": f.reason, "kind": f.kind} for f in self.fallbacks
            ],
            "defaults_used": list(self.defaults_used),
            "provenance": None if self.provenance is None else self.provenance.as_dict(),
        }

    def fallback_reason(self, *, detail: bool = True) -> str:
        """``"step: reason; step: reason"`` for the steps tried before the scorer, ``""``
        when the first step scored (the row's entry in ``BatchResult.fallback_reasons``)."""
        return "; ".join(
            fallback_text(f.step, f.kind, f.reason, detail=detail) for f in self.fallbacks
        )

    def __repr__(self) -> str:
        extra = f", fallbacks={list(self.fallbacks)!r}" if self.fallbacks else ""
        return f"ScoreResult(score={self.score!r}, scorer={self.scorer!r}{extra})"


@dataclass(frozen=True)
class StepFailure:
    """Rows (positions in the batch) a step failed, with the reason for each group."""

    step: str
    rows: npt.NDArray[np.intp]
    reason: str
    kind: str


class BatchResult:
    """Scores for many rows, in input order.

    :ivar scores: float64 array of shape ``(n,)``.
    :ivar scorers: per-row step names (an object array of length ``n``).
    :ivar step_names: the chain's step names; ``scorer_index[i]`` indexes it
        (``-1`` for a default served by ``on_exhausted``).
    :ivar rows: each score's row number in the input (``0..n-1`` for ``score_batch``;
        the good rows' numbers for ``score_prepared``, the bad ones being left out).
    """

    __slots__ = (
        "_failures",
        "_provenances",
        "_step_names",
        "defaults_used",
        "rows",
        "scorer_index",
        "scores",
    )

    def __init__(
        self,
        scores: npt.NDArray[np.float64],
        scorer_index: npt.NDArray[np.int16],
        step_names: Sequence[str],
        failures: Sequence[StepFailure] = (),
        defaults_used: tuple[tuple[str, ...], ...] | None = None,
        rows: npt.NDArray[np.intp] | None = None,
        provenances: Sequence[Provenance | None] = (),
    ) -> None:
        self.scores = scores
        self.rows = np.arange(scores.shape[0], dtype=np.intp) if rows is None else rows
        self.scorer_index = scorer_index
        self._step_names = tuple(step_names)
        self._failures = tuple(failures)
        self.defaults_used = defaults_used
        # One per step name, then one for on_exhausted: the scorer that served that
        # step's rows in this batch (None for a step that served none).
        self._provenances = tuple(provenances)

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @property
    def step_names(self) -> tuple[str, ...]:
        return self._step_names

    @property
    def scorers(self) -> npt.NDArray[np.object_]:
        names = np.array([*self._step_names, EXHAUSTED_SCORER], dtype=object)
        return names[self.scorer_index]  # index -1 picks EXHAUSTED_SCORER

    @property
    def fallbacks(self) -> tuple[tuple[Fallback, ...], ...]:
        """Per row, the steps tried before the one that scored it."""
        per_row: list[list[Fallback]] = [[] for _ in range(len(self))]
        for failure in self._failures:
            record = Fallback(failure.step, failure.reason, failure.kind)
            for row in failure.rows.tolist():
                per_row[row].append(record)
        return tuple(tuple(rows) for rows in per_row)

    def fallback_reasons(self, *, detail: bool = True) -> list[str]:
        """Per row, ``"step: reason; step: reason"`` for rows that fell back, else ``""``.

        With ``detail=False`` a step that was unavailable reads ``"step: unavailable"``:
        why is a fact about the step, not the row (``Engine.diagnostics()`` has it), and a
        load error with its advice would be repeated on every row of an output file.
        """
        reasons = [""] * len(self)
        for failure in self._failures:
            text = fallback_text(failure.step, failure.kind, failure.reason, detail=detail)
            for row in failure.rows.tolist():
                reasons[row] = f"{reasons[row]}; {text}" if reasons[row] else text
        return reasons

    @property
    def provenance(self) -> dict[str, Provenance]:
        """Per step that served rows of this batch (and ``on_exhausted`` when its default
        was served), what produced them. A batch is scored by one loaded scorer per step,
        even across a reload, so this holds for every row the step served."""
        if not self._provenances:
            return {}
        served = set(np.unique(self.scorer_index).tolist())
        names = [*self._step_names, EXHAUSTED_SCORER]
        return {
            names[i]: p
            for i, p in enumerate(self._provenances)
            if p is not None and (i if i < len(self._step_names) else -1) in served
        }

    def provenance_of(self, row: int) -> Provenance | None:
        """What produced the score of ``row``."""
        if not self._provenances:
            return None
        return self._provenances[int(self.scorer_index[row])]  # -1: on_exhausted, the last

    def counts_by_scorer(self) -> dict[str, int]:
        names = [*self._step_names, EXHAUSTED_SCORER]
        counts = np.bincount(self.scorer_index.astype(np.intp) % len(names), minlength=len(names))
        return {name: int(c) for name, c in zip(names, counts, strict=True) if c}

    def fallback_counts(self) -> dict[str, dict[str, int]]:
        """Per step, rows failed by kind."""
        out: dict[str, dict[str, int]] = {}
        for failure in self._failures:
            kinds = out.setdefault(failure.step, {})
            kinds[failure.kind] = kinds.get(failure.kind, 0) + int(failure.rows.size)
        return out

    def to_arrow(self, *, detail: bool = False) -> Any:
        """The results as a pyarrow Table with the columns of ``scoring score``'s output:
        ``row`` (the input row number), ``score``, ``scorer``, ``fallback_reason``.

        ``fallback_reason`` is :meth:`fallback_reasons` (``detail=False``, as the CLI
        writes it: an unavailable step reads ``"step: unavailable"``).
        """
        import pyarrow as pa

        return pa.table(
            {
                "row": pa.array(self.rows, pa.int64()),
                "score": pa.array(self.scores, pa.float64()),
                "scorer": pa.array(self.scorers.tolist(), pa.string()),
                "fallback_reason": pa.array(self.fallback_reasons(detail=detail), pa.string()),
            }
        )

    def to_pandas(self, *, detail: bool = False) -> Any:
        """The results as a pandas DataFrame: ``score``, ``scorer``, ``fallback_reason``,
        indexed by ``row`` (the input row number, so ``frame.iloc[result.rows]`` or a
        join on a reset index lines them up with the input). Needs pandas installed."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "BatchResult.to_pandas() needs pandas: pip install pandas "
                "(or use to_arrow(), which needs only pyarrow)"
            ) from None
        return pd.DataFrame(
            {
                "score": self.scores,
                "scorer": pd.array(self.scorers.tolist(), dtype=object),
                "fallback_reason": self.fallback_reasons(detail=detail),
            },
            index=pd.Index(self.rows, name="row"),
        )

    def __repr__(self) -> str:
        return f"BatchResult(n={len(self)}, by_scorer={self.counts_by_scorer()})"
