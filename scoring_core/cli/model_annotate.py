"""What ``scoring models annotate`` does: write feature names, and a self-test, into a model.

The keys and their format are the onnx scorer's (:mod:`scoring_onnx.metadata`): the names
go under ``scoring_core.feature_names`` as a JSON array, the self-test under
``scoring_core.self_test`` as ``{"rows": [[...]], "expected": [...], "tolerance": t}``,
so that the scorer checks the names and runs the self-test at every load. The expected
scores come from onnxruntime running the model as it is, fed the way the scorer feeds it:
the rows as float32 (the engine's rows), then in the element type the model declares, as
one ``[N, F]`` tensor or as one ``[N, 1]`` (or ``[N]``) input per feature, by name.

onnx (to edit the metadata) and onnxruntime are imported when the command runs. Every
problem is a :class:`~scoring_core.ConfigError` or :class:`~scoring_core.DataFileError`
naming the file and what to do (exit 2).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from scoring_core.cli.annotate_files import read_feature_names, read_rows
from scoring_core.errors import ConfigError, DataFileError, did_you_mean

__all__ = ["Annotation", "OutputChoice", "annotate_model"]

_NUMPY_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
}


@dataclass(frozen=True)
class OutputChoice:
    """``--output``, ``--class`` and ``--column``: which output value is the score."""

    output: str | None = None
    label: str | None = None
    column: int | None = None


@dataclass
class Annotation:
    """What was written, for the command to print."""

    model: Path
    out: Path
    names: list[str]
    inputs: str
    replaced: list[str] = field(default_factory=list)
    self_test: str | None = None
    model_version: str | None = None
    kept_self_test: bool = False  # the model had a self-test, and no new one was written


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ConfigError(
            "scoring models annotate needs the onnx package to edit the model's metadata: "
            "pip install 'scoring-core[onnx]'"
        ) from None
    return onnx


def _session(model: Path) -> Any:
    import onnxruntime

    try:
        return onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ConfigError(
            f"onnxruntime cannot load the model: {str(exc).strip()}; check that it is a "
            "complete ONNX model",
            file=str(model),
        ) from exc


def _shape(value: Any) -> str:
    return "[" + ", ".join("N" if not isinstance(d, int) else str(d) for d in value.shape) + "]"


def _check_inputs(session: Any, names: Sequence[str], model: Path, features: Path) -> str:
    """Check the names against the model's inputs; describe how the model is fed."""
    inputs = session.get_inputs()
    for model_input in inputs:
        if model_input.type not in _NUMPY_TYPES:
            raise ConfigError(
                f"input {model_input.name!r} is {model_input.type}; the onnx scorer feeds "
                f"numbers ({', '.join(_NUMPY_TYPES)})",
                file=str(model),
            )
    if _one_tensor(inputs):
        only = inputs[0]
        width = only.shape[1]
        if isinstance(width, int) and width != len(names):
            raise ConfigError(
                f"the model's input {only.name!r} has shape {_shape(only)}: it takes {width} "
                f"features, and {features} lists {len(names)} names. List exactly the "
                f"{width} features the model was trained on, in its column order.",
                file=str(model),
            )
        fixed = "" if isinstance(width, int) else " (its width is not fixed: not checked)"
        return f"one input {only.name!r} {only.type} {_shape(only)}{fixed}"
    by_name = {model_input.name: model_input for model_input in inputs}
    missing = [name for name in names if name not in by_name]
    extra = [name for name in by_name if name not in names]
    if missing or extra:
        problems = []
        if missing:
            hint = did_you_mean(missing[0], extra, list_known=False) if extra else ""
            problems.append(
                f"the model has no input named {', '.join(map(repr, missing[:5]))}"
                f"{' ...' if len(missing) > 5 else ''}{hint}"
            )
        if extra:
            problems.append(f"its input(s) {', '.join(map(repr, extra[:5]))} are not listed")
        raise ConfigError(
            f"the model has {len(inputs)} inputs, one per feature, matched by name to the "
            f"names in {features}: {'; '.join(problems)}. List the model's input names: "
            f"{', '.join(by_name)}",
            file=str(model),
        )
    for model_input in inputs:
        shape = model_input.shape
        one_column = len(shape) == 2 and (shape[1] == 1 or not isinstance(shape[1], int))
        if len(shape) != 1 and not one_column:
            raise ConfigError(
                f"input {model_input.name!r} has shape {_shape(model_input)}; a model with one "
                "input per feature takes [N, 1] or [N] for each",
                file=str(model),
            )
    return f"{len(inputs)} inputs, one per feature, matched by name"


