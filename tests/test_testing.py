"""scoring_core.testing: the conformance checker catches each way a scorer can break the contract.

Each bad scorer below breaks exactly one rule; the checker must name that rule, say what
happened plainly, and still run (and pass) the checks the scorer does not break.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict

from scoring_core import ScorerContext
from scoring_core.testing import (
    ConformanceReport,
    assert_conforms,
    check_scorer,
    read_feature_names,
    scorer_plugin,
)

ROOT = Path(__file__).resolve().parent.parent


class Weighted:
    """A well-behaved scorer: a fixed weighted mean of the row, in [0, 1]."""

    def __init__(self, ctx: ScorerContext) -> None:
        width = len(ctx.feature_names)
        self.weights = np.arange(1, width + 1, dtype=np.float64) / (width * (width + 1) / 2)
        self.closed = False

    def score(self, X: np.ndarray) -> np.ndarray:
        return X @ self.weights

    def close(self) -> None:
        self.closed = True


def only(report: ConformanceReport, check: str) -> str:
    """The report must fail exactly ``check``; return its violation messages."""
    assert report.checks_failed() == (check,), report.format()
    return "\n".join(v.message for v in report.violations)


def test_a_well_behaved_scorer_conforms_and_every_check_ran() -> None:
    report = check_scorer(Weighted, output_range=(0.0, 1.0))
    assert report.ok, report.format()
    assert set(report.passed) == {
        "options",
        "construct",
        "score",
        "shape",
        "finite",
        "output_range",
        "input",
        "deterministic",
        "batch_independence",
        "threads",
        "close",
        "engine",
    }
    assert report.skipped == ()
    assert "conforms (12 checks passed)" in report.format()


def test_a_scorer_without_close_conforms_and_the_report_says_close_was_not_checked() -> None:
    class NoClose:
        def __init__(self, ctx: ScorerContext) -> None:
            pass

        def score(self, X: np.ndarray) -> np.ndarray:
            return X.mean(axis=1)

    report = check_scorer(NoClose)
    assert report.ok, report.format()
    assert "close" not in report.passed
    assert any("has no close()" in s for s in report.skipped)


def test_wrong_output_shape_is_reported_for_each_batch_size() -> None:
    class TwoColumns(Weighted):
        def score(self, X: np.ndarray) -> np.ndarray:
            return np.zeros((X.shape[0], 2))

    message = only(check_scorer(TwoColumns), "shape")
    assert "with 1 row returned shape (1, 2)" in message
    assert "with 64 rows returned shape (64, 2)" in message
    assert "with 0 rows returned shape (0, 2)" in message


def test_a_scalar_for_one_row_is_a_shape_violation() -> None:
    class Scalar(Weighted):
        def score(self, X: np.ndarray) -> Any:
            out = X @ self.weights
            return float(out[0]) if X.shape[0] == 1 else out

    assert "with 1 row returned shape ()" in only(check_scorer(Scalar), "shape")


def test_output_that_is_not_numbers_is_a_shape_violation() -> None:
    class Words(Weighted):
        def score(self, X: np.ndarray) -> list[str]:
            return ["high"] * X.shape[0]

    assert "returned list, not an array of numbers" in only(check_scorer(Words), "shape")


def test_nan_scores_are_reported_with_the_first_row() -> None:
    class NaNForBigFirstFeature(Weighted):
        def score(self, X: np.ndarray) -> np.ndarray:
            out = X @ self.weights
            out[X[:, 0] > 0.5] = np.nan
            return out

    message = only(check_scorer(NaNForBigFirstFeature), "finite")
    rows = np.random.default_rng(0).random((64, 5), dtype=np.float32)
    first_bad = int(np.flatnonzero(rows[:, 0] > 0.5)[0])
    assert f"first: row {first_bad} = nan" in message
    assert f"returned {int((rows[:, 0] > 0.5).sum())} non-finite score(s)" in message


def test_scores_outside_the_output_range_are_reported() -> None:
    class Percent(Weighted):
        def score(self, X: np.ndarray) -> np.ndarray:
            return 100 * (X @ self.weights)

    message = only(check_scorer(Percent, output_range=(0.0, 1.0)), "output_range")
    assert "outside output_range [0, 1]" in message
    assert check_scorer(Percent).ok  # without a range, any finite score is fine


def test_a_score_that_raises_names_the_batch_size() -> None:
    class NoEmptyBatches(Weighted):
        def score(self, X: np.ndarray) -> np.ndarray:
            if X.shape[0] == 0:
                raise ValueError("zero-size array to reduction operation")
            return X @ self.weights

    message = only(check_scorer(NoEmptyBatches), "score")
    assert (
        message == "score(X) with 0 rows raised ValueError: zero-size array to reduction operation"
    )


def test_writing_to_the_input_is_reported_once() -> None:
    class ScalesInPlace(Weighted):
        def score(self, X: np.ndarray) -> np.ndarray:
            X *= 2.0
            return (X @ self.weights) / 2.0

    report = check_scorer(ScalesInPlace)
    message = only(report, "input")
    assert len(report.violations) == 1
    assert message.startswith("score(X) with 1 row tried to write to its input (ValueError: ")
    assert "the engine passes X read-only" in message


def test_a_scorer_that_makes_its_input_writable_and_changes_it_is_caught() -> None:
    class ForcesItsWay(Weighted):
        def score(self, X: np.ndarray) -> np.ndarray:
            X.flags.writeable = True
            X[:, 0] = 0.0
            return X @ self.weights

    message = only(check_scorer(ForcesItsWay), "input")
    rows = np.random.default_rng(0).random((64, 5), dtype=np.float32)
    assert f"changed its input (row 0, column 0: {rows[0, 0]:g} -> 0)" in message


def test_random_scores_are_not_deterministic() -> None:
    class Noisy(Weighted):
        def score(self, X: np.ndarray) -> np.ndarray:
            return np.clip(X @ self.weights + np.random.normal(0, 0.01, X.shape[0]), 0, 1)

    report = check_scorer(Noisy)
    assert "deterministic" in report.checks_failed()
    assert "scoring the same 64 rows again gave different scores" in report.format()


def test_scores_that_depend_on_the_batch_are_reported() -> None:
    class RankInBatch(Weighted):
        def score(self, X: np.ndarray) -> np.ndarray:
            total = X.sum(axis=1)
            if total.size == 0:
                return total
            return (total - total.min()) / (np.ptp(total) or 1.0)

    message = only(check_scorer(RankInBatch), "batch_independence")
    assert "row 0 scored alone gave 0 but 0.523206 in the batch of 64" in message
    assert "scored among the odd rows" in message


class SharedBuffer(Weighted):
    """Keeps the batch on the instance between two statements: a race between threads."""

    def score(self, X: np.ndarray) -> np.ndarray:
        self.batch = X
        time.sleep(0.002)
        return self.batch @ self.weights


def test_state_shared_between_threads_is_reported() -> None:
    message = only(check_scorer(SharedBuffer), "threads")
    assert "8 threads calling score(X) at once" in message
    assert "guard shared state with a lock" in message


def test_a_lock_makes_the_same_scorer_conform() -> None:
    class Locked(SharedBuffer):
        lock = threading.Lock()

        def score(self, X: np.ndarray) -> np.ndarray:
            with self.lock:
                return super().score(X)

    assert check_scorer(Locked, threads=4).ok


def test_a_factory_that_raises_stops_the_checks_and_says_why() -> None:
    class MissingModel:
        def __init__(self, ctx: ScorerContext) -> None:
            raise FileNotFoundError(f"{ctx.resolve_path('model.bin')} does not exist")

    report = check_scorer(MissingModel, base_dir="/srv/models")
    message = only(report, "construct")
    assert message == (
        "the factory raised FileNotFoundError: /srv/models/model.bin does not exist; the "
        "engine would mark the step unavailable"
    )
    assert report.passed == ("options",)
    assert "score" in report.format().split("not run: ")[1]


def test_an_object_without_score_is_reported() -> None:
    class Predictor:
        def __init__(self, ctx: ScorerContext) -> None:
            pass

        def predict(self, X: np.ndarray) -> np.ndarray:
            return X.mean(axis=1)

    assert "has no score(X) method" in only(check_scorer(Predictor), "construct")


def test_a_scorer_that_allows_one_instance_at_a_time_is_reported() -> None:
    class Exclusive(Weighted):
        live: ClassVar[int] = 0

        def __init__(self, ctx: ScorerContext) -> None:
            if Exclusive.live:
                raise RuntimeError("the model file is locked by another instance")
            Exclusive.live += 1
            super().__init__(ctx)

        def close(self) -> None:
            Exclusive.live -= 1

    message = only(check_scorer(Exclusive), "construct")
    assert "a second instance could not be built while the first is alive" in message
    assert "engine.reload()" in message


def test_close_errors_are_reported_once_with_every_situation() -> None:
    class LeakyClose(Weighted):
        def close(self) -> None:
            raise OSError("socket already closed")

    report = check_scorer(LeakyClose)
    message = only(report, "close")
    assert len(report.violations) == 1
    assert "close() raised OSError: socket already closed" in message
    assert "an instance that scored, a second instance, an instance that never scored" in message


def test_closing_one_instance_must_not_break_another() -> None:
    class ClassLevelSession(Weighted):
        session: ClassVar[dict[str, float] | None] = None

        def __init__(self, ctx: ScorerContext) -> None:
            super().__init__(ctx)
            ClassLevelSession.session = {"scale": 1.0}

        def score(self, X: np.ndarray) -> np.ndarray:
            assert ClassLevelSession.session is not None, "session released"
            return (X @ self.weights) * ClassLevelSession.session["scale"]

        def close(self) -> None:
            ClassLevelSession.session = None

    message = only(check_scorer(ClassLevelSession), "close")
    assert "after one instance was closed, another one could no longer score" in message


def test_a_hanging_score_is_reported_and_the_checks_stop() -> None:
    release = threading.Event()

    class HangsOnBigBatches(Weighted):
        def score(self, X: np.ndarray) -> np.ndarray:
            if X.shape[0] > 1:
                release.wait(30)
            return X @ self.weights

    started = time.perf_counter()
    try:
        report = check_scorer(HangsOnBigBatches, timeout_s=0.3)
    finally:
        release.set()
    assert time.perf_counter() - started < 5
    assert report.checks_failed() == ("timeout",)
    assert "score: a call did not return within 0.3 s" in report.format()
    assert "threads" not in report.passed


def test_the_checker_reports_every_violation_not_just_the_first() -> None:
    class EverythingWrong:
        def __init__(self, ctx: ScorerContext) -> None:
            pass

        def score(self, X: np.ndarray) -> np.ndarray:
            if X.shape[0] == 0:
                raise IndexError("no rows")
            out = np.full(X.shape[0], 2.0)
            out[X[:, 1] > 0.9] = np.inf
            return out

        def close(self) -> None:
            raise RuntimeError("double free")

    report = check_scorer(EverythingWrong, output_range=(0.0, 1.0))
    assert set(report.checks_failed()) == {"score", "finite", "output_range", "close"}
    with pytest.raises(AssertionError) as raised:
        assert_conforms(EverythingWrong, output_range=(0.0, 1.0))
    text = str(raised.value)
    assert text.startswith(f"scorer {EverythingWrong.__qualname__} has {len(report.violations)}")
    for violation in report.violations:
        assert str(violation) in text


class WeightedOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scale: float = 1.0


class ScaledWeighted(Weighted):
    def __init__(self, ctx: ScorerContext) -> None:
        super().__init__(ctx)
        assert isinstance(ctx.options, WeightedOptions), "options arrive validated"
        self.weights = self.weights * ctx.options.scale


def test_options_are_validated_as_the_engine_does_with_a_did_you_mean() -> None:
    report = check_scorer(ScaledWeighted, options={"scael": 0.5}, options_type=WeightedOptions)
    message = only(report, "options")
    assert message == (
        "the engine would refuse these options: options.scael: unknown option; did you mean "
        "'scale'?"
    )


def test_validated_options_reach_the_scorer() -> None:
    report = check_scorer(ScaledWeighted, options={"scale": 0.5}, options_type=WeightedOptions)
    assert report.ok, report.format()


def test_dataclass_options_with_a_wrong_type_are_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class Threshold:
        cutoff: float

    message = only(
        check_scorer(Weighted, options={"cutoff": "high"}, options_type=Threshold), "options"
    )
    assert "options.cutoff" in message


def test_a_registered_scorer_is_found_by_name_with_its_options_type() -> None:
    plugin = scorer_plugin("weighted", ScaledWeighted, options=WeightedOptions)
    assert check_scorer("weighted", options={"scale": 0.5}, plugins=[plugin]).ok
    refused = check_scorer("weighted", options={"scael": 0.5}, plugins=[plugin])
    assert refused.checks_failed() == ("options",)


def test_an_unknown_scorer_name_lists_the_known_ones() -> None:
    with pytest.raises(LookupError, match=r"no scorer 'wieghted' is registered \(known: .*onnx"):
        check_scorer("wieghted")


def test_a_close_that_leaks_a_pooled_connection_is_caught_when_the_engine_builds_again() -> None:
    class Pooled(Weighted):
        pool: ClassVar[list[str]] = ["conn-1", "conn-2", "conn-3"]

        def __init__(self, ctx: ScorerContext) -> None:
            if not Pooled.pool:
                raise RuntimeError("connection pool exhausted")
            self.connection = Pooled.pool.pop()
            super().__init__(ctx)

        def close(self) -> None:
            pass  # forgets to give self.connection back

    message = only(check_scorer(Pooled), "engine")
    assert message == (
        "the engine marked the step unavailable: RuntimeError: connection pool exhausted"
    )


def test_rows_must_fit_the_features() -> None:
    with pytest.raises(ValueError, match=r"2-D with at least 2 rows and 5 columns"):
        check_scorer(Weighted, rows=np.zeros((10, 4)))
    with pytest.raises(ValueError, match="must be finite"):
        check_scorer(Weighted, rows=np.full((3, 5), np.nan))


def test_the_checker_scores_the_rows_it_is_given() -> None:
    seen: list[int] = []

    class Recording(Weighted):
        def score(self, X: np.ndarray) -> np.ndarray:
            seen.append(X.shape[0])
            return X @ self.weights

    assert check_scorer(Recording, rows=[[0.1, 0.2, 0.3, 0.4, 0.5]] * 3).ok
    assert {1, 3, 0} <= set(seen)


def test_read_feature_names_gives_the_calling_score_features_in_order() -> None:
    names = read_feature_names(ROOT / "models" / "calling_score_features.yaml")
    assert len(names) == 39
    assert names[0] == "user_exploration_eagerness"
    assert names[-1] == "timing_alignment"


@pytest.fixture
def _no_leftover_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra:
            return
        time.sleep(0.01)
    raise AssertionError(f"threads left running: {extra}")


@pytest.mark.usefixtures("_no_leftover_threads")
def test_a_clean_check_leaves_no_threads_behind() -> None:
    assert check_scorer(Weighted).ok
