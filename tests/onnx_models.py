"""Small, deterministic ONNX models for the onnx scorer's tests, built with onnx.helper.

Every writer takes the path to write and returns it. Models use opset 17, IR version 8
(so any onnxruntime the project supports can read them) and a dynamic batch dimension
named ``batch``. Without ``weights`` the linear models score the mean of each row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "OPSET",
    "mean_weights",
    "write_external_data_model",
    "write_int64_input_model",
    "write_linear_model",
    "write_long_node_model",
    "write_nan_above_model",
    "write_slow_model",
    "write_slow_self_test_model",
    "write_two_input_model",
    "write_weights",
]

OPSET = 17
IR_VERSION = 8
BATCH = "batch"


def _save(graph: onnx.GraphProto, path: Path, metadata: dict[str, str] | None = None) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def _metadata(feature_names: Sequence[str] | None, model_version: str | None) -> dict[str, str]:
    metadata: dict[str, str] = {}
    if feature_names is not None:
        metadata["scoring_core.feature_names"] = json.dumps(list(feature_names))
    if model_version is not None:
        metadata["scoring_core.model_version"] = model_version
    return metadata


def mean_weights(n_features: int) -> npt.NDArray[np.float32]:
    return np.full(n_features, 1.0 / n_features, dtype=np.float32)


def write_linear_model(
    path: Path,
    n_features: int,
    *,
    feature_names: Sequence[str] | None = None,
    model_version: str | None = None,
    weights: npt.ArrayLike | None = None,
    bias: float = 0.0,
    output_rank: int = 2,
    batch_dim: int | str = BATCH,
) -> Path:
    """``y = X @ weights + bias``, output ``[batch, 1]`` (or ``[batch]`` with output_rank=1).

    ``feature_names`` and ``model_version`` go into ``metadata_props`` when given; any
    order or count may be written, to test the check.
    """
    w = mean_weights(n_features) if weights is None else np.asarray(weights, np.float32)
    w = w.reshape(n_features, 1) if output_rank == 2 else w.reshape(n_features)
    out_shape: list[int | str] = [batch_dim, 1] if output_rank == 2 else [batch_dim]
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["y"]),
        ],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch_dim, n_features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [
            numpy_helper.from_array(w, "w"),
            numpy_helper.from_array(np.array([bias], np.float32), "b"),
        ],
    )
    return _save(graph, path, _metadata(feature_names, model_version))


def write_nan_above_model(
    path: Path,
    n_features: int,
    *,
    threshold: float = 0.9,
    feature_names: Sequence[str] | None = None,
) -> Path:
    """The row mean, but NaN for rows whose first feature is above ``threshold``."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["mean"]),
            helper.make_node("Gather", ["x", "first"], ["x0"], axis=1),
            helper.make_node("Greater", ["x0", "threshold"], ["high"]),
            helper.make_node("Where", ["high", "nan", "mean"], ["y"]),
        ],
        "nan_above",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [BATCH, n_features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [BATCH, 1])],
        [
            numpy_helper.from_array(mean_weights(n_features).reshape(n_features, 1), "w"),
            numpy_helper.from_array(np.array([0], np.int64), "first"),
            numpy_helper.from_array(np.array([threshold], np.float32), "threshold"),
            numpy_helper.from_array(np.array([np.nan], np.float32), "nan"),
        ],
    )
    return _save(graph, path, _metadata(feature_names, None))


def write_two_input_model(path: Path, n_features: int) -> Path:
    """Two float inputs ``a`` and ``b`` of shape [batch, F]; scores mean(a + b)."""
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["a", "b"], ["ab"]),
            helper.make_node("MatMul", ["ab", "w"], ["y"]),
        ],
        "two_inputs",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [BATCH, n_features]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [BATCH, n_features]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [BATCH, 1])],
        [numpy_helper.from_array(mean_weights(n_features).reshape(n_features, 1), "w")],
    )
    return _save(graph, path)


def write_int64_input_model(path: Path, n_features: int) -> Path:
    """An int64 input of shape [batch, F], cast to float inside; scores the row mean."""
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
            helper.make_node("MatMul", ["xf", "w"], ["y"]),
        ],
        "int64_input",
        [helper.make_tensor_value_info("x", TensorProto.INT64, [BATCH, n_features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [BATCH, 1])],
        [numpy_helper.from_array(mean_weights(n_features).reshape(n_features, 1), "w")],
    )
    return _save(graph, path)