def _one_tensor(inputs: Sequence[Any]) -> bool:
    """One ``[N, F]`` input holding every feature (else: one input per feature, by name)."""
    return len(inputs) == 1 and len(inputs[0].shape) == 2


def _feed(session: Any, names: Sequence[str], X: npt.NDArray[np.float32]) -> dict[str, Any]:
    inputs = session.get_inputs()
    if _one_tensor(inputs):
        return {inputs[0].name: X.astype(_NUMPY_TYPES[inputs[0].type])}
    feed = {}
    for model_input in inputs:
        column = X[:, names.index(model_input.name)].astype(_NUMPY_TYPES[model_input.type])
        feed[model_input.name] = column.reshape(-1, 1) if len(model_input.shape) == 2 else column
    return feed


def _class_labels(model_proto: Any) -> list[str] | None:
    """The class labels a classifier carries (skl2onnx's ``classlabels_*`` attributes)."""
    for node in model_proto.graph.node:
        for attribute in node.attribute:
            if attribute.name in ("classlabels_ints", "classlabels_int64s"):
                return [str(v) for v in attribute.ints]
            if attribute.name == "classlabels_strings":
                return [v.decode("utf-8", "replace") for v in attribute.strings]
    return None


def _pick_output(session: Any, choice: OutputChoice, model: Path) -> Any:
    outputs = session.get_outputs()
    listing = "; ".join(f"{o.name!r} {o.type} {_shape(o)}" for o in outputs)
    if choice.output is None:
        if len(outputs) == 1:
            return outputs[0]
        raise ConfigError(
            f"the model has {len(outputs)} outputs ({listing}); pass --output NAME to say "
            "which one holds the score (and --class LABEL or --column K for a matrix or a "
            "ZipMap), as the step's `output:` option will",
            file=str(model),
        )
    for output in outputs:
        if output.name == choice.output:
            return output
    raise ConfigError(
        f"the model has no output {choice.output!r}"
        f"{did_you_mean(choice.output, [o.name for o in outputs], list_known=False)}; its "
        f"outputs: {listing}",
        file=str(model),
    )


def _scores(
    value: Any, output: Any, choice: OutputChoice, labels: list[str] | None, model: Path
) -> npt.NDArray[np.float64]:
    """The score column of one output value: a tensor, or a ZipMap's list of maps."""
    where = f"output {output.name!r} ({output.type})"
    if isinstance(value, list):  # a ZipMap: one {label: probability} per row
        keys = list(value[0]) if value else []
        key = _zipmap_key(keys, choice, where, model)
        return np.asarray([row[key] for row in value], dtype=np.float64)
    array = np.asarray(value)
    if array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1):
        if choice.label is not None or choice.column is not None:
            raise ConfigError(
                f"{where} holds one value per row; leave out --class and --column",
                file=str(model),
            )
        return array.reshape(-1).astype(np.float64)
    if array.ndim != 2:
        raise ConfigError(
            f"{where} has shape {list(array.shape)}; expected [N] or [N, K]", file=str(model)
        )
    width = array.shape[1]
    if choice.column is not None:
        if not 0 <= choice.column < width:
            raise ConfigError(
                f"--column {choice.column} is outside {where}'s {width} columns (0 to {width - 1})",
                file=str(model),
            )
        return array[:, choice.column].astype(np.float64)
    if choice.label is not None:
        if labels is None or len(labels) != width:
            raise ConfigError(
                f"the model carries no class labels for the {width} columns of {where}; pass "
                "--column K instead of --class",
                file=str(model),
            )
        if choice.label not in labels:
            raise ConfigError(
                f"--class {choice.label!r} is not a class of the model; its "
                f"classes: {', '.join(labels)}",
                file=str(model),
            )
        return array[:, labels.index(choice.label)].astype(np.float64)
    classes = f" (one of {', '.join(labels)})" if labels else ""
    raise ConfigError(
        f"{where} has {width} columns; pass --class LABEL{classes} or --column K to pick the score",
        file=str(model),
    )


