"""scoring_onnx: the first-party ONNX Runtime scorer for scoring-core.

Registered as scorer ``onnx``. Importing this package does not import onnxruntime;
the scorer imports it when a step loads.
"""

from scoring_onnx.errors import OnnxConfigError, OnnxLoadError, ScorerClosedError
from scoring_onnx.metadata import FEATURE_NAMES_KEY, MODEL_VERSION_KEY
from scoring_onnx.options import OnnxOptions
from scoring_onnx.plugin import scoring_register_scorers
from scoring_onnx.scorer import OnnxScorer

__all__ = [
    "FEATURE_NAMES_KEY",
    "MODEL_VERSION_KEY",
    "OnnxConfigError",
    "OnnxLoadError",
    "OnnxOptions",
    "OnnxScorer",
    "ScorerClosedError",
    "scoring_register_scorers",
]
