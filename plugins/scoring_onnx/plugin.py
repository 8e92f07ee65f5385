"""The plugin hook that registers the ``onnx`` scorer with the engine."""

from __future__ import annotations

from scoring_core import RegisterScorer, hookimpl
from scoring_onnx.options import OnnxOptions
from scoring_onnx.scorer import OnnxScorer

__all__ = ["scoring_register_scorers"]


@hookimpl
def scoring_register_scorers(register: RegisterScorer) -> None:
    """Register ``onnx``: :class:`OnnxScorer`, configured by :class:`OnnxOptions`."""
    register("onnx", OnnxScorer, options=OnnxOptions)
