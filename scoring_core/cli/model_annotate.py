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

from scoring_core.cli.annotate_files import read_feature_names, read_rows
from scoring_core.errors import ConfigError, DataFileError

__all__ = ["Annotation", "OutputChoice", "annotate_model"]


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


def _plans(
    session: Any, names: Sequence[str], model: Path, features: Path, choice: OutputChoice | None
) -> tuple[Any, Any]:
    """How the onnx scorer will feed the model and cut its score (the scorer's own code,
    so the self-test scores are what the step will serve); ConfigError naming the file."""
    from scoring_onnx.errors import OnnxLoadError
    from scoring_onnx.labels import class_labels
    from scoring_onnx.signature import plan_feed, plan_output

    try:
        feed = plan_feed(session, names, model)
    except OnnxLoadError as exc:
        raise ConfigError(
            f"{exc} ({features} lists {len(names)} names: list exactly the model's features, "
            "in its column order)",
            file=str(model),
        ) from None
    if choice is None:
        return feed, None
    try:
        plan = plan_output(
            session,
            model,
            output=choice.output,
            class_label=choice.label,
            column=choice.column,
            labels=class_labels(model),
        )
    except OnnxLoadError as exc:
        message = str(exc).replace("`output:`", "--output").replace("`class:", "`--class")
        raise ConfigError(
            f"{message} (pass --output, --class or --column as the step's options will)",
            file=str(model),
        ) from None
    return feed, plan


def _describe_inputs(feed: Any) -> str:
    if feed.columns:
        return f"{len(feed.names)} inputs, one per feature, matched by name"
    shape = "[" + ", ".join(str(d) if isinstance(d, int) else "N" for d in feed.shapes[0]) + "]"
    described = feed.describe()
    return f"one input {feed.names[0]!r} {described['type']} {shape}"


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
    feed, plan = _plans(session, names, model, features, choice if rows_file else None)
    inputs = _describe_inputs(feed)
    try:
        proto = onnx.load(str(model))
    except Exception as exc:
        raise ConfigError(f"onnx cannot read the model: {exc}", file=str(model)) from exc
    entries = {FEATURE_NAMES_KEY: json.dumps(names)}
    done = Annotation(model=model, out=out, names=names, inputs=inputs)
    if rows_file is not None:
        X = read_rows(rows_file, names)
        try:
            value = session.run([plan.name], feed.feeds(X))[0]
            expected = np.asarray(plan.extract(value, X.shape[0]), dtype=np.float64)
        except Exception as exc:
            raise ConfigError(
                f"onnxruntime could not score the self-test rows of {rows_file}: "
                f"{str(exc).strip()}; check that the feature names fit the model's inputs",
                file=str(model),
            ) from exc
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
            f"{len(rows)} rows from {rows_file}, scored by output {plan.name!r}{pick}, "
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
