"""Checks on the model file before onnxruntime reads it: :func:`check_model_file`.

Order: the file exists, is not too big, matches its pinned SHA-256 (hashed before any
parser sees the bytes), and refers to no external data outside its folder. A tensor can
only name an external file through the key ``location``, so a file whose only ``location``
bytes sit in top-level text fields (a feature name in ``metadata_props``, say) refers to
none and is left to onnxruntime to parse (which spares importing ``onnx``, 60-100 ms at
every start); :func:`explain_load_failure` parses it when onnxruntime refuses it.
Otherwise the file is parsed with the ``onnx`` package and every external location checked;
without ``onnx`` that is left to onnxruntime, which refuses escaping external data itself
in recent releases (see docs/scorers/onnx.md).
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any

from scoring_onnx.errors import OnnxLoadError

if TYPE_CHECKING:
    from onnx import GraphProto, ModelProto, NodeProto, TensorProto

__all__ = ["ModelFile", "check_model_file", "explain_load_failure"]

_EXTERNAL = 1  # onnx.TensorProto.EXTERNAL, without importing onnx here
_LOCATION_KEY = b"location"  # the external_data key that names the file
# ModelProto fields that are strings or string maps and never hold a tensor (onnx.proto):
# producer_name, producer_version, domain, doc_string, metadata_props.
_TEXT_FIELDS = frozenset({2, 3, 4, 6, 14})


@dataclass(frozen=True)
class ModelFile:
    """What the checks found. ``inspected`` is False when ``onnx`` was not importable.

    ``data`` holds the bytes that were hashed and checked; onnxruntime is given those
    bytes (or a private copy of them, see :mod:`scoring_onnx.staging`), never the path
    again, so a file swapped after the check cannot be served in its place.
    ``locations`` maps each external data location, as the model writes it, to the file
    it was checked against.
    """

    path: Path
    size: int
    sha256: str
    inspected: bool
    external_files: tuple[Path, ...] = ()
    external_bytes: int = 0
    data: bytes = field(default=b"", repr=False, compare=False)
    locations: tuple[tuple[str, Path], ...] = ()


def check_model_file(path: Path, *, sha256: str | None, max_bytes: int) -> ModelFile:
    """Run every check that does not need onnxruntime; raise :class:`OnnxLoadError`."""
    _check_size(path, max_bytes)
    data = read_once(path, max_bytes, what="model file")
    size = len(data)
    actual = hashlib.sha256(data).hexdigest()
    if sha256 is not None and actual != sha256:
        raise OnnxLoadError(
            f"model file {path} has sha256 {actual}, but the step's options pin sha256 {sha256}; "
            "the file is not the pinned model. Deploy the pinned file, or, once you have checked "
            "the new model, update `sha256:` in the config.",
            path=path,
        )
    if _location_only_in_text_fields(data):
        return ModelFile(path=path, size=size, sha256=actual, inspected=True, data=data)
    onnx = _import_onnx()
    if onnx is None:
        return ModelFile(path=path, size=size, sha256=actual, inspected=False, data=data)
    model = _parse(onnx, data, path)
    locations = _external_locations(model, path)
    files = tuple(dict.fromkeys(target for _, target in locations))
    external_bytes = sum(f.stat().st_size for f in files)
    if size + external_bytes > max_bytes:
        raise OnnxLoadError(
            f"model {path} is {size} bytes plus {external_bytes} bytes of external data "
            f"({', '.join(f.name for f in files)}), more than max_model_bytes={max_bytes}; "
            "raise `max_model_bytes` in the step's options if the model is meant to be this big.",
            path=path,
        )
    return ModelFile(
        path=path,
        size=size,
        sha256=actual,
        inspected=True,
        external_files=files,
        external_bytes=external_bytes,
        data=data,
        locations=locations,
    )


def read_once(path: Path, max_bytes: int, *, what: str) -> bytes:
    """The bytes of the regular file at ``path``, read through one open file and at most
    ``max_bytes`` of them (a file that grew past the limit meanwhile is refused)."""
    try:
        with path.open("rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise OnnxLoadError(f"{what} {path} is not a regular file", path=path)
            data = file.read(max_bytes + 1)
    except OSError as exc:
        raise OnnxLoadError(
            f"{what} {path} cannot be read ({exc.strerror or exc}); check its permissions",
            path=path,
        ) from None
    if len(data) > max_bytes:
        raise OnnxLoadError(
            f"{what} {path} is more than max_model_bytes={max_bytes} bytes; raise "
            "`max_model_bytes` in the step's options if the model is meant to be this big.",
            path=path,
        )
    if not data:
        raise OnnxLoadError(
            f"{what} {path} is empty (0 bytes); copy or export it again.", path=path
        )
    return data


def explain_load_failure(path: Path) -> None:
    """For a file onnxruntime refused: raise the ``onnx`` parser's clearer error, if any."""
    onnx = _import_onnx()
    if onnx is None:
        return
    try:
        data = path.read_bytes()
    except OSError:
        return
    _parse(onnx, data, path)


