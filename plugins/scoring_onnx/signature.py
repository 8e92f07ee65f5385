"""How rows go into the model and which output comes out, checked against the engine.

Inputs: one matrix input ``[batch, F]`` holding every feature in the engine's order, or
one input per feature (``[batch, 1]`` or ``[batch]``, as skl2onnx writes a DataFrame's
columns), matched to the features by name. Each input is fed in the element type the
model declares.

Output: the only output, or the one named by ``output:``; a matrix or a ZipMap (a
sequence of maps, one per row) is cut down to one column by ``class:`` or ``column:``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from scoring_onnx.errors import OnnxConfigError, OnnxLoadError

__all__ = ["Dim", "Feed", "OutputPlan", "plan_feed", "plan_output"]

Dim = int | str | None  # onnxruntime reports a fixed size, a symbolic name, or nothing

# The element types onnxruntime's CPU provider runs for the usual exporters' inputs.
_TENSOR_DTYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}
_TYPE_NAMES = {np.dtype(dtype): name for name, dtype in _TENSOR_DTYPES.items()}
_EXPORTED_NAME = re.compile(r"[^A-Za-z0-9_]")
_SCORE_TYPES = ("tensor(float)", "tensor(double)", "tensor(float16)")
_LABEL_TYPES = ("tensor(int64)", "tensor(int32)")
# Rows in float32 lose integers above 2**24: a model fed doubles or wide ints is given
# float64 rows, checked in that precision.
_NEEDS_FLOAT64 = frozenset({np.dtype(np.float64), np.dtype(np.int64), np.dtype(np.int32)})


@dataclass(frozen=True)
class Feed:
    """The model's inputs, in the engine's feature order.

    ``columns`` is False for one matrix input (``names`` has one entry) and True for one
    input per feature. ``fixed_batch`` is 1 for a model exported with its batch dimension
    fixed at 1 (run one row at a time), None when it is dynamic.
    """

    names: tuple[str, ...]
    dtypes: tuple[np.dtype[Any], ...]
    shapes: tuple[tuple[Dim, ...], ...]
    columns: bool
    fixed_batch: int | None

    @property
    def row_dtype(self) -> np.dtype[Any]:
        """The element type the engine should check rows in for this model."""
        return np.dtype(np.float64 if any(d in _NEEDS_FLOAT64 for d in self.dtypes) else np.float32)

    def describe(self) -> Any:
        entries = [
            {"name": n, "type": _TYPE_NAMES[d], "shape": list(s)}
            for n, d, s in zip(self.names, self.dtypes, self.shapes, strict=True)
        ]
        return entries if self.columns else entries[0]

    def feeds(self, X: npt.NDArray[Any]) -> dict[str, npt.NDArray[Any]]:
        """The onnxruntime feed for the rows ``X`` (n, F)."""
        if not self.columns:
            dtype = self.dtypes[0]
            return {self.names[0]: X if X.dtype == dtype else _cast(X, dtype, self.names[0])}
        feed = {}
        for j, (name, dtype, shape) in enumerate(
            zip(self.names, self.dtypes, self.shapes, strict=True)
        ):
            column = X[:, j : j + 1] if len(shape) == 2 else X[:, j]
            feed[name] = np.ascontiguousarray(_cast(column, dtype, name))
        return feed


def _cast(X: npt.NDArray[Any], dtype: np.dtype[Any], name: str) -> npt.NDArray[Any]:
    """``X`` as ``dtype``; a value the type cannot hold is a ValueError, never a wrap."""
    if dtype.kind == "f":
        with np.errstate(over="ignore"):
            cast = X.astype(dtype)
        if not np.isfinite(cast).all():
            raise ValueError(
                f"input {name!r} is {dtype}: a value is too large for it "
                f"(largest {float(np.finfo(dtype).max):g})"
            )
        return cast
    if dtype.kind == "b":
        if not np.isin(X, (0, 1)).all():
            raise ValueError(f"input {name!r} is bool: values must be 0 or 1")
        return X.astype(dtype)
    info = np.iinfo(dtype)
    whole = bool(np.all(np.round(X) == X))
    if not (whole and X.min(initial=0) >= info.min and X.max(initial=0) <= info.max):
        raise ValueError(
            f"input {name!r} is {dtype}: values must be whole numbers in [{info.min}, {info.max}]"
        )
    return X.astype(dtype)


def plan_feed(session: Any, feature_names: Sequence[str], path: Path) -> Feed:
    """How the engine's rows feed ``session``; :class:`OnnxLoadError` when they cannot."""
    inputs = session.get_inputs()
    n_features = len(feature_names)
    for model_input in inputs:
        if model_input.type not in _TENSOR_DTYPES:
            raise OnnxLoadError(
                f"model {path} input {model_input.name!r} is {model_input.type}; the onnx "
                f"scorer feeds numeric tensors ({', '.join(_TENSOR_DTYPES)}).",
                path=path,
            )
    if len(inputs) == 1 and len(inputs[0].shape) == 2 and inputs[0].shape[1] != 1:
        return _matrix_feed(inputs[0], n_features, path)
    if len(inputs) == 1 and n_features != 1:
        model_input = inputs[0]
        raise OnnxLoadError(
            f"model {path} input {model_input.name!r} has shape {list(model_input.shape)}; "
            f"expected [batch, {n_features}] (all features in one input) or one input per "
            "feature named after it.",
            path=path,
        )
    return _column_feed(inputs, feature_names, path)


