"""Open Inference Protocol tensors: a request's inputs to numpy, outputs back to JSON or
to the binary tensor data extension (no HTTP here: :mod:`scoring_core.server.dataplane`
and the routes share it).

The binary extension (what ``tritonclient.http`` sends and asks for by default): the body
is the JSON header, ``Inference-Header-Content-Length`` bytes long, followed by each
binary tensor's bytes in the order of the tensors whose ``parameters.binary_data_size``
says how many. Numbers are little-endian, row-major; a BYTES element is a 4-byte
little-endian length and then its bytes.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from scoring_core.server.errors import ProtocolError

try:  # measured 4x faster than json for a 1,000-row request (benchmarks/bench_serve.py)
    import orjson

    _loads: Any = orjson.loads

    def _dumps(value: Any) -> bytes:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)

except ImportError:  # pragma: no cover - the serve extra brings orjson
    _loads = json.loads

    def _dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()


__all__ = [
    "NUMERIC_DTYPES",
    "DecodedRequest",
    "InputTensor",
    "OutputTensor",
    "decode_request",
    "encode_bytes",
    "encode_one_row",
    "encode_response",
]

#: OIP datatype -> numpy dtype (little-endian), for the numeric tensors we read.
NUMERIC_DTYPES: dict[str, np.dtype[Any]] = {
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "BOOL": np.dtype("?"),
}


@dataclass
class InputTensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: npt.NDArray[Any] | list[bytes]


@dataclass
class DecodedRequest:
    """A parsed infer request: its inputs, the outputs asked for (None: all), whether the
    outputs go back as binary data, and the request's ``id``."""

    inputs: list[InputTensor]
    outputs: list[str] | None = None
    binary_outputs: set[str] = field(default_factory=set)
    binary_by_default: bool = False
    id: str | None = None
    #: nothing but one float tensor in ``inputs`` (what :func:`_plain_request` reads)
    plain: bool = False


@dataclass
class OutputTensor:
    name: str
    datatype: str
    values: npt.NDArray[Any] | Sequence[str]


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ProtocolError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _shape(raw: Any, name: str) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in raw
    ):
        raise ProtocolError(
            f"input {name!r}: `shape` must be a list of non-negative integers, got {raw!r}"
        )
    return tuple(raw)


def _flat(values: Any) -> list[Any]:
    """JSON tensor data, flattened (clients send it flat or nested, row-major)."""
    if not isinstance(values, list):
        return [values]
    if not any(isinstance(v, list) for v in values):
        return values
    out: list[Any] = []
    for v in values:
        out.extend(_flat(v))
    return out


def _numbers(data: Any, count: int, dtype: np.dtype[Any]) -> npt.NDArray[Any] | None:
    """JSON numbers (flat or nested lists holding a float) as ``count`` values of the float
    ``dtype`` in one numpy call, the same values the one-by-one path gives (each number
    goes through a double either way); None for anything else (integer tensors, only
    ints, strings, ragged lists): the caller then checks value by value and says what is
    wrong."""
    if dtype.kind != "f" or not isinstance(data, list):
        return None
    try:
        array = np.asarray(data)
    except (ValueError, OverflowError):  # ragged, or an int too large
        return None
    if array.dtype.kind != "f" or array.size != count:
        return None
    return array.reshape(-1).astype(dtype, copy=False)


def _bytes_elements(blob: memoryview, count: int, name: str) -> list[bytes]:
    """Decode ``count`` BYTES elements (4-byte little-endian length + bytes each)."""
    out: list[bytes] = []
    at = 0
    for _ in range(count):
        if at + 4 > len(blob):
            raise ProtocolError(f"input {name!r}: its binary BYTES data ends early")
        (size,) = struct.unpack_from("<I", blob, at)
        at += 4
        if at + size > len(blob):
            raise ProtocolError(f"input {name!r}: its binary BYTES data ends early")
        out.append(bytes(blob[at : at + size]))
        at += size
    if at != len(blob):
        raise ProtocolError(f"input {name!r}: {len(blob) - at} bytes left after its elements")
    return out


