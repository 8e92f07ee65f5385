"""An experiment served as one model (``scoring serve EXPERIMENT.yaml``): the infer request
carries the unit ids beside the rows, each row is scored by its unit's variant exactly as
:meth:`Experiment.score_batch` does (exposures logged the same way), and the answer says
each row's ``variant`` too. Free of HTTP, as :mod:`scoring_core.server.dataplane` is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scoring_core.errors import InputError
from scoring_core.experiments.experiment import Experiment
from scoring_core.experiments.results import ExperimentBatchResult
from scoring_core.results import BatchResult
from scoring_core.server.dataplane import (
    OUTPUT_NAMES,
    ServedModel,
    _mlflow_rows,
    _outputs,
    _serving_stamp,
    may_score_inline,
)
from scoring_core.server.errors import ProtocolError
from scoring_core.server.tensors import DecodedRequest, InputTensor, OutputTensor

__all__ = ["UNIT_TENSOR", "ServedExperiment"]

#: The input tensor of unit ids (BYTES, ``[n]``); the experiment's ``unit:`` name works too.
UNIT_TENSOR = "unit"
EXPERIMENT_OUTPUT_NAMES = (*OUTPUT_NAMES, "variant")


class ServedExperiment(ServedModel):
    """An experiment under its key (``experiment:``)."""

    output_names = EXPERIMENT_OUTPUT_NAMES
    scores_one_row = False  # each row goes to its unit's variant

    def __init__(self, experiment: Experiment) -> None:
        super().__init__(experiment.control)  # the rows' features are the control's
        self.experiment = experiment
        self.name = experiment.name
        self._unit_names = {UNIT_TENSOR, experiment.unit_field}
        self.inline_allowed = may_score_inline(self._engines())

    @classmethod
    def from_yaml(cls, path: str | Path) -> ServedExperiment:
        return cls(Experiment.from_yaml(path))

    def _engines(self) -> list[Any]:
        shadow = self.experiment.shadow_engine
        return [*self.experiment.engines.values(), *([shadow] if shadow is not None else [])]

    @property
    def ready(self) -> bool:
        """Ready when every variant's chain can score."""
        if self.experiment.closed:
            return False
        for engine in self.experiment.engines.values():
            snapshot = engine.snapshot()
            if snapshot.closed or not any(step.ready for step in snapshot.steps):
                return False
        return True

    def _read_version(self) -> tuple[str, tuple[str, ...]]:
        """The control's serving stamp; a path may name any variant's stamp or version."""
        stamps = [_serving_stamp(e) for e in self.experiment.engines.values()]
        names = tuple(n for stamp, bare in stamps for n in (stamp, *bare))
        return stamps[0][0], names

    def register_metrics(self, registry: Any) -> None:
        import scoring_core.metrics

        scoring_core.metrics.register_experiment(self.experiment, registry)

    def reload(self) -> dict[str, str]:
        """Reload every variant's chain (and the shadow's): ``variant/step`` -> outcome."""
        outcomes = {}
        for variant, engine in self.experiment.engines.items():
            for step, text in engine.reload().items():
                outcomes[f"{variant}/{step}"] = text
        shadow = self.experiment.shadow_engine
        if shadow is not None:
            for step, text in shadow.reload().items():
                outcomes[f"shadow/{step}"] = text
        return outcomes

    def close(self) -> None:
        self.experiment.close()

    def metadata(self) -> dict[str, Any]:
        answer = super().metadata()
        steps = answer["parameters"].pop("steps")
        variants = []
        for variant in self.experiment.config.variants:
            engine = self.experiment.engines[variant.name]
            if engine is self.engine:
                variant_steps = steps
            else:
                variant_steps = ServedModel(engine).metadata()["parameters"]["steps"]
            variants.append(
                {
                    "name": variant.name,
                    "weight": variant.weight,
                    "chain": engine.name,
                    "steps": variant_steps,
                }
            )
        answer["inputs"].append({"name": UNIT_TENSOR, "datatype": "BYTES", "shape": [-1]})
        answer["outputs"].append({"name": "variant", "datatype": "BYTES", "shape": [-1]})
        answer["parameters"]["ready"] = self.ready
        answer["parameters"]["experiment"] = {
            "unit": self.experiment.unit_field,
            "hash_version": self.experiment.config.hash_version,
            "coverage": self.experiment.config.coverage,
            "variants": variants,
        }
        return answer

    # -- infer ---------------------------------------------------------------------------

    def score_request(self, request: DecodedRequest) -> BatchResult:
        units = [t for t in request.inputs if t.name in self._unit_names]
        rows = [t for t in request.inputs if t.name not in self._unit_names]
        if not units:
            raise ProtocolError(
                f"input {UNIT_TENSOR!r} is missing: experiment {self.name!r} needs the unit "
                f"ids ({self.experiment.unit_field}) as a BYTES tensor {UNIT_TENSOR!r} of "
                "shape [n], one per row"
            )
        if len(units) > 1:
            raise ProtocolError(f"send the unit ids once, as input {UNIT_TENSOR!r}")
        if not rows:
            raise ProtocolError("the request has unit ids but no rows (`features`)")
        ids = self._unit_ids(units[0])
        return self.experiment.score_batch(self._rows(rows), units=ids)

    def _unit_ids(self, tensor: InputTensor) -> list[str]:
        name = tensor.name
        if tensor.datatype != "BYTES" or not isinstance(tensor.data, list):
            raise ProtocolError(
                f"input {name!r} must be BYTES (the unit ids as strings), not {tensor.datatype}"
            )
        if len(tensor.shape) not in (1, 2) or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
            raise ProtocolError(f"input {name!r} has shape {list(tensor.shape)}; it is [n]")
        ids = []
        for row, raw in enumerate(tensor.data):
            try:
                text = raw.decode()
            except UnicodeDecodeError:
                raise InputError.for_row(
                    row, f"input {name!r}: the unit id is not UTF-8", feature=name
                ) from None
            if not text:
                raise InputError.for_row(row, f"input {name!r}: an empty unit id", feature=name)
            ids.append(text)
        return ids

    def outputs(self, result: BatchResult, wanted: Sequence[str]) -> list[OutputTensor]:
        assert isinstance(result, ExperimentBatchResult)
        plain = [name for name in wanted if name != "variant"]
        by_name = {t.name: t for t in _outputs(result, plain)}
        variants = ["" if v is None else v for v in result.variants.tolist()]
        by_name["variant"] = OutputTensor("variant", "BYTES", variants)
        return [by_name[name] for name in wanted]

    # -- MLflow --------------------------------------------------------------------------

    def invocations(self, body: bytes, content_type: str) -> bytes:
        """MLflow's ``/invocations``, the unit id in the column the experiment's ``unit:``
        names; each prediction also has ``variant`` (null outside coverage)."""
        rows, units = self._mlflow_units(_mlflow_rows(body, content_type))
        result = self.experiment.score_batch(rows, units=units)
        reasons = result.fallback_reasons(detail=False)
        predictions = [
            {"score": score, "scorer": scorer, "fallback_reason": reason, "variant": variant}
            for score, scorer, reason, variant in zip(
                result.scores.tolist(),
                result.scorers.tolist(),
                reasons,
                result.variants.tolist(),
                strict=True,
            )
        ]
        return json.dumps({"predictions": predictions}, separators=(",", ":")).encode()

    def _mlflow_units(self, rows: Any) -> tuple[Any, list[Any]]:
        field = self.experiment.unit_field
        missing = ProtocolError(
            f"experiment {self.name!r} takes each row's unit id from the column {field!r}; "
            "add it to every row (dataframe_split columns, dataframe_records keys, or a CSV "
            "column)"
        )
        if hasattr(rows, "column_names"):  # a CSV, as a pyarrow table
            if field not in rows.column_names:
                raise missing
            units = rows.column(field).to_pylist()
            return rows.drop_columns([field]), units
        if isinstance(rows, list) and all(isinstance(r, dict) for r in rows):
            if not all(field in r for r in rows):
                raise missing
            return [{k: v for k, v in r.items() if k != field} for r in rows], [
                r[field] for r in rows
            ]
        raise missing
