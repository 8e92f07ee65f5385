"""The checks on plain calls: batches of 1, n and 0 rows, the output, the same rows again.

Checks ``score``, ``shape``, ``finite``, ``output_range`` and ``input`` (one call per batch
size), then ``deterministic`` and ``batch_independence`` (the same rows again, alone and in
other batches). The scores of the whole batch become the reference the later checks compare
against.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scoring_core.testing.checker import Checker
from scoring_core.testing.scorer_calls import (
    HungError,
    Scores,
    WroteInputError,
    describe_error,
    rows_label,
)

__all__ = ["check_output", "check_repeat_calls", "check_single_calls"]


def check_single_calls(checker: Checker, scorer: Any) -> None:
    """Score 1, n and 0 rows once each; keep the scores of the n rows as the reference."""
    for check in ("score", "shape", "finite", "input"):
        checker.ran.append(check)
    if checker.output_range is not None:
        checker.ran.append("output_range")
    else:
        checker.skip("output_range", "no output_range given")
    n = checker.rows.shape[0]
    returned = 0
    for X in (checker.rows[:1], checker.rows, checker.rows[:0]):
        what = f"score(X) with {rows_label(X.shape[0])}"
        with checker.check("score"):
            try:
                out = checker.score(scorer, X)
            except HungError:
                raise
            except WroteInputError:
                continue  # reported under "input"
            except Exception as exc:
                checker.fail("score", f"{what} raised {describe_error(exc)}")
                continue
        returned += 1
        values = check_output(checker, out, X.shape[0], what)
        if X.shape[0] == n:
            checker.reference = values
    if not returned:
        for name in ("score", "shape", "finite", "output_range"):
            checker.skip(name, "no call returned scores")


def check_output(checker: Checker, out: Any, n: int, what: str) -> Scores | None:
    """Check the output's shape, finiteness and range; return it as float64 (n,)."""
    try:
        array = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError):
        checker.fail("shape", f"{what} returned {type(out).__name__}, not an array of numbers")
        return None
    if array.shape == (n, 1):
        array = array.reshape(n)
    if array.shape != (n,):
        checker.fail(
            "shape",
            f"{what} returned shape {array.shape}; the engine accepts ({n},) or ({n}, 1) "
            "and treats anything else as a failure of the step",
        )
        return None
    bad = ~np.isfinite(array)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        checker.fail(
            "finite",
            f"{what} returned {int(bad.sum())} non-finite score(s) (first: row {first} = "
            f"{array[first]}); the engine treats them as failures and falls back",
        )
    if checker.output_range is not None:
        low, high = checker.output_range
        outside = np.isfinite(array) & ((array < low) | (array > high))
        if outside.any():
            first = int(np.flatnonzero(outside)[0])
            checker.fail(
                "output_range",
                f"{what} returned {int(outside.sum())} score(s) outside output_range "
                f"[{low:g}, {high:g}] (first: row {first} = {array[first]:g})",
            )
    return array


def check_repeat_calls(checker: Checker, scorer: Any) -> None:
    """Score the rows twice more, then rows alone and the odd rows, against the reference.

    Keeps each row's score on its own in ``checker.alone`` for the ``threads`` check.
    """
    reference = checker.reference
    if reference is None:
        for check in ("deterministic", "batch_independence"):
            checker.ran.append(check)
            checker.skip(check, f"no usable scores for {rows_label(checker.rows.shape[0])}")
        return
    n = checker.rows.shape[0]
    with checker.check("deterministic"):
        for attempt in (2, 3):
            again = checker.quiet_values(scorer, checker.rows)
            if again is None:
                checker.fail("deterministic", f"call {attempt} with the same rows failed")
                break
            differ = ~checker.same(again, reference)
            if differ.any():
                row = int(np.flatnonzero(differ)[0])
                checker.fail(
                    "deterministic",
                    f"scoring the same {n} rows again gave different scores for "
                    f"{int(differ.sum())} row(s) (first: row {row}, {reference[row]:g} then "
                    f"{again[row]:g})",
                )
                break
    with checker.check("batch_independence"):
        problems: list[str] = []
        for row in range(min(n, 8)):
            alone = checker.quiet_values(scorer, checker.rows[row : row + 1])
            if alone is not None:
                checker.alone[row] = alone
            if alone is not None and not checker.same(alone, reference[row : row + 1]).all():
                problems.append(
                    f"row {row} scored alone gave {alone[0]:g} but {reference[row]:g} in the "
                    f"batch of {n}"
                )
        subset = np.arange(1, n, 2)
        part = checker.quiet_values(scorer, checker.rows[subset])
        if part is not None:
            differ = ~checker.same(part, reference[subset])
            if differ.any():
                row = int(subset[np.flatnonzero(differ)[0]])
                problems.insert(
                    0,
                    f"row {row} scored among the odd rows gave "
                    f"{part[int(np.flatnonzero(differ)[0])]:g} but {reference[row]:g} in "
                    "the whole batch",
                )
        if problems:
            checker.fail(
                "batch_independence",
                "a row's score depends on the other rows of its batch: "
                + "; ".join(problems[:3])
                + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
                + "; the engine scores single rows, whole batches, and only the rows "
                "earlier steps failed",
            )