def _zipmap_key(keys: list[Any], choice: OutputChoice, where: str, model: Path) -> Any:
    shown = ", ".join(str(k) for k in keys)
    if choice.column is not None:
        if not 0 <= choice.column < len(keys):
            raise ConfigError(
                f"--column {choice.column} is outside {where}'s {len(keys)} classes ({shown})",
                file=str(model),
            )
        return keys[choice.column]
    if choice.label is None:
        raise ConfigError(
            f"{where} maps each class to its probability; pass --class LABEL (one of {shown})",
            file=str(model),
        )
    for key in keys:
        if str(key) == choice.label:
            return key
    raise ConfigError(
        f"--class {choice.label!r} is not a class of {where}; its classes: {shown}", file=str(model)
    )


def annotate_model(
    model: Path,
    features: Path,
    out: Path,
    *,
    force: bool = False,
    rows_file: str | None = None,
    choice: OutputChoice = OutputChoice(),
    tolerance: float | None = None,
    model_version: str | None = None,
) -> Annotation:
    """Write ``features``' names (and a self-test from ``rows_file``) into a copy of
    ``model`` at ``out``; the metadata keys are the onnx scorer's."""
    from scoring_onnx.metadata import FEATURE_NAMES_KEY, MODEL_VERSION_KEY, SELF_TEST_KEY

    if not model.is_file():
        what = "is a folder" if model.is_dir() else "does not exist"
        raise ConfigError(f"the model file {str(model)!r} {what}", file=str(model))
    if out.exists() and not force:
        same = out.resolve() == model.resolve()
        raise ConfigError(
            ("-o names the model itself" if same else "the output file exists already")
            + "; pass --force to overwrite it, or choose another -o",
            file=str(out),
        )
    names = read_feature_names(features)
    onnx = _import_onnx()
    session = _session(model)
    inputs = _check_inputs(session, names, model, features)
    try:
        proto = onnx.load(str(model))
    except Exception as exc:
        raise ConfigError(f"onnx cannot read the model: {exc}", file=str(model)) from exc
    entries = {FEATURE_NAMES_KEY: json.dumps(names)}
    done = Annotation(model=model, out=out, names=names, inputs=inputs)
    if rows_file is not None:
        X = read_rows(rows_file, names)
        output = _pick_output(session, choice, model)
        try:
            value = session.run([output.name], _feed(session, names, X))[0]
        except Exception as exc:
            raise ConfigError(
                f"onnxruntime could not score the self-test rows of {rows_file}: "
                f"{str(exc).strip()}; check that the feature names fit the model's inputs",
                file=str(model),
            ) from exc
        expected = _scores(value, output, choice, _class_labels(proto), model)
        if not np.isfinite(expected).all():
            raise DataFileError(
                f"the model scores row {int(np.flatnonzero(~np.isfinite(expected))[0]) + 1} of "
                f"{rows_file} as a non-finite value; pick rows the model scores",
                file=rows_file,
            )
        scale = max(1.0, float(np.abs(expected).max()))
        tol = tolerance if tolerance is not None else 1e-5 * scale
        rows = [[float(v) for v in row] for row in X.tolist()]  # float32 values, exactly
        entries[SELF_TEST_KEY] = json.dumps(
            {"rows": rows, "expected": expected.tolist(), "tolerance": tol}
        )
        pick = (
            f", class {choice.label}"
            if choice.label is not None
            else f", column {choice.column}"
            if choice.column is not None
            else ""
        )
        done.self_test = (
            f"{len(rows)} rows from {rows_file}, scored by output {output.name!r}{pick}, "
            f"tolerance {tol:g}"
        )
    if model_version is not None:
        entries[MODEL_VERSION_KEY] = model_version
        done.model_version = model_version
    old = [(entry.key, entry.value) for entry in proto.metadata_props]
    done.replaced = [key for key, _ in old if key in entries]
    done.kept_self_test = SELF_TEST_KEY not in entries and any(k == SELF_TEST_KEY for k, _ in old)
    del proto.metadata_props[:]
    for key, value in old:
        if key not in entries:
            proto.metadata_props.add(key=key, value=value)
    for key, value in entries.items():
        proto.metadata_props.add(key=key, value=value)
    _write(proto, out)
    return done


def _write(proto: Any, out: Path) -> None:
    """Write the model next to ``out`` first, then move it over ``out`` (never half a file)."""
    folder = out.resolve().parent
    if not folder.is_dir():
        raise ConfigError(f"the folder of {str(out)!r} does not exist", file=str(out))
    handle, temporary = tempfile.mkstemp(prefix=f".{out.name}.", dir=folder)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(proto.SerializeToString())
        umask = os.umask(0o022)  # mkstemp makes the file private; give it a model's mode
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
