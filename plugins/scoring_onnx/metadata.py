"""The model's ``metadata_props`` contract: keys and the feature-name check.

Keys (all optional; values are strings, as ONNX metadata requires):

``scoring_core.feature_names``  JSON array of the input columns' names, in order; checked
``scoring_core.model_version``  free-form version string; reported in diagnostics
``scoring_core.self_test``      JSON ``{"rows": [[...]], "expected": [...], "tolerance": t}``:
                                golden rows the model must score within ``t`` at every load
other ``scoring_core.*`` keys   reported in diagnostics as they are
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from scoring_onnx.errors import OnnxLoadError

__all__ = [
    "FEATURE_NAMES_KEY",
    "METADATA_PREFIX",
    "MODEL_VERSION_KEY",
    "SELF_TEST_KEY",
    "check_feature_names",
    "golden_rows",
    "metadata_feature_names",
    "scoring_metadata",
]

METADATA_PREFIX = "scoring_core."
FEATURE_NAMES_KEY = "scoring_core.feature_names"
MODEL_VERSION_KEY = "scoring_core.model_version"
SELF_TEST_KEY = "scoring_core.self_test"


def golden_rows(
    metadata: Mapping[str, str], width: int, path: Path
) -> tuple[list[list[float]], list[float], float] | None:
    """The model's embedded self-test (rows, expected, tolerance), or None if it has none."""
    raw = metadata.get(SELF_TEST_KEY)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        rows = [[float(v) for v in row] for row in data["rows"]]
        expected = [float(v) for v in data["expected"]]
        tolerance = float(data.get("tolerance", 1e-5))
    except (ValueError, TypeError, KeyError) as exc:
        raise OnnxLoadError(
            f"model {path} has unreadable {SELF_TEST_KEY} metadata ({type(exc).__name__}: "
            f'{exc}); it must be JSON {{"rows": [[...]], "expected": [...], '
            '"tolerance": t}; re-export the model',
            path=path,
        ) from None
    if len(rows) != len(expected) or any(len(row) != width for row in rows):
        raise OnnxLoadError(
            f"model {path}: {SELF_TEST_KEY} needs one expected score per row and {width} "
            "values per row; re-export the model",
            path=path,
        )
    return rows, expected, tolerance


def scoring_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """The ``scoring_core.*`` entries, sorted by key."""
    return {k: metadata[k] for k in sorted(metadata) if k.startswith(METADATA_PREFIX)}


def check_feature_names(
    metadata: Mapping[str, str], engine_names: tuple[str, ...], path: Path
) -> bool:
    """Compare the model's feature names with the engine's; True when they were checked.

    Raises :class:`OnnxLoadError` naming the first differing position, or the length
    difference, when they disagree.
    """
    raw = metadata.get(FEATURE_NAMES_KEY)
    if raw is None:
        return False
    model_names = _parse_names(raw, path)
    for index, (model_name, engine_name) in enumerate(zip(model_names, engine_names, strict=False)):
        if model_name != engine_name:
            raise OnnxLoadError(
                f"model {path} was trained on other features: at position {index} its metadata "
                f"({FEATURE_NAMES_KEY}) has {model_name!r} where the engine has "
                f"{engine_name!r}. Use the model trained for this feature order, or make "
                "`features:` match the model.",
                path=path,
            )
    if len(model_names) != len(engine_names):
        common = min(len(model_names), len(engine_names))
        longer, extra = (
            ("model", model_names)
            if len(model_names) > len(engine_names)
            else ("engine", engine_names)
        )
        raise OnnxLoadError(
            f"model {path} lists {len(model_names)} feature names in {FEATURE_NAMES_KEY}, the "
            f"engine has {len(engine_names)} features: the first {common} agree and the "
            f"{longer} goes on with {extra[common]!r} at position {common}. Use the model "
            "trained for these features, or fix `features:`.",
            path=path,
        )
    return True


def metadata_feature_names(metadata: Mapping[str, str], path: Path) -> tuple[str, ...] | None:
    """The names in the model's ``scoring_core.feature_names`` metadata, or None."""
    raw = metadata.get(FEATURE_NAMES_KEY)
    return None if raw is None else tuple(_parse_names(raw, path))


def _parse_names(raw: str, path: Path) -> list[str]:
    try:
        names = json.loads(raw)
    except ValueError as exc:
        raise OnnxLoadError(
            f"model {path} has metadata {FEATURE_NAMES_KEY} that is not valid JSON ({exc}); "
            "it must be a JSON array of feature names. Export the model again.",
            path=path,
        ) from exc
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise OnnxLoadError(
            f"model {path} has metadata {FEATURE_NAMES_KEY} that is not a JSON array of "
            f"strings (found {type(names).__name__}); export the model again.",
            path=path,
        )
    return names
