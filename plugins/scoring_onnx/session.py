"""Creating the onnxruntime session: lazy import, session options and providers.

onnxruntime, a dependency of scoring-core, is imported here, inside functions, so
``import scoring_onnx`` stays cheap; an environment where it went missing still imports
the plugin and reports the step as unavailable, saying how to repair the install.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scoring_onnx.errors import OnnxLoadError
from scoring_onnx.options import OnnxOptions

__all__ = ["ProviderReport", "create_session", "import_onnxruntime"]

REINSTALL_HINT = "pip install --force-reinstall scoring-core"

_OPTIMIZATION_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


@dataclass(frozen=True)
class ProviderReport:
    """Requested providers against what onnxruntime actually runs the model with."""

    requested: tuple[str, ...]
    active: tuple[str, ...]
    dropped: tuple[str, ...]


def import_onnxruntime() -> Any:
    """Import onnxruntime, or raise :class:`OnnxLoadError` saying how to reinstall it."""
    try:
        return importlib.import_module("onnxruntime")
    except ImportError as exc:
        raise OnnxLoadError(
            f"onnxruntime is not importable ({type(exc).__name__}: {exc}): it is missing from "
            "this environment although scoring-core depends on it, and the onnx scorer needs "
            f"it. Reinstall: `{REINSTALL_HINT}`."
        ) from exc


def create_session(
    ort: Any,
    source: bytes | str,
    path: Path,
    options: OnnxOptions,
    libraries: Sequence[str] = (),
) -> tuple[Any, ProviderReport]:
    """Build an InferenceSession from ``source``: the checked model bytes, or the path of
    their private copy beside its external data (:func:`scoring_onnx.staging.staged`).
    ``path`` is the model file as configured, for messages.

    ``libraries`` are the paths of custom-op libraries checked against their pinned sha256.
    """
    available = tuple(ort.get_available_providers())
    requested = options.providers
    unavailable = tuple(p for p in requested if p not in available)
    if unavailable and options.strict_providers:
        raise OnnxLoadError(_strict_message(ort, unavailable, available), path=path)
    # Passing an unavailable provider makes onnxruntime emit a UserWarning and drop it;
    # leave it out ourselves and report it as dropped instead.
    passed = [p for p in requested if p in available] or ["CPUExecutionProvider"]
    try:
        session_options = _session_options(ort, options)
        for library in libraries:
            session_options.register_custom_ops_library(library)
        session = ort.InferenceSession(source, sess_options=session_options, providers=passed)
    except Exception as exc:
        reason = str(exc).strip()
        raise OnnxLoadError(
            f"onnxruntime {ort.__version__} could not load model file {path}: {reason}. Check "
            "that the file is a complete ONNX model whose opset this onnxruntime supports; "
            "export or copy it again.",
            path=path,
        ) from exc
    active = tuple(session.get_providers())
    dropped = tuple(p for p in requested if p not in active)
    if dropped and options.strict_providers:
        raise OnnxLoadError(_strict_message(ort, dropped, available), path=path)
    report = ProviderReport(requested=requested, active=active, dropped=dropped)
    return session, report


def _session_options(ort: Any, options: OnnxOptions) -> Any:
    session_options = ort.SessionOptions()
    if options.intra_op_threads:
        session_options.intra_op_num_threads = options.intra_op_threads
    if options.inter_op_threads:
        session_options.inter_op_num_threads = options.inter_op_threads
    level = _OPTIMIZATION_LEVELS[options.graph_optimization_level]
    session_options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    return session_options


def _strict_message(ort: Any, dropped: tuple[str, ...], available: tuple[str, ...]) -> str:
    return (
        f"requested execution provider(s) {', '.join(dropped)} are not active in onnxruntime "
        f"{ort.__version__} (available: {', '.join(available)}) and strict_providers is true. "
        "Install an onnxruntime build that has them (e.g. onnxruntime-gpu for "
        "CUDAExecutionProvider), remove them from `providers`, or set strict_providers: false "
        "to run on the remaining providers."
    )