def _input(raw: Any, binary: memoryview, at: int) -> tuple[InputTensor, int]:
    tensor = _object(raw, "each of `inputs`")
    name = tensor.get("name")
    if not isinstance(name, str):
        raise ProtocolError("each input needs a `name` (a string)")
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str):
        raise ProtocolError(f"input {name!r} needs a `datatype`, e.g. FP32")
    datatype = datatype.upper()
    shape = _shape(tensor.get("shape"), name)
    count = math.prod(shape)
    parameters = _object(tensor.get("parameters") or {}, f"input {name!r}: `parameters`")
    size = parameters.get("binary_data_size")
    if datatype != "BYTES" and datatype not in NUMERIC_DTYPES:
        raise ProtocolError(
            f"input {name!r}: datatype {datatype!r} is not one of "
            f"{', '.join([*NUMERIC_DTYPES, 'BYTES'])}"
        )
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ProtocolError(f"input {name!r}: `binary_data_size` must be an integer")
        if at + size > len(binary):
            raise ProtocolError(
                f"input {name!r}: binary_data_size {size} runs past the end of the body"
            )
        blob = binary[at : at + size]
        at += size
        if datatype == "BYTES":
            return InputTensor(name, datatype, shape, _bytes_elements(blob, count, name)), at
        dtype = NUMERIC_DTYPES[datatype]
        if size != count * dtype.itemsize:
            raise ProtocolError(
                f"input {name!r}: shape {list(shape)} of {datatype} needs "
                f"{count * dtype.itemsize} bytes, binary_data_size is {size}"
            )
        array = np.frombuffer(blob, dtype=dtype).reshape(shape)
        return InputTensor(name, datatype, shape, array), at
    if "data" not in tensor:
        raise ProtocolError(f"input {name!r} has neither `data` nor `binary_data_size`")
    if datatype != "BYTES":  # the common case in one numpy call
        fast = _numbers(tensor["data"], count, NUMERIC_DTYPES[datatype])
        if fast is not None:
            return InputTensor(name, datatype, shape, fast.reshape(shape)), at
    values = _flat(tensor["data"])
    if len(values) != count:
        raise ProtocolError(
            f"input {name!r}: shape {list(shape)} holds {count} values, `data` has {len(values)}"
        )
    if datatype == "BYTES":
        texts = [v.encode() if isinstance(v, str) else v for v in values]
        if not all(isinstance(v, bytes) for v in texts):
            raise ProtocolError(f"input {name!r}: BYTES data must be strings")
        return InputTensor(name, datatype, shape, texts), at
    if not all(isinstance(v, int | float) for v in values):
        bad = next(v for v in values if not isinstance(v, int | float))
        raise ProtocolError(f"input {name!r}: {datatype} data holds {bad!r}, not a number")
    try:
        array = np.asarray(values, dtype=NUMERIC_DTYPES[datatype]).reshape(shape)
    except (OverflowError, ValueError) as exc:
        raise ProtocolError(f"input {name!r}: {exc}") from None
    return InputTensor(name, datatype, shape, array), at


_FLOAT_ROWS = {"FP32": NUMERIC_DTYPES["FP32"], "FP64": NUMERIC_DTYPES["FP64"]}


def _plain_request(request: Any) -> DecodedRequest | None:
    """The request most clients send, decoded with few checks: nothing but ``inputs``,
    one FP32 or FP64 tensor of shape ``[n, F]`` whose ``data`` are floats, and no
    parameters. It is what :func:`decode_request` makes of it the long way; None for
    anything else, which then goes the long way (and gets its error messages)."""
    if type(request) is not dict or len(request) != 1:
        return None
    inputs = request.get("inputs")
    if type(inputs) is not list or len(inputs) != 1:
        return None
    tensor = inputs[0]
    if type(tensor) is not dict or len(tensor) != 4:
        return None
    name, shape = tensor.get("name"), tensor.get("shape")
    dtype = _FLOAT_ROWS.get(tensor.get("datatype"))  # type: ignore[arg-type]
    if dtype is None or type(name) is not str or type(shape) is not list or len(shape) != 2:
        return None
    rows, width = shape
    if type(rows) is not int or type(width) is not int or rows < 0 or width < 0:
        return None
    array = _numbers(tensor.get("data"), rows * width, dtype)
    if array is None:
        return None
    return DecodedRequest([InputTensor(name, tensor["datatype"], (rows, width),
                                       array.reshape(rows, width))], plain=True)  # fmt: skip


