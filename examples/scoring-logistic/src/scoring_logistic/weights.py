"""The weights file: reading it, checking it against the engine's features, folding it.

The file is JSON::

    {
      "feature_names": ["tenure_years", "support_tickets_90d", "monthly_spend", "logins_30d"],
      "coefficients": [-0.9, 0.6, -0.4, -0.5],
      "intercept": -0.2,
      "mean": [3.1, 1.4, 52.0, 11.0],
      "std": [2.2, 1.3, 18.0, 6.5],
      "model_version": "2026-01"
    }

``mean`` and ``std`` are optional: when given, the model was trained on standardised
features, ``(x - mean) / std``, and that scaling ships in the same file as the weights
so it cannot be forgotten. The score is ``1 / (1 + exp(-(intercept + coefficients . z)))``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = ["LogisticWeights", "WeightsError", "read_weights"]

MAX_WEIGHTS_BYTES = 16 * 1024 * 1024


class WeightsError(ValueError):
    """The weights file is missing, malformed, or does not match the engine's features."""


class _WeightsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    feature_names: list[str] = Field(min_length=1)
    coefficients: list[float] = Field(min_length=1)
    intercept: float
    mean: list[float] | None = None
    std: list[float] | None = None
    model_version: str | None = None

    @model_validator(mode="after")
    def _check_lengths(self) -> _WeightsFile:
        n = len(self.feature_names)
        for key in ("coefficients", "mean", "std"):
            values = getattr(self, key)
            if values is not None and len(values) != n:
                raise ValueError(f"{key} has {len(values)} values for {n} feature_names")
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ValueError("every std must be greater than 0")
        repeated = sorted({f for f in self.feature_names if self.feature_names.count(f) > 1})
        if repeated:
            raise ValueError(f"feature_names lists {', '.join(map(repr, repeated))} twice")
        return self


@dataclass(frozen=True)
class LogisticWeights:
    """The model folded for scoring: ``logit = X @ coefficients + intercept`` on raw features."""

    coefficients: npt.NDArray[np.float64]
    intercept: float
    path: Path
    sha256: str
    model_version: str | None


def read_weights(path: Path, feature_names: Sequence[str]) -> LogisticWeights:
    """Read and check the weights file at ``path`` for an engine with ``feature_names``.

    Raises :class:`WeightsError` with a message that says what is wrong and what to do.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise WeightsError(f"weights file {path} does not exist") from None
    if size > MAX_WEIGHTS_BYTES:
        raise WeightsError(f"weights file {path} is {size} bytes; the limit is 16 MiB")
    raw = path.read_bytes()
    try:
        parsed = _WeightsFile.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise WeightsError(f"weights file {path}: {problems}") from None
    _check_names(parsed.feature_names, tuple(feature_names), path)

    coefficients = np.array(parsed.coefficients, dtype=np.float64)
    intercept = parsed.intercept
    if parsed.std is not None:
        coefficients = coefficients / np.array(parsed.std, dtype=np.float64)
    if parsed.mean is not None:
        intercept -= float(coefficients @ np.array(parsed.mean, dtype=np.float64))
    if not (np.isfinite(coefficients).all() and math.isfinite(intercept)):
        raise WeightsError(f"weights file {path}: the folded weights are not finite")
    return LogisticWeights(
        coefficients=coefficients,
        intercept=intercept,
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        model_version=parsed.model_version,
    )


def _describe(error: object) -> str:
    details = error if isinstance(error, dict) else {}
    loc = ".".join(str(part) for part in details.get("loc", ()))
    kind, msg = details.get("type", ""), str(details.get("msg", "invalid"))
    if kind == "json_invalid":
        return f"not valid JSON ({details.get('ctx', {}).get('error', msg)})"
    if kind == "missing":
        return f"missing key {loc!r}"
    if kind == "extra_forbidden":
        return (
            f"unknown key {loc!r} (keys: feature_names, coefficients, intercept, mean, std, "
            "model_version)"
        )
    msg = msg.removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg


def _check_names(in_file: list[str], engine: tuple[str, ...], path: Path) -> None:
    if tuple(in_file) == engine:
        return
    missing = [name for name in engine if name not in in_file]
    extra = [name for name in in_file if name not in engine]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"the engine's features {_names(missing)} are not in the file")
        if extra:
            parts.append(f"the file has features the engine does not: {_names(extra)}")
        raise WeightsError(
            f"weights file {path} does not match the engine's features: {'; '.join(parts)}"
        )
    position = next(i for i, (a, b) in enumerate(zip(in_file, engine, strict=True)) if a != b)
    raise WeightsError(
        f"weights file {path} lists the engine's features in another order: position "
        f"{position} is {in_file[position]!r} in the file but {engine[position]!r} in the "
        "engine's `features:`; the coefficients would multiply the wrong columns, so put both "
        "in the same order"
    )


def _names(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")