def write_float16_input_model(path: Path, n_features: int) -> Path:
    """A float16 input of shape [batch, F], cast to float inside; scores the row mean."""
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
            helper.make_node("MatMul", ["xf", "w"], ["y"]),
        ],
        "float16_input",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [BATCH, n_features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [BATCH, 1])],
        [numpy_helper.from_array(mean_weights(n_features).reshape(n_features, 1), "w")],
    )
    return _save(graph, path)


def write_external_data_model(path: Path, n_features: int, *, location: str) -> Path:
    """The mean model with its weights stored as external data at ``location``.

    ``location`` is written into the model as it is (``../weights.bin``, an absolute path,
    a symlink's name); the data file is not written: tests put it where they need it,
    with :func:`write_weights`.
    """
    weights = TensorProto()
    weights.name = "w"
    weights.data_type = TensorProto.FLOAT
    weights.dims.extend([n_features, 1])
    weights.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(4 * n_features))):
        entry = weights.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "external_data",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [BATCH, n_features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [BATCH, 1])],
        [weights],
    )
    # check_model would try to resolve the location: write the bytes unchecked.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def write_weights(path: Path, n_features: int) -> Path:
    """The mean model's weights as raw little-endian float32, for external data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(mean_weights(n_features).astype("<f4").tobytes())
    return path


def write_slow_model(path: Path, n_features: int, *, width: int = 1024, layers: int = 60) -> Path:
    """A model that takes tens of milliseconds a row: many wide MatMuls in sequence.

    Its output is a sigmoid, so in [0, 1]; onnxruntime checks ``RunOptions.terminate``
    between nodes, so a watchdog can stop it part-way.
    """
    rng = np.random.default_rng(0)
    nodes = []
    initializers = [
        numpy_helper.from_array(
            (rng.standard_normal((n_features, width)) * 0.01).astype(np.float32), "w_in"
        )
    ]
    nodes.append(helper.make_node("MatMul", ["x", "w_in"], ["h0"]))
    square = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
    initializers.append(numpy_helper.from_array(square, "w_sq"))
    for i in range(layers):
        nodes.append(helper.make_node("MatMul", [f"h{i}", "w_sq"], [f"m{i}"]))
        nodes.append(helper.make_node("Tanh", [f"m{i}"], [f"h{i + 1}"]))
    initializers.append(numpy_helper.from_array(np.ones((width, 1), np.float32) / width, "w_out"))
    nodes.append(helper.make_node("MatMul", [f"h{layers}", "w_out"], ["z"]))
    nodes.append(helper.make_node("Sigmoid", ["z"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "slow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [BATCH, n_features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [BATCH, 1])],
        initializer=initializers,
    )
    return _save(graph, path)


def write_slow_self_test_model(
    path: Path,
    feature_names: Sequence[str],
    *,
    rows: int = 2000,
    layers: int = 200,
) -> Path:
    """:func:`write_slow_model` carrying an embedded self-test that runs for tens of seconds.

    ``rows`` golden rows go through ``layers`` wide MatMuls (about 0.1 s a layer for
    2000 rows here): a self-test that, for a test, never ends. Stopping it between two nodes
    (``RunOptions.terminate``) works; nothing else does.
    """
    n = len(feature_names)
    write_slow_model(path, n, layers=layers)
    model = onnx.load(str(path))
    golden = {
        "rows": np.full((rows, n), 0.5).tolist(),
        "expected": [0.5] * rows,
        "tolerance": 1.0,
    }
    metadata = {
        "scoring_core.feature_names": json.dumps(list(feature_names)),
        "scoring_core.self_test": json.dumps(golden),
    }
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    path.write_bytes(model.SerializeToString())
    return path


def write_long_node_model(path: Path, n_features: int, *, size: int = 3072) -> Path:
    """The row mean, after one node that runs for about a second: a ``size`` x ``size``
    MatMul of a matrix expanded from the input (so nothing can fold it at load).

    onnxruntime checks ``RunOptions.terminate`` only between nodes, so a cancelled call
    runs to the end of that MatMul.
    """
    graph = helper.make_graph(
        [
            helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
            helper.make_node("Expand", ["total", "square"], ["big"]),
            helper.make_node("MatMul", ["big", "big"], ["product"]),
            helper.make_node("ReduceMean", ["product"], ["level"], keepdims=0),
            helper.make_node("Mul", ["level", "zero"], ["nothing"]),
            helper.make_node("MatMul", ["x", "w"], ["mean"]),
            helper.make_node("Add", ["mean", "nothing"], ["y"]),
        ],
        "long_node",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [BATCH, n_features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [BATCH, 1])],
        [
            numpy_helper.from_array(np.array([size, size], np.int64), "square"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
            numpy_helper.from_array(mean_weights(n_features).reshape(n_features, 1), "w"),
        ],
    )
    return _save(graph, path)