def check_custom_op_library(path: Path, sha256: str) -> tuple[Path, bytes]:
    """A custom-op library is loaded only when its bytes hash to the pinned sha256: the
    path and those bytes (which are what is loaded, see :mod:`scoring_onnx.staging`)."""
    if not path.is_file():
        raise OnnxLoadError(
            f"custom-op library {path} is not a regular file; check `custom_op_libraries`",
            path=path,
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise OnnxLoadError(
            f"custom-op library {path} cannot be read ({exc.strerror}); check "
            "`custom_op_libraries` in the step's options",
            path=path,
        ) from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256.lower():
        raise OnnxLoadError(
            f"custom-op library {path} has sha256 {actual}, but the step's options allow only "
            f"sha256 {sha256.lower()}; native code is loaded only when it is exactly the "
            "allow-listed file",
            path=path,
        )
    return path, data


def _check_size(path: Path, max_bytes: int) -> int:
    if not path.exists():
        raise OnnxLoadError(
            f"model file not found: {path}. Check `model:` in the step's options (a relative "
            "path resolves against the YAML file's folder, or base_dir for "
            "Engine.from_config), or produce the model first.",
            path=path,
        )
    if not path.is_file():
        raise OnnxLoadError(
            f"model path {path} is not a regular file; `model:` must name the .onnx file itself.",
            path=path,
        )
    size = path.stat().st_size
    if size == 0:
        raise OnnxLoadError(
            f"model file {path} is empty (0 bytes); copy or export the model again.", path=path
        )
    if size > max_bytes:
        raise OnnxLoadError(
            f"model file {path} is {size} bytes, more than max_model_bytes={max_bytes}; raise "
            "`max_model_bytes` in the step's options if the model is meant to be this big.",
            path=path,
        )
    return size


def _location_only_in_text_fields(data: bytes) -> bool:
    """True when every ``location`` in ``data`` lies inside a top-level text field.

    Sound because top-level fields occupy disjoint byte ranges, so an external-data key
    ``location`` (inside the graph, training_info or functions) is outside every text
    field, and protobuf stores strings as raw bytes, so the key cannot hide by escaping.
    """
    found = data.find(_LOCATION_KEY)
    if found == -1:
        return True
    spans = _text_field_spans(data)
    if spans is None:
        return False
    while found != -1:
        end = found + len(_LOCATION_KEY)
        if not any(start <= found and end <= stop for start, stop in spans):
            return False
        found = data.find(_LOCATION_KEY, found + 1)
    return True


def _text_field_spans(data: bytes) -> list[tuple[int, int]] | None:
    """The payload spans of the ``_TEXT_FIELDS`` of a serialized ModelProto.

    Reads only the top level of the protobuf wire format; None ("cannot tell") for a
    truncated key, varint or length, a field past the end, or a wire type other than
    0 (varint), 1 (fixed64), 2 (length-delimited) or 5 (fixed32).
    """
    spans: list[tuple[int, int]] = []
    position = 0
    while position < len(data):
        key = _read_varint(data, position)
        if key is None:
            return None
        field_key, position = key
        field, wire_type = field_key >> 3, field_key & 7
        if wire_type == 0:
            value = _read_varint(data, position)
            if value is None:
                return None
            position = value[1]
        elif wire_type == 1:
            position += 8
        elif wire_type == 5:
            position += 4
        elif wire_type == 2:
            length = _read_varint(data, position)
            if length is None:
                return None
            start = length[1]
            position = start + length[0]
            if field in _TEXT_FIELDS:
                spans.append((start, position))
        else:
            return None
        if position > len(data):
            return None
    return spans


def _read_varint(data: bytes, position: int) -> tuple[int, int] | None:
    """The varint at ``position`` and the position after it; None if truncated or too long."""
    value = 0
    for shift in range(0, 70, 7):
        if position >= len(data):
            return None
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
    return None


def _import_onnx() -> Any:
    try:
        return importlib.import_module("onnx")
    except ImportError:
        return None


def _parse(onnx: Any, data: bytes, path: Path) -> ModelProto:
    try:
        model: ModelProto = onnx.load_model_from_string(data)
    except Exception as exc:
        raise OnnxLoadError(
            f"model file {path} is not a valid ONNX model: parsing failed "
            f"({type(exc).__name__}: {exc}). The file may be truncated or not an ONNX file; "
            "copy or export it again.",
            path=path,
        ) from exc
    if not model.HasField("graph") or not model.opset_import:
        raise OnnxLoadError(
            f"model file {path} is not a valid ONNX model: it has no graph or no opset. "
            "The file may be truncated or not an ONNX file; copy or export it again.",
            path=path,
        )
    return model


def _external_locations(model: ModelProto, path: Path) -> tuple[tuple[str, Path], ...]:
    """The distinct external data locations the model refers to, each with the file it
    names, checked to stay inside the model's folder."""
    allowed = {path.parent.resolve(), path.resolve().parent}
    found: dict[str, Path] = {}
    for tensor in _all_tensors(model):
        if tensor.data_location != _EXTERNAL and not tensor.external_data:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        if location not in found:
            found[location] = _check_location(location, tensor.name, path, allowed)
    return tuple(found.items())


def _check_location(location: str, tensor: str, path: Path, allowed: set[Path]) -> Path:
    refused = (
        f"model {path} refers to external data outside its folder: tensor {tensor!r} reads "
        f"{location!r}. Absolute paths, '..' and symlinks that leave {path.parent} are refused "
        "so that a model file cannot read arbitrary files. Keep the data next to the model and "
        "save it with a relative location (onnx.save_model(..., save_as_external_data=True))."
    )
    if not location:
        raise OnnxLoadError(
            f"model {path} declares external data for tensor {tensor!r} without a location; "
            "the file is corrupt: export it again.",
            path=path,
        )
    if (
        PurePosixPath(location).is_absolute()
        or PureWindowsPath(location).is_absolute()
        or PureWindowsPath(location).drive
        or location.startswith(("/", "\\"))
        or ".." in re.split(r"[\\/]", location)
    ):
        raise OnnxLoadError(refused, path=path)
    target = (path.parent / location).resolve()
    if not any(target.is_relative_to(folder) for folder in allowed):
        raise OnnxLoadError(refused, path=path)
    if not target.is_file():
        raise OnnxLoadError(
            f"model {path} reads tensor {tensor!r} from external data file {location!r}, which "
            f"does not exist in {path.parent}; copy the model together with its data file(s).",
            path=path,
        )
    return target


def _all_tensors(model: ModelProto) -> Iterator[TensorProto]:
    yield from _graph_tensors(model.graph)
    for function in model.functions:
        for node in function.node:
            yield from _node_tensors(node)


def _graph_tensors(graph: GraphProto) -> Iterator[TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        yield from _node_tensors(node)


def _node_tensors(node: NodeProto) -> Iterator[TensorProto]:
    for attribute in node.attribute:
        if attribute.HasField("t"):
            yield attribute.t
        yield from attribute.tensors
        sparse_tensors = list(attribute.sparse_tensors)
        if attribute.HasField("sparse_tensor"):
            sparse_tensors.append(attribute.sparse_tensor)
        for sparse in sparse_tensors:
            yield sparse.values
            yield sparse.indices
        if attribute.HasField("g"):
            yield from _graph_tensors(attribute.g)
        for graph in attribute.graphs:
            yield from _graph_tensors(graph)
