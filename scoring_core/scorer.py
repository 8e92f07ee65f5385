"""The plugin author's contract: what a scorer is, what it may also do, what it receives.

A scorer is any object with ``score(X)`` (:class:`Scorer`), built by a factory that takes
a :class:`ScorerContext` and registered through ``register`` (:class:`RegisterScorer`)
in the ``scoring_register_scorers`` hook. Its optional capabilities are protocols of
their own: :class:`SupportsClose`, :class:`SupportsDescribe`, :class:`SupportsCancel`,
:class:`WatchesFiles`, :class:`DeclaresInputDtype` and :class:`DescribesModel`; a factory
may also be :class:`SuppliesFeatureNames`. Every name here is exported from ``scoring_core``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = [
    "DeclaresInputDtype",
    "DescribesModel",
    "RegisterScorer",
    "Scorer",
    "ScorerContext",
    "SuppliesFeatureNames",
    "SupportsCancel",
    "SupportsClose",
    "SupportsDescribe",
    "WatchesFiles",
]


@runtime_checkable
class Scorer(Protocol):
    """What a scorer factory returns: an object with ``score(X)``.

    ``score`` takes a C-contiguous float32 array of shape ``(n, len(feature_names))``
    and returns an array-like of ``n`` scores (shape ``(n,)`` or ``(n, 1)``). It may
    be called from many threads at once.

    A scorer may also offer any of the optional capabilities below; the engine checks
    for each with ``isinstance`` against its protocol, once, when the step loads.
    """

    def score(self, X: npt.NDArray[np.float32], /) -> Any: ...


@runtime_checkable
class SupportsClose(Protocol):
    """``close()``: release what the scorer holds.

    Called exactly once, when the engine closes or a reload replaces the scorer, after
    the calls already running on it have finished. An exception is reported by
    ``engine.close()`` (with the others, as an ExceptionGroup), never swallowed.
    """

    def close(self) -> None: ...


@runtime_checkable
class SupportsDescribe(Protocol):
    """``describe()``: a JSON-serialisable mapping shown as the step's ``details`` in
    ``engine.diagnostics()`` and ``scoring check --json`` (model version, sha256, ...)."""

    def describe(self) -> Mapping[str, Any]: ...


@runtime_checkable
class SupportsCancel(Protocol):
    """Cancellation: a scorer whose calls can be stopped from another thread.

    With ``timeout_ms`` set on its step, such a scorer runs on the caller's thread: the
    engine takes a fresh ``cancel_token()`` per call, calls ``score(X, token)``, and its
    watchdog calls ``cancel(token)`` when the call overruns (the ONNX scorer does this
    through ``RunOptions.terminate``). ``score(X, token)`` then raises. Scorers without it
    are run on a worker thread and abandoned when they overrun.
    """

    def cancel_token(self) -> Any: ...

    def cancel(self, token: Any, /) -> None: ...

    def score(self, X: npt.NDArray[np.float32], token: Any = ..., /) -> Any: ...


@runtime_checkable
class WatchesFiles(Protocol):
    """``watched_files()``: the files whose change should reload the step, with the
    config's ``watch:`` on (the ONNX scorer returns its model file and external data)."""

    def watched_files(self) -> Sequence[Path]: ...


@runtime_checkable
class DeclaresInputDtype(Protocol):
    """``input_dtype``: the element type the scorer wants its rows in.

    ``numpy.float64`` makes the engine check rows in float64 and hand them over as such
    (the ONNX scorer says so for a model with double inputs); anything else means
    float32, the default. A scorer that does not declare it always gets float32.
    """

    input_dtype: Any


@runtime_checkable
class DescribesModel(Protocol):
    """``model_identity()``: which model this scorer serves, for every score's provenance.

    Returns ``{"model_version": str | None, "model_sha256": str | None}``. Called once
    when the step loads (or reloads) the scorer, never per row; the answer is stamped on
    every score that scorer gives (``ScoreResult.provenance``). The ONNX scorer answers the
    version folder it loaded (or the version the model file carries) and the file's sha256.
    """

    def model_identity(self) -> Mapping[str, str | None]: ...


@runtime_checkable
class SuppliesFeatureNames(Protocol):
    """A factory that can read the feature names from what its step will load.

    ``feature_names(options, base_dir)`` returns the names in input order, or None when
    what it loads does not name them. The engine calls it on the first such step of a
    config that leaves ``features:`` out (the ONNX scorer's class reads the model's
    ``scoring_core.feature_names`` metadata, or its per-feature input names).
    """

    def feature_names(self, options: Any, base_dir: Path, /) -> Sequence[str] | None: ...


@dataclass(frozen=True)
class ScorerContext:
    """Everything a scorer needs to load itself.

    :ivar name: the chain step's name (``neural``), for messages and logs.
    :ivar scorer: the registered scorer name (``onnx``).
    :ivar options: the step's ``options``: an instance of the scorer's declared options
        class when it declared one, otherwise a read-only mapping.
    :ivar feature_names: the engine's features, in input column order.
    :ivar base_dir: the folder relative paths resolve against (the YAML file's folder).
    :ivar output_range: ``(low, high)`` when the config sets ``output_range``.
    :ivar logger: a logger named after the step.
    :ivar timeout_s: the step's ``timeout_ms`` in seconds, or None.
    :ivar load_timeout_s: how long the engine waits for the scorer to load (its factory
        and the step's self-test), the step's ``load_timeout_s``. The engine abandons a
        load past it; a scorer that runs long work of its own at load (the onnx scorer's
        embedded self-test) should stop that work by then.
    :ivar self_test: the step's configured ``self_test:`` as a check: ``self_test(scorer)``
        returns None when the scorer scores the golden rows right, else what went wrong
        (None when the step has no ``self_test:``). The engine runs it on what the factory
        returns anyway; a scorer that chooses among candidates (model versions) calls it on
        each so that it picks one that passes.
    """

    name: str
    scorer: str
    options: Any
    feature_names: tuple[str, ...]
    base_dir: Path
    output_range: tuple[float, float] | None = None
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("scoring_core"))
    timeout_s: float | None = None
    load_timeout_s: float | None = None
    self_test: Callable[[Any], str | None] | None = None

    def resolve_path(self, path: str | Path) -> Path:
        """Resolve ``path`` against the YAML file's folder (absolute paths stay as they are)."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)

    def option(self, key: str, default: Any = None) -> Any:
        """Read one option whether ``options`` is a mapping or a declared options object."""
        if isinstance(self.options, Mapping):
            return self.options.get(key, default)
        return getattr(self.options, key, default)


class RegisterScorer(Protocol):
    """The ``register`` callback handed to the ``scoring_register_scorers`` hook.

    Call it once per scorer: ``name`` is what a chain step names under ``scorer:``;
    ``factory`` is any callable taking a :class:`ScorerContext` and returning a
    :class:`Scorer` (usually the scorer class itself); ``options`` is a pydantic model class
    or a dataclass describing the step's ``options:``, validated when the engine is built.

    Raises :class:`~scoring_core.PluginError` when another plugin already registered
    ``name`` (the message names both plugins) or ``factory`` is not callable.
    """

    def __call__(
        self,
        name: str,
        factory: Callable[[ScorerContext], Scorer],
        *,
        options: type[Any] | None = None,
    ) -> None: ...
