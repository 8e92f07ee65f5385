"""Helpers for testing scorers and plugins; the same ones scoring-core's own tests use.

Register a scorer for one test and build an engine from a few keywords::

    from scoring_core.testing import engine_for, scorer_plugin

    def test_my_scorer_serves_rows():
        plugin = scorer_plugin("mine", MyScorer)
        with engine_for([{"name": "main", "scorer": "mine"}], plugins=[plugin]) as engine:
            assert engine.score([0.5] * 5).scorer == "main"

Check that a scorer behaves the way the engine needs, and see every problem at once::

    from scoring_core.testing import assert_conforms

    def test_my_scorer_conforms():
        assert_conforms(MyScorer, options={"weights": "w.json"}, options_type=MyOptions,
                        feature_names=["age", "income"], base_dir=HERE)

:func:`check_scorer` runs the same checks and returns a :class:`ConformanceReport`
instead of raising. The checks, by the name each violation carries:

``options``
    the options are refused by the declared options type (as the engine would refuse them)
``construct``
    the factory raised, returned an object without ``score(X)``, or could not build a
    second instance while the first was alive (the engine's ``reload()`` needs that)
``score``
    ``score(X)`` raised for a batch of 1, n or 0 rows
``shape``
    the output is not numbers of shape ``(n,)`` or ``(n, 1)``
``finite``
    the output holds NaN or infinity
``output_range``
    the output leaves the ``output_range`` given to the check
``input``
    ``score(X)`` wrote, or tried to write, to its input (the engine passes X read-only: the
    next step gets the same rows)
``deterministic``
    the same rows scored twice gave different scores
``batch_independence``
    a row's score depends on the other rows of its batch (the engine scores single rows,
    whole batches and the subset of rows earlier steps failed)
``threads``
    calls from several threads at once raised, hung, or disagreed with sequential calls
``close``
    ``close()`` raised or hung, or closing one instance broke another one
``engine``
    driven through a real :class:`~scoring_core.Engine`, the step was unavailable, rows
    fell back, scores differed from direct calls, or ``close()`` was not called once
``timeout``
    a call did not return within ``timeout_s``; the checks after it are not run

A hang in ``close()`` or in the engine check also stops the checks after it; it is
reported under ``close`` or ``engine``, where it happened.
"""

from scoring_core.testing.conformance import (
    CHECKS,
    ConformanceReport,
    Violation,
    assert_conforms,
    check_scorer,
)
from scoring_core.testing.helpers import (
    engine_for,
    feature_list,
    read_feature_names,
    scorer_plugin,
)

__all__ = [
    "CHECKS",
    "ConformanceReport",
    "Violation",
    "assert_conforms",
    "check_scorer",
    "engine_for",
    "feature_list",
    "read_feature_names",
    "scorer_plugin",
]
