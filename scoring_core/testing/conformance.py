"""The conformance check: drive a scorer the way the engine will, report every violation.

See :mod:`scoring_core.testing` for the list of checks. This module holds the entry points
and runs the checks in order; the checks live in their own modules:

* :mod:`~scoring_core.testing.report`: the check names, :class:`Violation` and
  :class:`ConformanceReport`
* :mod:`~scoring_core.testing.checker`: one run's settings and findings, building the scorer
  and calling it
* :mod:`~scoring_core.testing.call_checks`: batches of 1, n and 0 rows, the output, the same
  rows again
* :mod:`~scoring_core.testing.lifecycle_checks`: threads, and ``close()``
* :mod:`~scoring_core.testing.engine_check`: the scorer in a real engine
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scoring_core.testing.call_checks import check_repeat_calls, check_single_calls
from scoring_core.testing.checker import Checker
from scoring_core.testing.engine_check import check_through_engine
from scoring_core.testing.lifecycle_checks import (
    check_close,
    check_threads,
    close_leftovers,
    report_close_errors,
)
from scoring_core.testing.report import CHECKS, ConformanceReport, Violation
from scoring_core.testing.scorer_calls import FloatRows, StopChecksError

__all__ = ["CHECKS", "ConformanceReport", "Violation", "assert_conforms", "check_scorer"]


def assert_conforms(factory: Callable[..., Any] | str, **kwargs: Any) -> ConformanceReport:
    """Run :func:`check_scorer`; raise ``AssertionError`` listing every violation.

    Takes the same arguments as :func:`check_scorer` and returns its report when it is clean.
    """
    report = check_scorer(factory, **kwargs)
    if not report.ok:
        raise AssertionError(report.format())
    return report


def check_scorer(
    factory: Callable[..., Any] | str,
    *,
    options: Mapping[str, Any] | None = None,
    options_type: type[Any] | None = None,
    feature_names: int | Sequence[str] = 5,
    base_dir: str | Path = ".",
    rows: Any = None,
    output_range: tuple[float, float] | None = None,
    plugins: Sequence[Any] = (),
    step_name: str = "conformance",
    threads: int = 8,
    calls_per_thread: int = 4,
    timeout_s: float = 30.0,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    seed: int = 0,
) -> ConformanceReport:
    """Drive a scorer the way the engine does and report every way it breaks the contract.

    :param factory: what a plugin passes to ``register``: a callable taking a
        :class:`~scoring_core.ScorerContext`. Or a registered scorer name (``"onnx"``):
        then the factory and its options type are looked up among the installed plugins
        and ``plugins``, exactly as the engine finds them.
    :param options: the step's ``options`` mapping, as written in the YAML.
    :param options_type: the options class the scorer registers (pydantic model or
        dataclass); ``options`` are validated against it as the engine does, and the
        scorer receives the validated object. ``None``: a read-only mapping.
    :param feature_names: the engine's features in input order, or a count (``f0``, ...).
    :param base_dir: the folder relative paths resolve against (the YAML file's folder).
    :param rows: sample input, 2-D with one column per feature and at least 2 rows;
        default: 64 rows drawn uniformly from [0, 1) with ``seed``.
    :param output_range: when given, scores must lie in it (and the scorer sees it).
    :param plugins: plugin objects to look ``factory`` up in when it is a name.
    :param threads: threads scoring at once in the ``threads`` check.
    :param timeout_s: how long one call may take before it counts as hung.
    :param rtol: relative tolerance when comparing scores of the same rows.
    :param atol: absolute tolerance when comparing scores of the same rows.
    :return: a :class:`ConformanceReport`; ``report.ok`` is True when nothing was found.
    """
    resolved, label, declared = _resolve_factory(factory, plugins)
    if options_type is None:
        options_type = declared
    names = (
        tuple(f"f{i}" for i in range(feature_names))
        if isinstance(feature_names, int)
        else tuple(feature_names)
    )
    sample = _sample_rows(rows, len(names), seed)
    checker = Checker(
        factory=resolved,
        label=label,
        options=dict(options or {}),
        options_type=options_type,
        feature_names=names,
        base_dir=Path(base_dir).resolve(),
        rows=sample,
        output_range=output_range,
        step_name=step_name,
        threads=max(2, threads),
        calls_per_thread=max(1, calls_per_thread),
        timeout_s=timeout_s,
        rtol=rtol,
        atol=atol,
    )
    return _run(checker)


def _resolve_factory(
    factory: Callable[..., Any] | str, plugins: Sequence[Any]
) -> tuple[Callable[..., Any], str, type[Any] | None]:
    """The factory, its label in the report, and the options type it was registered with."""
    if not isinstance(factory, str):
        label = getattr(factory, "__qualname__", None) or type(factory).__name__
        return factory, str(label), None
    from scoring_core.plugins import PluginHost

    host = PluginHost(code_plugins=plugins)
    registration = host.scorers.get(factory)
    if registration is None:
        known = ", ".join(sorted(host.scorers)) or "none"
        errors = "; ".join(f"{p.name}: {p.error}" for p in host.load_errors())
        more = f"; plugins that failed to load: {errors}" if errors else ""
        raise LookupError(f"no scorer {factory!r} is registered (known: {known}){more}")
    return registration.factory, repr(factory), registration.options


def _sample_rows(rows: Any, width: int, seed: int) -> FloatRows:
    """The rows to score: ``rows`` checked and made float32, or random ones from ``seed``."""
    if rows is None:
        generator = np.random.default_rng(seed)
        return np.ascontiguousarray(generator.random((64, width), dtype=np.float32))
    array = np.ascontiguousarray(np.asarray(rows, dtype=np.float32))
    if array.ndim != 2 or array.shape[1] != width or array.shape[0] < 2:
        raise ValueError(
            f"rows must be 2-D with at least 2 rows and {width} columns (one per feature); "
            f"got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise ValueError("rows must be finite: the engine never passes NaN or infinity")
    return array


def _run(checker: Checker) -> ConformanceReport:
    """Run every check in order, close what is left open, and sum the findings up."""
    try:
        context = checker.context()
        first = checker.build(context)
        check_single_calls(checker, first)
        check_repeat_calls(checker, first)
        check_threads(checker, first)
        check_close(checker, context, first)
        check_through_engine(checker)
    except StopChecksError:
        pass
    finally:
        close_leftovers(checker)
        report_close_errors(checker)
    return _report(checker)


def _report(checker: Checker) -> ConformanceReport:
    """The report of a finished run: what failed, what passed, what did not run and why."""
    failed = set(checker.checks_failed())
    if "shape" in failed:
        for name in ("finite", "output_range"):
            if name not in failed:
                checker.skip(name, "the output had the wrong shape")
    for name in CHECKS:
        if name not in checker.ran:
            checker.skip(name, "an earlier check could not complete")
    passed = tuple(
        name for name in checker.ran if name not in failed and name not in checker.skipped
    )
    reasons: dict[str, list[str]] = {}
    for name, reason in checker.skipped.items():
        if name not in failed:
            reasons.setdefault(reason, []).append(name)
    skipped = tuple(f"{', '.join(names)} ({reason})" for reason, names in reasons.items())
    return ConformanceReport(checker.label, tuple(checker.violations), passed, skipped)
