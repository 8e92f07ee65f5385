"""The served chains and what each endpoint does with them, free of HTTP (MLServer's
``handlers/dataplane.py`` idea): the routes (:mod:`scoring_core.server.app`) only turn
requests into calls here and answers back into responses.

:class:`ServedModel` is one chain; :mod:`scoring_core.server.experiment_model` serves an
experiment the same way, and :mod:`scoring_core.server.repository` holds every served model.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from scoring_core.engine import Engine
from scoring_core.errors import InputError, did_you_mean
from scoring_core.results import EXHAUSTED_SCORER, BatchResult, Provenance
from scoring_core.server.errors import ProtocolError
from scoring_core.server.tensors import (
    DecodedRequest,
    InputTensor,
    OutputTensor,
    decode_request,
    encode_one_row,
    encode_response,
)

__all__ = ["OUTPUT_NAMES", "ServedModel", "may_score_inline"]

logger = logging.getLogger("scoring_core.server")

FEATURES_TENSOR = "features"
OUTPUT_NAMES = ("score", "scorer", "fallback_reason")
_ROW_DTYPES = ("FP32", "FP64")
_VERSION_TTL_S = 1.0
#: Scorers whose call on a few rows ends on its own, in a time that does not depend on
#: waiting for anything: the rules formula (arithmetic on the rows) and onnx (one pass of
#: a graph, on the caller's thread). A plugin's scorer may wait (on a socket, a lock), so
#: its steps need a ``timeout_ms`` before a request of theirs may hold the event loop.
_SCORERS_THAT_END = frozenset({"rules", "onnx"})


def may_score_inline(engines: Sequence[Engine]) -> bool:
    """Whether small requests of these chains may be scored on the event loop: each step
    is bounded by its ``timeout_ms`` or is a scorer that cannot wait
    (:data:`_SCORERS_THAT_END`). The server still times each such request and moves a
    chain that turns out slow to a thread (``app._InlineGate``)."""
    return all(
        step["timeout_ms"] is not None or step["scorer"] in _SCORERS_THAT_END
        for engine in engines
        for step in engine.diagnostics()["steps"]
    )


class ServedModel:
    """One chain served under its name."""

    output_names: tuple[str, ...] = OUTPUT_NAMES
    #: a plain request of one row is scored with ``engine.score`` and answered directly
    scores_one_row: bool = True

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.name = engine.name
        self._version: tuple[float, str, frozenset[str]] | None = None
        self.inline_allowed = may_score_inline([engine])
        self.width = len(engine.feature_names)

    @property
    def ready(self) -> bool:
        snapshot = self.engine.snapshot()
        return not snapshot.closed and any(step.ready for step in snapshot.steps)

    @property
    def version(self) -> str:
        """The provenance stamp of the step that serves now (the first that can score),
        what metadata lists as the model's version (read again every second at most: the
        chain's diagnostics cost more than scoring one row)."""
        return self._versions()[1]

    def serves_version(self, version: str) -> bool:
        """Whether ``/versions/{version}`` names what is served: the stamp, or the bare
        model version of the serving step (the version folder's number, or the version the
        model file carries), as clients put a version in a path."""
        return version in self._versions()[2]

    def _versions(self) -> tuple[float, str, frozenset[str]]:
        now = time.monotonic()
        if self._version is None or now - self._version[0] > _VERSION_TTL_S:
            stamp, names = self._read_version()
            self._version = (now, stamp, frozenset(n for n in (stamp, *names) if n))
        return self._version

    def forget_version(self) -> None:
        self._version = None

    def _read_version(self) -> tuple[str, tuple[str, ...]]:
        """The serving step's provenance stamp, and the bare versions a path may name."""
        return _serving_stamp(self.engine)

    def version_of(self, result: BatchResult) -> str:
        """An answer's ``model_version``: the provenance stamp of the first row's score
        (exactly the loaded scorer that produced it, across a reload in flight); when the
        request held no row, what is served now."""
        if len(result):
            origin = result.provenance_of(0)
            if origin is not None:
                return origin.stamp
        return self.version

    def register_metrics(self, registry: Any) -> None:
        """Expose the chain in ``registry`` (``scoring_core.metrics``)."""
        import scoring_core.metrics

        scoring_core.metrics.register(self.engine, registry)

    def reload(self) -> dict[str, str]:
        """Reload the chain's steps; per step, the engine's outcome."""
        return self.engine.reload()

    def close(self) -> None:
        self.engine.close()

    def metadata(self) -> dict[str, Any]:
        engine = self.engine
        steps = []
        for step in engine.diagnostics()["steps"]:
            details = step.get("details") or {}
            steps.append(
                {
                    "name": step["name"],
                    "scorer": step["scorer"],
                    "status": step["status"],
                    "reason": step["reason"],
                    "model_version": details.get("model_version"),
                    "sha256": details.get("sha256"),
                }
            )
        version = self.version
        return {
            "name": self.name,
            "versions": [version] if version else [],
            "platform": "scoring-core",
            "inputs": [
                {
                    "name": FEATURES_TENSOR,
                    "datatype": "FP32",
                    "shape": [-1, len(engine.feature_names)],
                }
            ],
            "outputs": [
                {"name": "score", "datatype": "FP64", "shape": [-1]},
                {"name": "scorer", "datatype": "BYTES", "shape": [-1]},
                {"name": "fallback_reason", "datatype": "BYTES", "shape": [-1]},
            ],
            "parameters": {
                "ready": self.ready,
                "feature_names": list(engine.feature_names),
                "steps": steps,
            },
        }

    # -- infer ---------------------------------------------------------------------------

    def infer(self, body: bytes, header_length: int | None) -> tuple[bytes, int | None]:
        """Score an OIP infer request; the body and the binary header's length (or None)."""
        request = decode_request(body, header_length)
        if request.plain and self.scores_one_row:
            tensor = request.inputs[0]
            if tensor.name == FEATURES_TENSOR and tensor.shape == (1, self.width):
                return self._one_row(tensor.data[0]), None
        names = self.output_names
        wanted = request.outputs if request.outputs is not None else list(names)
        for name in wanted:
            if name not in names:
                raise ProtocolError(
                    f"no output {name!r}{did_you_mean(name, names, list_known=False)}; "
                    f"outputs: {', '.join(names)}"
                )
        result = self.score_request(request)
        binary = request.binary_outputs
        if request.outputs is None and request.binary_by_default:
            binary = set(names)
        head: dict[str, Any] = {"model_name": self.name, "model_version": self.version_of(result)}
        if request.id is not None:
            head["id"] = request.id
        return encode_response(head, self.outputs(result, wanted), binary)

    def _one_row(self, row: Any) -> bytes:
        """The answer to a plain request of one row, the bytes the long way gives
        (``engine.score`` checks and walks the row as ``score_batch`` does a batch of
        one; measured 20 us faster per request than the batch and the generic encoder)."""
        result = self.engine.score(row)
        origin = result.provenance
        head = {"model_name": self.name,
                "model_version": self.version if origin is None else origin.stamp}  # fmt: skip
        reason = result.fallback_reason(detail=False)
        return encode_one_row(head, float(result.score), result.scorer, reason)

    def score_request(self, request: DecodedRequest) -> BatchResult:
        return self.engine.score_batch(self._rows(request.inputs))

    def outputs(self, result: BatchResult, wanted: Sequence[str]) -> list[OutputTensor]:
        return _outputs(result, wanted)

    def _rows(self, tensors: Sequence[InputTensor]) -> Any:
        """The rows to score: a 2-D array from ``features``, or a table of one column per
        feature tensor (the engine then checks names, defaults and values)."""
        width = len(self.engine.feature_names)
        if any(t.name == FEATURES_TENSOR for t in tensors):
            if len(tensors) > 1:
                raise ProtocolError(
                    "send either one tensor `features` or one tensor per feature, not both"
                )
            tensor = tensors[0]
            if tensor.datatype not in _ROW_DTYPES:
                raise ProtocolError(f"input 'features' must be FP32 or FP64, not {tensor.datatype}")
            if len(tensor.shape) != 2 or tensor.shape[1] != width:
                raise ProtocolError(
                    f"input 'features' has shape {list(tensor.shape)}; chain {self.name!r} "
                    f"takes [n, {width}], the features in the order model metadata lists "
                    "them (parameters.feature_names)"
                )
            return tensor.data
        columns: dict[str, Any] = {}
        rows: int | None = None
        known = self.engine.feature_names
        for tensor in tensors:
            if tensor.name not in known:
                raise InputError(
                    f"input {tensor.name!r} is neither 'features' nor a feature of chain "
                    f"{self.name!r}{did_you_mean(tensor.name, known)}",
                    feature=tensor.name,
                )
            if not isinstance(tensor.data, np.ndarray):
                raise ProtocolError(f"input {tensor.name!r} must be numbers, not BYTES")
            if len(tensor.shape) not in (1, 2) or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
                raise ProtocolError(
                    f"input {tensor.name!r} has shape {list(tensor.shape)}; a feature's tensor "
                    "is [n] or [n, 1]"
                )
            if rows is not None and tensor.shape[0] != rows:
                raise ProtocolError(
                    f"input {tensor.name!r} has {tensor.shape[0]} rows, the others {rows}"
                )
            rows = tensor.shape[0]
            columns[tensor.name] = tensor.data.reshape(-1)
        import pyarrow as pa

        return pa.table(columns)

    # -- MLflow --------------------------------------------------------------------------

    def invocations(self, body: bytes, content_type: str) -> bytes:
        """MLflow's ``/invocations``: ``dataframe_split``, ``dataframe_records`` or CSV in,
        ``{"predictions": [{"score", "scorer", "fallback_reason"}, ...]}`` out."""
        result = self.engine.score_batch(_mlflow_rows(body, content_type))
        reasons = result.fallback_reasons(detail=False)
        predictions = [
            {"score": score, "scorer": scorer, "fallback_reason": reason}
            for score, scorer, reason in zip(
                result.scores.tolist(), result.scorers.tolist(), reasons, strict=True
            )
        ]
        return json.dumps({"predictions": predictions}, separators=(",", ":")).encode()