def _matrix_feed(model_input: Any, n_features: int, path: Path) -> Feed:
    shape: tuple[Dim, ...] = tuple(model_input.shape)
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
    return Feed(
        names=(model_input.name,),
        dtypes=(np.dtype(_TENSOR_DTYPES[model_input.type]),),
        shapes=(shape,),
        columns=False,
        fixed_batch=_fixed_batch(shape[0], model_input.name, path),
    )


def _column_feed(inputs: Sequence[Any], feature_names: Sequence[str], path: Path) -> Feed:
    by_name = {i.name: i for i in inputs}
    # skl2onnx writes a column name that is not an identifier with `_` in place of each
    # other character ('od280/od315' -> 'od280_od315'): match a feature to that too.
    for name in feature_names:
        exported = _EXPORTED_NAME.sub("_", name)
        if name not in by_name and exported in by_name and exported not in feature_names:
            by_name[name] = by_name.pop(exported)
    for model_input in inputs:
        shape = tuple(model_input.shape)
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise OnnxLoadError(
                f"model {path} has {len(inputs)} inputs; input {model_input.name!r} has shape "
                f"{list(shape)}, but an input per feature must be [batch, 1] or [batch].",
                path=path,
            )
    missing = [name for name in feature_names if name not in by_name]
    extra = [name for name in by_name if name not in set(feature_names)]
    if missing or extra:
        parts = []
        if missing:
            close = difflib.get_close_matches(missing[0], extra, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            parts.append(f"no input for feature(s) {_names(missing)}{hint}")
        if extra:
            parts.append(f"input(s) {_names(extra)} match no feature")
        raise OnnxLoadError(
            f"model {path} takes one input per feature, matched by name, and "
            f"{'; '.join(parts)}. The model's inputs are {_names(list(by_name))}: name the "
            "features after them (or leave `features:` out to take them from the model).",
            path=path,
        )
    ordered = [by_name[name] for name in feature_names]
    batches = {_fixed_batch(next(iter(i.shape)), i.name, path) for i in ordered}
    if len(ordered) != len(inputs):
        raise OnnxLoadError(f"model {path}: two features match the same input", path=path)
    return Feed(
        names=tuple(i.name for i in ordered),
        dtypes=tuple(np.dtype(_TENSOR_DTYPES[i.type]) for i in ordered),
        shapes=tuple(tuple(i.shape) for i in ordered),
        columns=True,
        fixed_batch=1 if 1 in batches else None,
    )


def column_input_names(session: Any) -> tuple[str, ...] | None:
    """The feature names a model with one input per feature gives, or None."""
    inputs = session.get_inputs()
    if len(inputs) < 2:
        return None
    shapes = [tuple(i.shape) for i in inputs]
    if all(len(s) == 1 or (len(s) == 2 and s[1] == 1) for s in shapes):
        return tuple(i.name for i in inputs)
    return None


def _names(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


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


# -- the output --------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputPlan:
    """The output served and how one score per row is cut from it.

    ``extract(result, n)`` takes what onnxruntime returned for that output and gives a
    float array of shape (n,). ``bindable`` is True for a one-score-per-row float tensor,
    which a one-row call can bind to a fixed buffer.
    """

    name: str
    type: str
    shape: tuple[Dim, ...]
    dtype: np.dtype[Any]
    column: int | None
    label: Any
    extract: Callable[[Any, int], npt.NDArray[Any]]
    bindable: bool

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "shape": list(self.shape),
        }
        if self.column is not None:
            described["column"] = self.column
        if self.label is not None:
            described["class"] = self.label
        return described


def plan_output(
    session: Any,
    path: Path,
    *,
    output: str | None,
    class_label: str | int | None,
    column: int | None,
    labels: Callable[[str], list[Any] | None],
) -> OutputPlan:
    """The served output; :class:`OnnxConfigError` when the options do not pick one.

    ``labels(name)`` gives the class labels the model carries for output ``name`` (or None).
    """
    outputs = {o.name: o for o in session.get_outputs()}
    if output is None:
        if len(outputs) != 1:
            raise OnnxConfigError(
                f"model {path} has {len(outputs)} outputs; choose the one to serve with "
                f"`output:`.\n{_outputs_table(session)}\n{_yaml_hint(session)}",
                path=path,
            )
        output = next(iter(outputs))
    elif output not in outputs:
        raise OnnxConfigError(
            f"model {path} has no output {output!r}.\n{_outputs_table(session)}\n"
            f"{_yaml_hint(session)}",
            path=path,
        )
    chosen = outputs[output]
    shape: tuple[Dim, ...] = tuple(chosen.shape) if chosen.shape is not None else ()
    kind = chosen.type
    if kind.startswith("seq(map("):
        return _zipmap_plan(chosen, path, class_label, column, labels)
    if kind not in _SCORE_TYPES + _LABEL_TYPES:
        raise OnnxConfigError(
            f"model {path} output {output!r} is {kind}; the onnx scorer serves a float tensor, "
            f"a ZipMap (sequence of maps) or an integer label tensor.\n{_outputs_table(session)}",
            path=path,
        )
    dtype = np.dtype(_TENSOR_DTYPES[kind])
    # A symbolic second dimension is one score per row unless `class:`/`column:` says
    # otherwise; each result is checked when it comes.
    picking = class_label is not None or column is not None
    wide = len(shape) == 2 and (
        (isinstance(shape[1], int) and shape[1] != 1) or (not isinstance(shape[1], int) and picking)
    )
    if not wide:
        if class_label is not None or column is not None:
            key = "class" if class_label is not None else "column"
            raise OnnxConfigError(
                f"model {path} output {output!r} has shape {list(shape)}: one value per row, "
                f"so `{key}:` has nothing to pick; remove it.",
                path=path,
            )
        if len(shape) not in (1, 2):
            raise OnnxConfigError(
                f"model {path} output {output!r} has shape {list(shape)}; expected [batch] or "
                "[batch, 1] (one score per row), or a matrix with `column:` or `class:`.",
                path=path,
            )
        return OutputPlan(
            name=output,
            type=kind,
            shape=shape,
            dtype=dtype,
            column=None,
            label=None,
            extract=_one_per_row,
            bindable=kind in _SCORE_TYPES,
        )
    if len(shape) != 2:
        raise OnnxConfigError(
            f"model {path} output {output!r} has shape {list(shape)}; expected a matrix "
            "[batch, K].",
            path=path,
        )
    if class_label is None and column is None:
        known = labels(output)
        classes = f" (class labels {known})" if known else ""
        raise OnnxConfigError(
            f"model {path} output {output!r} has shape {list(shape)}: several values per "
            f"row{classes}. Pick one with `class: LABEL` or `column: K`, e.g.\n"
            f"      output: {output}\n"
            + (f"      class: {known[-1]}" if known else "      column: 1"),
            path=path,
        )
    width: int | None = shape[1] if isinstance(shape[1], int) else None
    if class_label is not None:
        column = _label_column(output, class_label, labels(output), path)
    assert column is not None
    if width is not None and column >= width:
        raise OnnxConfigError(
            f"model {path} output {output!r} has {width} columns (0 to {width - 1}); "
            f"`column: {column}` is outside them.",
            path=path,
        )
    picked = column

    def extract(result: Any, n: int) -> npt.NDArray[Any]:
        if result.ndim != 2 or result.shape[0] != n or result.shape[1] <= picked:
            raise ValueError(
                f"the model returned shape {list(result.shape)} for {n} rows; expected "
                f"[{n}, K] with K > {picked}"
            )
        picked_column: npt.NDArray[Any] = result[:, picked]
        return picked_column

    return OutputPlan(
        name=output,
        type=kind,
        shape=shape,
        dtype=dtype,
        column=column,
        label=class_label,
        extract=extract,
        bindable=False,
    )


def _zipmap_plan(
    chosen: Any,
    path: Path,
    class_label: str | int | None,
    column: int | None,
    labels: Callable[[str], list[Any] | None],
) -> OutputPlan:
    known = labels(chosen.name)
    if class_label is None and column is None:
        raise OnnxConfigError(
            f"model {path} output {chosen.name!r} is {chosen.type} (a ZipMap: one map of "
            f"class -> probability per row{f', classes {known}' if known else ''}). Pick the "
            f"class with `class: LABEL`, e.g.\n      output: {chosen.name}\n"
            f"      class: {known[-1] if known else 1}",
            path=path,
        )
    if column is not None:
        if not known:
            raise OnnxConfigError(
                f"model {path} output {chosen.name!r} is a ZipMap whose class labels could not "
                "be read; use `class: LABEL` instead of `column:`.",
                path=path,
            )
        if column >= len(known):
            raise OnnxConfigError(
                f"model {path} output {chosen.name!r} has {len(known)} classes {known}; "
                f"`column: {column}` is outside them.",
                path=path,
            )
        key = known[column]
    else:
        key = known[_label_column(chosen.name, class_label, known, path)] if known else class_label
    key = str(key) if "string" in chosen.type.split(",")[0] else int(key)

    def extract(result: Any, n: int) -> npt.NDArray[Any]:
        if len(result) != n:
            raise ValueError(f"the model returned {len(result)} maps for {n} rows")
        try:
            return np.fromiter((row[key] for row in result), dtype=np.float32, count=n)
        except KeyError:
            raise ValueError(
                f"the model's output {chosen.name!r} has no class {key!r} in its maps "
                f"(classes: {sorted(result[0]) if n else []})"
            ) from None

    return OutputPlan(
        name=chosen.name,
        type=chosen.type,
        shape=(),
        dtype=np.dtype(np.float32),
        column=column,
        label=key,
        extract=extract,
        bindable=False,
    )


def _label_column(output: str, wanted: Any, known: list[Any] | None, path: Path) -> int:
    if not known:
        raise OnnxConfigError(
            f"model {path} carries no class labels for output {output!r}, so `class: "
            f"{wanted}` cannot be matched; use `column: K` (K counts from 0).",
            path=path,
        )
    for index, label in enumerate(known):
        if label == wanted or str(label) == str(wanted):
            return index
    raise OnnxConfigError(
        f"model {path}: `class: {wanted}` is not one of the model's class labels {known} "
        f"(output {output!r}); use one of them.",
        path=path,
    )


def _outputs_table(session: Any) -> str:
    lines = ["  its outputs:"]
    for o in session.get_outputs():
        shape = list(o.shape) if o.shape is not None else "?"
        lines.append(f"    {o.name}: {o.type}, shape {shape}")
    return "\n".join(lines)


def _yaml_hint(session: Any) -> str:
    outputs = session.get_outputs()
    scores = [
        o
        for o in outputs
        if o.type.startswith("seq(map(")
        or (
            o.type in _SCORE_TYPES and o.shape is not None and len(o.shape) == 2 and o.shape[1] != 1
        )
    ]
    if scores:
        return (
            "  add to the step's options, e.g.:\n"
            f"      output: {scores[0].name}\n"
            "      class: 1          # a class label of the model, or `column: K`"
        )
    return f"  add to the step's options, e.g.:\n      output: {outputs[0].name}"


def _one_per_row(result: Any, n: int) -> npt.NDArray[Any]:
    try:
        scores: npt.NDArray[Any] = result.reshape(n)
    except ValueError:
        raise ValueError(
            f"the model returned shape {list(result.shape)} for {n} rows; expected [{n}] or "
            f"[{n}, 1]"
        ) from None
    return scores