def decode_request(body: bytes, header_length: int | None = None) -> DecodedRequest:
    """Parse an infer request body (JSON, or the binary extension when ``header_length``,
    the ``Inference-Header-Content-Length`` header, is given); ProtocolError when it is
    not a well-formed request."""
    if header_length is None:
        header_length = len(body)
    if header_length < 0 or header_length > len(body):
        raise ProtocolError(
            f"Inference-Header-Content-Length is {header_length}, the body has {len(body)} bytes"
        )
    view = memoryview(body)
    try:
        request = _loads(view[:header_length].tobytes() if header_length < len(body) else body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"the request is not valid JSON: {exc}") from None
    if header_length == len(body):
        plain = _plain_request(request)
        if plain is not None:
            return plain
    request = _object(request, "the infer request")
    raw_inputs = request.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise ProtocolError("the infer request needs `inputs`, a non-empty list of tensors")
    binary = view[header_length:]
    at = 0
    inputs = []
    for raw in raw_inputs:
        tensor, at = _input(raw, binary, at)
        inputs.append(tensor)
    if at != len(binary):
        raise ProtocolError(
            f"{len(binary) - at} bytes of binary data follow the tensors that claim any"
        )
    parameters = _object(request.get("parameters") or {}, "the request's `parameters`")
    decoded = DecodedRequest(
        inputs, binary_by_default=bool(parameters.get("binary_data_output", False))
    )
    request_id = request.get("id")
    if request_id is not None:
        decoded.id = str(request_id)
    raw_outputs = request.get("outputs")
    if raw_outputs is not None:
        if not isinstance(raw_outputs, list):
            raise ProtocolError('`outputs` must be a list of {"name": ...} objects')
        decoded.outputs = []
        for raw in raw_outputs:
            output = _object(raw, "each of `outputs`")
            name = output.get("name")
            if not isinstance(name, str):
                raise ProtocolError("each requested output needs a `name` (a string)")
            decoded.outputs.append(name)
            wanted = _object(output.get("parameters") or {}, f"output {name!r}: `parameters`")
            if wanted.get("binary_data", decoded.binary_by_default):
                decoded.binary_outputs.add(name)
    return decoded


def encode_bytes(values: Sequence[str]) -> bytes:
    """BYTES elements as the binary extension lays them out."""
    parts = []
    for value in values:
        raw = value.encode()
        parts.append(struct.pack("<I", len(raw)))
        parts.append(raw)
    return b"".join(parts)


def encode_one_row(head: dict[str, Any], score: float, scorer: str, reason: str) -> bytes:
    """What :func:`encode_response` gives for one row's ``score``, ``scorer`` and
    ``fallback_reason`` as JSON, built in one go (a server's single-row answer)."""
    return _dumps(
        {
            **head,
            "outputs": [
                {"name": "score", "datatype": "FP64", "shape": [1], "data": [score]},
                {"name": "scorer", "datatype": "BYTES", "shape": [1], "data": [scorer]},
                {"name": "fallback_reason", "datatype": "BYTES", "shape": [1], "data": [reason]},
            ],
        }
    )


def encode_response(
    head: dict[str, Any], outputs: list[OutputTensor], binary: set[str]
) -> tuple[bytes, int | None]:
    """The response body and, when any output went as binary data, the JSON header's
    length (for ``Inference-Header-Content-Length``)."""
    tensors = []
    blobs = []
    for output in outputs:
        tensor: dict[str, Any] = {
            "name": output.name,
            "datatype": output.datatype,
            "shape": [len(output.values)],
        }
        if output.name in binary:
            if output.datatype == "BYTES":
                blob = encode_bytes(output.values)  # type: ignore[arg-type]
            else:
                blob = np.ascontiguousarray(output.values, dtype="<f8").tobytes()
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        elif isinstance(output.values, np.ndarray):
            tensor["data"] = output.values
        else:
            tensor["data"] = list(output.values)
        tensors.append(tensor)
    header = _dumps({**head, "outputs": tensors})
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)