def _serving_stamp(engine: Engine) -> tuple[str, tuple[str, ...]]:
    """The provenance stamp of the first step that can score (the step that serves,
    unless it fails a row), and that step's bare model versions; ("", ()) if none can."""
    for step in engine.diagnostics()["steps"]:
        if step["status"] != "ready" or not step.get("provenance"):
            continue
        origin = Provenance(**step["provenance"])
        file_version = (step.get("details") or {}).get("model_version")
        return origin.stamp, tuple(str(v) for v in (origin.model_version, file_version) if v)
    return "", ()


def _outputs(result: BatchResult, wanted: Sequence[str]) -> list[OutputTensor]:
    out = []
    for name in wanted:
        if name == "score":
            out.append(OutputTensor(name, "FP64", result.scores))
        elif name == "scorer":
            names = (*result.step_names, EXHAUSTED_SCORER)  # index -1: on_exhausted
            scorers = [names[i] for i in result.scorer_index.tolist()]
            out.append(OutputTensor(name, "BYTES", scorers))
        else:
            out.append(OutputTensor(name, "BYTES", result.fallback_reasons(detail=False)))
    return out


def _mlflow_rows(body: bytes, content_type: str) -> Any:
    kind = content_type.split(";")[0].strip().lower()
    if kind in ("text/csv", "application/csv"):
        import pyarrow as pa
        import pyarrow.csv as pa_csv

        try:
            return pa_csv.read_csv(pa.BufferReader(body))
        except (pa.ArrowInvalid, ValueError) as exc:
            raise ProtocolError(f"the CSV body could not be read: {exc}") from None
    if kind not in ("", "application/json"):
        raise ProtocolError(
            f"content type {kind!r} is not accepted: send application/json "
            "(dataframe_split or dataframe_records) or text/csv",
            status=415,
        )
    try:
        request = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"the request is not valid JSON: {exc}") from None
    keys = ("dataframe_split", "dataframe_records")
    given = [k for k in keys if isinstance(request, dict) and k in request]
    if len(given) != 1:
        raise ProtocolError(
            "an /invocations JSON body is an object with one of `dataframe_split` "
            '({"columns": [...], "data": [[...]]}) or `dataframe_records` ([{...}])'
        )
    if given[0] == "dataframe_records":
        records = request["dataframe_records"]
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ProtocolError("`dataframe_records` must be a list of objects")
        return records
    split = request["dataframe_split"]
    if not isinstance(split, dict) or not isinstance(split.get("data"), list):
        raise ProtocolError("`dataframe_split` needs `data`, a list of rows")
    data = split["data"]
    if not all(isinstance(row, list) for row in data):
        raise ProtocolError("`dataframe_split.data` must be a list of lists")
    columns = split.get("columns")
    if columns is None:
        return data  # rows in feature order
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise ProtocolError("`dataframe_split.columns` must be a list of strings")
    for index, row in enumerate(data):
        if len(row) != len(columns):
            raise InputError.for_row(index, f"has {len(row)} values for {len(columns)} columns")
    return [dict(zip(columns, row, strict=True)) for row in data]
