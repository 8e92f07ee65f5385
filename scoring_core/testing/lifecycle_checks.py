"""The checks on threads and on closing: many threads at once, and ``close()`` exactly once.

``threads`` scores from several threads at once and compares with the sequential scores;
``close`` builds a second instance, closes the first, and checks the second still serves.
The closing helpers here also close whatever a failed check left open.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from scoring_core.scorer import ScorerContext, SupportsClose
from scoring_core.testing.checker import Checker
from scoring_core.testing.scorer_calls import (
    HungError,
    StopChecksError,
    call_with_timeout,
    describe_error,
    read_only,
    rows_label,
)

__all__ = [
    "check_close",
    "check_threads",
    "close_instance",
    "close_leftovers",
    "report_close_errors",
]


def check_threads(checker: Checker, scorer: Any) -> None:
    """Score whole batches and single rows from ``checker.threads`` threads started together."""
    checker.ran.append("threads")
    reference = checker.reference
    if reference is None:
        checker.skip("threads", f"no usable scores for {rows_label(checker.rows.shape[0])}")
        return
    single = sorted(checker.alone)
    barrier = threading.Barrier(checker.threads)
    errors: list[str] = []
    disagreements: list[str] = []
    lock = threading.Lock()

    def work(thread: int) -> None:
        try:
            barrier.wait(checker.timeout_s)
        except threading.BrokenBarrierError:
            return
        for call in range(checker.calls_per_thread):
            whole = call % 2 == 0 or not single
            row = 0 if whole else single[(thread * checker.calls_per_thread + call) % len(single)]
            rows = checker.rows if whole else checker.rows[row : row + 1]
            expected = reference if whole else checker.alone[row]
            try:
                out = scorer.score(read_only(rows))
                values = np.asarray(out, dtype=np.float64).reshape(rows.shape[0])
            except Exception as exc:
                with lock:
                    errors.append(describe_error(exc))
                continue
            differ = ~checker.same(values, expected)
            if differ.any():
                at = int(np.flatnonzero(differ)[0])
                with lock:
                    disagreements.append(
                        f"thread {thread}, {rows_label(rows.shape[0])}, row "
                        f"{at if whole else row}: {values[at]:g} instead of "
                        f"{expected[at]:g}"
                    )

    workers = [
        threading.Thread(target=work, args=(i,), name=f"scoring-conformance-{i}", daemon=True)
        for i in range(checker.threads)
    ]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + checker.timeout_s
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    total = checker.threads * checker.calls_per_thread
    intro = f"{checker.threads} threads calling score(X) at once"
    if any(worker.is_alive() for worker in workers):
        checker.fail(
            "threads", f"{intro} did not finish within {checker.timeout_s:g} s (deadlock?)"
        )
        raise StopChecksError
    advice = (
        "; the engine calls score from many threads at once: keep per-call state in local "
        "variables, or guard shared state with a lock"
    )
    if errors:
        checker.fail(
            "threads",
            f"{intro}: {len(errors)} of {total} calls raised (first: {errors[0]}){advice}",
        )
    if disagreements:
        checker.fail(
            "threads",
            f"{intro}: {len(disagreements)} of {total} calls disagreed with sequential "
            f"calls (first: {disagreements[0]}){advice}",
        )


def close_instance(checker: Checker, scorer: Any, what: str) -> None:
    """Call ``scorer.close()`` if it has one; its errors wait for :func:`report_close_errors`.

    :param what: which instance this is, for the report (``"a second instance"``).
    """
    if not isinstance(scorer, SupportsClose):
        return
    checker.built = [other for other in checker.built if other is not scorer]
    try:
        call_with_timeout(checker.timeout_s, scorer.close)
    except HungError:
        checker.fail("close", f"close() of {what} did not return within {checker.timeout_s:g} s")
        raise StopChecksError from None
    except Exception as exc:
        checker.close_errors.setdefault(describe_error(exc), []).append(what)


def report_close_errors(checker: Checker) -> None:
    """Report each distinct error ``close()`` raised once, with the instances that raised it."""
    for error, whats in checker.close_errors.items():
        checker.fail(
            "close",
            f"close() raised {error} (closing {', '.join(whats)}); engine.close() would "
            "raise it, in an ExceptionGroup, after closing everything else",
        )
    checker.close_errors.clear()


def check_close(checker: Checker, context: ScorerContext, first: Any) -> None:
    """Close ``first`` while a second instance lives, then close an instance that never scored."""
    checker.ran.append("close")
    if not isinstance(first, SupportsClose):
        checker.skip("close", "the scorer has no close(); the engine does not require one")
        return
    with checker.check("close"):
        second = checker.build(context, second=True)
        close_instance(checker, first, "an instance that scored")
        if second is not None:
            after = checker.quiet_values(second, checker.rows)
            if after is not None and checker.reference is not None:
                differ = ~checker.same(after, checker.reference)
                if differ.any():
                    checker.fail(
                        "close",
                        "closing one instance changed the scores of another one "
                        f"({int(differ.sum())} of {len(differ)} rows); engine.reload() "
                        "closes the old scorer while the new one serves",
                    )
            elif after is None and checker.reference is not None:
                checker.fail(
                    "close",
                    "after one instance was closed, another one could no longer score; "
                    "engine.reload() closes the old scorer while the new one serves",
                )
            close_instance(checker, second, "a second instance")
        unused = checker.build(context, second=True)
        if unused is not None:
            close_instance(checker, unused, "an instance that never scored")
    report_close_errors(checker)


def close_leftovers(checker: Checker) -> None:
    """Close every instance still open, as after a check that stopped half-way."""
    for scorer in list(checker.built):
        try:
            close_instance(checker, scorer, "an instance left over by a failed check")
        except StopChecksError:
            break
