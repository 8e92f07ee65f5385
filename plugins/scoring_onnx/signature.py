"""The model's input/output signature, checked against the engine's features.

One input, ``tensor(float)``, shape ``[batch, F]`` with ``F == len(feature_names)``;
one float output of shape ``[batch]`` or ``[batch, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scoring_onnx.errors import OnnxLoadError

__all__ = ["Dim", "Signature", "check_signature"]

Dim = int | str | None  # onnxruntime reports a fixed size, a symbolic name, or nothing

_OUTPUT_TYPES = ("tensor(float)", "tensor(double)")


@dataclass(frozen=True)
class Signature:
    """Names and shapes of the model's input and output.

    ``fixed_batch`` is 1 for a model exported with a batch dimension fixed at 1 (it is
    then run one row at a time); None when the batch dimension is dynamic.
    """

    input_name: str
    input_shape: tuple[Dim, ...]
    output_name: str
    output_shape: tuple[Dim, ...]
    fixed_batch: int | None


def check_signature(session: Any, n_features: int, path: Path) -> Signature:
    """Raise :class:`OnnxLoadError` unless the session's signature fits ``n_features``."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        names = ", ".join(repr(i.name) for i in inputs)
        raise OnnxLoadError(
            f"model {path} has {len(inputs)} inputs ({names}); the onnx scorer feeds exactly "
            f"one float input of shape [batch, {n_features}]. Export the model with a single "
            "input holding all features.",
            path=path,
        )
    model_input = inputs[0]
    shape: tuple[Dim, ...] = tuple(model_input.shape)
    expected = f"tensor(float) of shape [batch, {n_features}]"
    if model_input.type != "tensor(float)":
        raise OnnxLoadError(
            f"model {path} input {model_input.name!r} is {model_input.type}; expected "
            f"{expected}. Export the model with a float32 input (cast inside the graph if the "
            "model needs another type).",
            path=path,
        )
    if len(shape) != 2:
        raise OnnxLoadError(
            f"model {path} input {model_input.name!r} has shape {list(shape)}; expected "
            f"{expected}.",
            path=path,
        )
    width = shape[1]
    if not isinstance(width, int):
        raise OnnxLoadError(
            f"model {path} input {model_input.name!r} has shape {list(shape)}: its feature "
            f"dimension is not fixed, so it cannot be checked against the engine's "
            f"{n_features} features. Export the model with shape [batch, {n_features}].",
            path=path,
        )
    if width != n_features:
        raise OnnxLoadError(
            f"model {path} input {model_input.name!r} has shape {list(shape)}: the model takes "
            f"{width} features, the engine has {n_features}. Use the model trained for these "
            f"{n_features} features, or fix `features:`.",
            path=path,
        )
    fixed_batch = _fixed_batch(shape[0], model_input.name, path)
    output_name, output_shape = _check_output(session, path)
    return Signature(
        input_name=model_input.name,
        input_shape=shape,
        output_name=output_name,
        output_shape=output_shape,
        fixed_batch=fixed_batch,
    )


def _fixed_batch(batch: Dim, input_name: str, path: Path) -> int | None:
    if not isinstance(batch, int) or batch <= 0:
        return None
    if batch == 1:
        return 1
    raise OnnxLoadError(
        f"model {path} input {input_name!r} has its batch dimension fixed at {batch}, so it "
        "cannot score other batch sizes. Export it with a dynamic batch dimension "
        "(dim_param / dynamic_axes).",
        path=path,
    )


def _check_output(session: Any, path: Path) -> tuple[str, tuple[Dim, ...]]:
    outputs = session.get_outputs()
    if len(outputs) != 1:
        names = ", ".join(repr(o.name) for o in outputs)
        raise OnnxLoadError(
            f"model {path} has {len(outputs)} outputs ({names}); the onnx scorer needs exactly "
            "one output holding the score, of shape [batch] or [batch, 1].",
            path=path,
        )
    output = outputs[0]
    shape: tuple[Dim, ...] = tuple(output.shape)
    if output.type not in _OUTPUT_TYPES:
        raise OnnxLoadError(
            f"model {path} output {output.name!r} is {output.type}; expected tensor(float) or "
            "tensor(double) holding one score per row.",
            path=path,
        )
    # A symbolic second dimension cannot be checked here; score() checks each result.
    one_per_row = len(shape) == 1 or (
        len(shape) == 2 and (shape[1] == 1 or not isinstance(shape[1], int))
    )
    if not one_per_row:
        raise OnnxLoadError(
            f"model {path} output {output.name!r} has shape {list(shape)}; expected [batch] or "
            "[batch, 1] (one score per row).",
            path=path,
        )
    return output.name, shape
