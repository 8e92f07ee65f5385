"""Small infer requests on the event loop: the gate that moves a slow model to a thread,
and the short decoding of the plain request (the same tensors as the long way)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import orjson
import pytest

pytest.importorskip("starlette")

from scoring_core import Engine
from scoring_core.server import inline
from scoring_core.server.dataplane import ServedModel
from scoring_core.server.tensors import decode_request


def test_a_slow_request_on_the_loop_moves_the_model_to_its_thread_and_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = inline.InlineGate("calling", allowed=True)
    gate.timed_inline(inline.INLINE_MAX_S / 2)
    assert gate.inline
    with caplog.at_level(logging.WARNING, logger="scoring_core.server"):
        gate.timed_inline(inline.INLINE_MAX_S * 2)
    assert not gate.inline
    assert "model 'calling': a request held the event loop" in caplog.text
    for _ in range(inline._BACK_AFTER - 1):
        assert gate.timed_call(sum, [1, 2]) == 3
    assert not gate.inline  # one call short of coming back
    gate.timed_call(sum, [1])
    assert gate.inline


def test_a_model_that_may_not_be_inline_never_is() -> None:
    gate = inline.InlineGate("plugin-chain", allowed=False)
    for _ in range(inline._BACK_AFTER + 1):
        gate.timed_call(sum, [])
    assert not gate.inline


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/v2/models/calling/infer", ("calling", None)),
        ("/v2/models/calling/versions/3/infer", ("calling", "3")),
        ("/v2/models//infer", None),
        ("/v2/models/a/b/infer", None),
        ("/v2/models/calling/versions//infer", None),
        ("/v2/models/calling/ready", None),
    ],
)
def test_infer_paths_are_matched_as_the_routes_are(path: str, target: object) -> None:
    assert inline.infer_target(path) == target


@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
def test_the_plain_request_decodes_as_the_long_way_does(datatype: str) -> None:
    rows = np.random.default_rng(0).random((2, 3))
    tensor = {"name": "features", "datatype": datatype, "shape": [2, 3],
              "data": rows.reshape(-1).tolist()}  # fmt: skip
    plain = decode_request(orjson.dumps({"inputs": [tensor]}))
    long_way = decode_request(orjson.dumps({"inputs": [tensor], "id": "x"}))
    (a,), (b,) = plain.inputs, long_way.inputs
    assert (a.name, a.datatype, a.shape) == (b.name, b.datatype, b.shape)
    assert isinstance(a.data, np.ndarray)
    assert isinstance(b.data, np.ndarray)
    assert a.data.dtype == b.data.dtype == {"FP32": np.float32, "FP64": np.float64}[datatype]
    assert np.array_equal(a.data, b.data)
    assert plain.outputs is None
    assert not plain.binary_by_default
    assert plain.id is None


def test_integers_in_a_plain_request_take_the_long_way_and_its_checks() -> None:
    body = orjson.dumps({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 2],
                                     "data": [1, 0]}]})  # fmt: skip
    (tensor,) = decode_request(body).inputs
    assert isinstance(tensor.data, np.ndarray)
    assert tensor.data.tolist() == [[1.0, 0.0]]


ROOT = Path(__file__).resolve().parents[1]


def _chain_file(tmp_path: Path, model: str, on_exhausted: str = "raise") -> Path:
    """scoring.yaml with its model folder replaced (a missing one: the formula serves)."""
    text = (ROOT / "scoring.yaml").read_text()
    text = text.replace("models/calling_score_features.yaml",
                        str(ROOT / "models" / "calling_score_features.yaml"))  # fmt: skip
    text = text.replace("model: models/calling_score", f"model: {model}")
    text = text.replace("on_exhausted: raise", f"on_exhausted: {on_exhausted}")
    path = tmp_path / "chain.yaml"
    path.write_text(text)
    return path


def _answers(model: ServedModel, row: list[float]) -> tuple[object, object]:
    """The answer to a plain one-row request, and to the same row asked the long way (the
    outputs named), each as bytes or the error raised."""
    tensor = {"name": "features", "datatype": "FP32", "shape": [1, len(row)], "data": row}
    outputs = [{"name": name} for name in model.output_names]
    answers = []
    for request in ({"inputs": [tensor]}, {"inputs": [tensor], "outputs": outputs}):
        try:
            answers.append(model.infer(orjson.dumps(request), None))
        except Exception as exc:
            answers.append((type(exc), str(exc)))
    return answers[0], answers[1]


@pytest.mark.parametrize("where", ["served", "missing", "exhausted"])
def test_a_one_row_answer_is_byte_for_byte_the_long_way_s(tmp_path: Path, where: str) -> None:
    if where == "served":
        config = ROOT / "scoring.yaml"
    elif where == "missing":  # no version in the folder: the formula serves, saying why
        config = _chain_file(tmp_path, str(tmp_path))
    else:  # no step can score: on_exhausted's default, an integer in the YAML
        config = _chain_file(tmp_path, str(tmp_path), "{score: 0}")
        text = config.read_text()
        config.write_text(text[: text.index("  - name: formula")] + text[text.index("\non_") :])
    rng = np.random.default_rng(3)
    rows = [*rng.random((20, 39), np.float32).tolist(), [0.0] * 39, [1.0] * 39, [1.5] * 39]
    with Engine.from_yaml(config) as engine:
        model = ServedModel(engine)
        scorers = set()
        for row in rows:
            plain, long_way = _answers(model, row)
            assert plain == long_way
            if isinstance(plain, tuple) and isinstance(plain[0], bytes):
                scorers.add(orjson.loads(plain[0])["outputs"][1]["data"][0])
        assert scorers == {"served": {"neural"}, "missing": {"formula"},
                           "exhausted": {"on_exhausted"}}[where]  # fmt: skip
