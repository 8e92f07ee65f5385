"""What a scorer factory receives: :class:`ScorerContext`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = ["Scorer", "ScorerContext"]


@runtime_checkable
class Scorer(Protocol):
    """What a scorer factory returns.

    ``score`` takes a C-contiguous float32 array of shape ``(n, len(feature_names))``
    and returns an array-like of ``n`` scores (shape ``(n,)`` or ``(n, 1)``). It may
    be called from many threads at once. An optional ``close()`` is called exactly
    once, when the engine closes or the step is reloaded.
    """

    def score(self, X: npt.NDArray[np.float32], /) -> Any: ...


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
    """

    name: str
    scorer: str
    options: Any
    feature_names: tuple[str, ...]
    base_dir: Path
    output_range: tuple[float, float] | None = None
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("scoring_core"))

    def resolve_path(self, path: str | Path) -> Path:
        """Resolve ``path`` against the YAML file's folder (absolute paths stay as they are)."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)

    def option(self, key: str, default: Any = None) -> Any:
        """Read one option whether ``options`` is a mapping or a declared options object."""
        if isinstance(self.options, Mapping):
            return self.options.get(key, default)
        return getattr(self.options, key, default)
