"""``scoring serve`` over the wire: the real server in a subprocess, driven by
tritonclient.http (binary and JSON), plain HTTP and an MLflow-style client; every score
equals ``engine.score_batch`` on the same rows, and every error path answers with a
status and ``{"error": ...}``, never a traceback."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from serve_helpers import ROOT, ServerProcess

import scoring_core

pytest.importorskip("tritonclient.http")
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

TOKEN = "s3cret-token"
SHIPPED_MODEL = ROOT / "models" / "calling_score" / "1" / "model.onnx"
LIMIT_MB = 0.05


def chain_file(folder: Path, name: str, *, model: Path | None, pin: bool = True) -> Path:
    """scoring.yaml with its paths made absolute, named ``name``, serving ``model``."""
    config = yaml.safe_load((ROOT / "scoring.yaml").read_text())
    config["name"] = name
    config["features"] = str(ROOT / "models" / "calling_score_features.yaml")
    options = config["chain"][0]["options"]
    options["model"] = str(model) if model else str(folder / "missing.onnx")
    # one file, not the shipped folder of versions: its sha256 alone, or no pin
    options.pop("version", None)
    options["sha256"] = hashlib.sha256(SHIPPED_MODEL.read_bytes()).hexdigest()
    if not pin:
        del options["sha256"]
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="module")
def server(folder: Path) -> Iterator[ServerProcess]:
    swap_model = folder / "swap.onnx"
    shutil.copy(SHIPPED_MODEL, swap_model)
    configs = [
        str(ROOT / "scoring.yaml"),
        str(chain_file(folder, "fallback", model=None)),
        str(chain_file(folder, "swap", model=swap_model, pin=False)),
    ]
    with ServerProcess(
        [*configs, "--max-body-mb", str(LIMIT_MB)], env={"SCORING_ADMIN_TOKEN": TOKEN}
    ) as running:
        yield running


@pytest.fixture(scope="module")
def engine() -> Iterator[scoring_core.Engine]:
    with scoring_core.Engine.from_yaml(ROOT / "scoring.yaml") as built:
        yield built


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(server.url.removeprefix("http://"))


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 39), dtype=np.float32)


def post(server: ServerProcess, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(server.url + path, timeout=30, **kwargs)


def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"error"}
    assert "Traceback" not in response.text
    return str(body["error"])


def features_request(X: np.ndarray, datatype: str = "FP32") -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "features", "datatype": datatype, "shape": list(X.shape), "data": X.tolist()}
        ]
    }


# -- health and metadata ----------------------------------------------------------------------


def test_health_live_ready_and_server_metadata(server: ServerProcess) -> None:
    assert httpx.get(server.url + "/v2/health/live").json() == {"live": True}
    assert httpx.get(server.url + "/v2/health/ready").json() == {"ready": True}
    meta = httpx.get(server.url + "/v2").json()
    assert meta["name"] == "scoring-core"
    assert meta["version"] == scoring_core.__version__
    assert "binary_tensor_data" in meta["extensions"]
    assert httpx.get(server.url + "/ping").status_code == 200


def test_model_metadata_shows_inputs_outputs_and_each_steps_status(
    client: triton.InferenceServerClient, engine: scoring_core.Engine
) -> None:
    meta = client.get_model_metadata("scoring")
    assert meta["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 39]}]
    assert [o["name"] for o in meta["outputs"]] == ["score", "scorer", "fallback_reason"]
    assert meta["versions"] == ["scoring/neural@1"]  # the serving step's provenance stamp
    assert meta["parameters"]["feature_names"] == list(engine.feature_names)
    assert [(s["name"], s["status"]) for s in meta["parameters"]["steps"]] == [
        ("neural", "ready"),
        ("formula", "ready"),
    ]
    fallback = client.get_model_metadata("fallback")["parameters"]["steps"]
    assert fallback[0]["status"] == "unavailable"
    assert "missing.onnx" in fallback[0]["reason"]
    assert client.is_model_ready("fallback")  # on its fallback, but it can score
    # a path names the version bare: the version folder's number, or the file's own
    assert client.is_model_ready("scoring", model_version="1")
    assert client.is_model_ready("scoring", model_version="1.0.0")


# -- infer ------------------------------------------------------------------------------------


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_scores_equal_score_batch(
    client: triton.InferenceServerClient, engine: scoring_core.Engine, binary: bool
) -> None:
    X = rows(50)
    tensor = triton.InferInput("features", list(X.shape), "FP32")
    tensor.set_data_from_numpy(X, binary_data=binary)
    outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("score", "scorer")]
    answer = client.infer("scoring", [tensor], outputs=outputs if not binary else None)
    expected = engine.score_batch(X)
    assert np.array_equal(answer.as_numpy("score"), expected.scores)
    scorers = [s if isinstance(s, str) else s.decode() for s in answer.as_numpy("scorer")]
    assert scorers == expected.scorers.tolist()
    origin = expected.provenance_of(0)
    assert origin is not None
    assert answer.get_response()["model_version"] == origin.stamp == "scoring/neural@1"
    if binary:
        assert answer.as_numpy("fallback_reason").tolist() == [b""] * 50


def test_fp64_rows_and_the_versions_form(
    server: ServerProcess, engine: scoring_core.Engine
) -> None:
    X = rows(5).astype(np.float64)
    answer = post(
        server, "/v2/models/scoring/versions/1.0.0/infer", json=features_request(X, "FP64")
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["outputs"][0]["data"] == engine.score_batch(X).scores.tolist()
    missing = post(server, "/v2/models/scoring/versions/9/infer", json=features_request(X, "FP64"))
    assert "no version '9'" in error_of(missing, 404)


@pytest.mark.parametrize("shape", ["n", "n1"])
def test_one_tensor_per_feature(
    server: ServerProcess, engine: scoring_core.Engine, shape: str
) -> None:
    X = rows(4, seed=3)
    inputs = [
        {
            "name": name,
            "datatype": "FP32",
            "shape": [4] if shape == "n" else [4, 1],
            "data": X[:, i].tolist(),
        }
        for i, name in enumerate(engine.feature_names)
    ]
    answer = post(server, "/v2/models/scoring/infer", json={"inputs": inputs[::-1], "id": "r1"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["id"] == "r1"
    assert body["outputs"][0]["data"] == engine.score_batch(X).scores.tolist()


def test_a_chain_on_its_fallback_says_why_for_every_row(server: ServerProcess) -> None:
    answer = post(server, "/v2/models/fallback/infer", json=features_request(rows(2)))
    outputs = {o["name"]: o["data"] for o in answer.json()["outputs"]}
    assert outputs["scorer"] == ["formula", "formula"]
    assert outputs["fallback_reason"] == ["neural: unavailable"] * 2


def test_only_the_outputs_asked_for(server: ServerProcess) -> None:
    request = {**features_request(rows(2)), "outputs": [{"name": "scorer"}]}
    outputs = post(server, "/v2/models/scoring/infer", json=request).json()["outputs"]
    assert [o["name"] for o in outputs] == ["scorer"]


# -- MLflow -----------------------------------------------------------------------------------


def predictions_of(response: httpx.Response) -> list[float]:
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert {p["scorer"] for p in predictions} == {"neural"}
    return [p["score"] for p in predictions]


def test_mlflow_invocations_split_records_and_csv(
    server: ServerProcess, engine: scoring_core.Engine
) -> None:
    X = rows(6, seed=7).astype(np.float64)
    names = list(engine.feature_names)
    expected = engine.score_batch(X).scores.tolist()
    split = {"dataframe_split": {"columns": names[::-1], "data": X[:, ::-1].tolist()}}
    assert predictions_of(post(server, "/invocations", json=split)) == expected
    records = {"dataframe_records": [dict(zip(names, r, strict=True)) for r in X.tolist()]}
    assert predictions_of(post(server, "/invocations", json=records)) == expected
    csv = ",".join(names) + "\n" + "\n".join(",".join(repr(v) for v in r) for r in X.tolist())
    answer = post(server, "/invocations", content=csv, headers={"content-type": "text/csv"})
    assert predictions_of(answer) == expected


# -- errors -----------------------------------------------------------------------------------


def test_a_bad_value_is_400_naming_the_feature_and_row(server: ServerProcess) -> None:
    X = rows(3)
    X[2, 5] = 7.0
    message = error_of(post(server, "/v2/models/scoring/infer", json=features_request(X)), 400)
    assert "row 2" in message
    assert "user_temporal_flexibility" in message
    X[2, 5] = 0.5
    request = features_request(X)
    request["inputs"][0]["data"][1][0] = float("nan")
    message = error_of(post(server, "/v2/models/scoring/infer", content=json.dumps(request)), 400)
    assert "row 1" in message or "not valid JSON" in message  # NaN is not JSON


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"inputs": []}', "needs `inputs`"),
        (b'{"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 3], '
         b'"data": [1, 2, 3]}]}', "takes [n, 39]"),
        (b'{"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 39], '
         b'"data": [1, 2, 3]}]}', "holds 39 values, `data` has 3"),
        (b'{"inputs": [{"name": "features", "datatype": "INT64", "shape": [1, 39], '
         b'"data": [' + b",".join([b"0"] * 39) + b"]}]}", "FP32 or FP64"),
        (b'{"inputs": [{"name": "features", "datatype": "FP99", "shape": [1], '
         b'"data": [1]}]}', "is not one of"),
        (b'{"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 39], '
         b'"data": ["a"]}]}', "holds 39 values"),
        (b'{"inputs": [{"name": "user_exploration_eagernes", "datatype": "FP32", '
         b'"shape": [1], "data": [0.5]}]}', "did you mean 'user_exploration_eagerness'"),
        (b'{"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 39], "data": ['
         + b",".join([b"0.5"] * 39) + b"]}], \"outputs\": [{\"name\": \"scores\"}]}",
         "did you mean 'score'"),
    ],
    ids=["json", "array", "no-inputs", "width", "count", "dtype", "datatype", "strings",
         "feature-name", "output-name"],
)  # fmt: skip
def test_a_malformed_request_is_400_saying_what_is_wrong(
    server: ServerProcess, body: bytes, expected: str
) -> None:
    assert expected in error_of(post(server, "/v2/models/scoring/infer", content=body), 400)


def test_binary_data_that_does_not_add_up_is_400(server: ServerProcess) -> None:
    header = json.dumps(
        {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 39],
                     "parameters": {"binary_data_size": 156}}]}
    ).encode()  # fmt: skip
    short = header + b"\0" * 100
    headers = {"inference-header-content-length": str(len(header))}
    answer = post(server, "/v2/models/scoring/infer", content=short, headers=headers)
    assert "runs past the end" in error_of(answer, 400)
    answer = post(
        server,
        "/v2/models/scoring/infer",
        content=short,
        headers={"inference-header-content-length": "x"},
    )
    assert "not a number" in error_of(answer, 400)
    too_long = {"inference-header-content-length": str(len(short) + 1)}
    answer = post(server, "/v2/models/scoring/infer", content=short, headers=too_long)
    assert "Inference-Header-Content-Length" in error_of(answer, 400)


def test_unknown_model_route_and_method(
    server: ServerProcess, client: triton.InferenceServerClient
) -> None:
    assert "did you mean 'scoring'" in error_of(
        post(server, "/v2/models/scorin/infer", json=features_request(rows(1))), 404
    )
    assert "no model" in error_of(httpx.get(server.url + "/v2/models/nope"), 404)
    assert "no route" in error_of(httpx.get(server.url + "/v3"), 404)
    assert "not allowed" in error_of(httpx.get(server.url + "/v2/models/scoring/infer"), 405)
    with pytest.raises(InferenceServerException, match="404"):
        client.get_model_metadata("nope")


def test_a_body_over_the_limit_is_413(server: ServerProcess) -> None:
    big = b"x" * int(LIMIT_MB * 2**20 + 10)
    assert "--max-body-mb" in error_of(post(server, "/v2/models/scoring/infer", content=big), 413)
    chunked = post(server, "/invocations", content=iter([big[:30000], big[30000:]]))
    assert "--max-body-mb" in error_of(chunked, 413)


def test_413_comes_before_the_body_is_read(server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(
            b"POST /v2/models/scoring/infer HTTP/1.1\r\nhost: x\r\n"
            b"content-length: 1000000000\r\ncontent-type: application/json\r\n\r\n{"
        )
        answer = raw.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer


def test_mlflow_mistakes_are_4xx(server: ServerProcess) -> None:
    assert "dataframe_split" in error_of(post(server, "/invocations", json={"x": 1}), 400)
    answer = post(server, "/invocations", content=b"a", headers={"content-type": "text/plain"})
    assert "text/csv" in error_of(answer, 415)
    csv = post(server, "/invocations", content=b"a,b\n1", headers={"content-type": "text/csv"})
    assert error_of(csv, 400)
    unknown = post(server, "/invocations", json={"dataframe_records": [{"nope": 1}]})
    assert "nope" in error_of(unknown, 400)


# -- metrics and admin -------------------------------------------------------------------------


def test_metrics_show_the_chains_and_http_requests(server: ServerProcess) -> None:
    post(server, "/v2/models/fallback/infer", json=features_request(rows(3)))
    text = httpx.get(server.url + "/metrics").text
    assert 'scoring_step_ready{chain="fallback",step="neural"} 0.0' in text
    assert 'scoring_rows_served_total{chain="fallback",step="formula"}' in text
    assert (
        'scoring_http_requests_total{method="POST",route="/v2/models/{name}/infer",status="200"}'
        in text
    )
    assert "scoring_http_request_duration_seconds_bucket" in text


def test_admin_reload_needs_the_token(server: ServerProcess) -> None:
    path = "/v2/repository/models/scoring/load"
    assert "Bearer" in error_of(post(server, path), 401)
    assert error_of(post(server, path, headers={"authorization": "Bearer wrong"}), 401)
    answer = post(server, path, headers={"authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "name": "scoring",
        "steps": {"neural": "reloaded", "formula": "reloaded"},
        "workers": 1,
        "reloaded": True,
    }


def test_a_bad_new_model_keeps_the_old_one_serving(
    server: ServerProcess, folder: Path, engine: scoring_core.Engine
) -> None:
    model = folder / "swap.onnx"
    good = model.read_bytes()
    model.write_bytes(good[: len(good) // 2])
    try:
        answer = post(
            server, "/v2/repository/models/swap/load", headers={"authorization": f"Bearer {TOKEN}"}
        )
        message = error_of(answer, 409)
        assert "the old model serves on" in message
        assert answer.json()["steps"]["neural"].startswith("kept old:")
        X = rows(3)
        scored = post(server, "/v2/models/swap/infer", json=features_request(X)).json()
        outputs = {o["name"]: o["data"] for o in scored["outputs"]}
        assert outputs["scorer"] == ["neural"] * 3
        assert outputs["score"] == engine.score_batch(X).scores.tolist()
    finally:
        model.write_bytes(good)


def test_a_bad_new_version_under_latest_is_409_saying_which_serves_and_why(
    tmp_path: Path, engine: scoring_core.Engine
) -> None:
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "model.onnx").write_bytes(SHIPPED_MODEL.read_bytes())
    config = tmp_path / "versions.yaml"
    config.write_text(f"features: {ROOT / 'models' / 'calling_score_features.yaml'}\nchain:\n"
                      "  - {name: neural, scorer: onnx, options: {model: m}}\n")  # fmt: skip
    with ServerProcess([str(config)], env={"SCORING_ADMIN_TOKEN": TOKEN}) as running:
        (tmp_path / "m" / "2").mkdir()
        (tmp_path / "m" / "2" / "model.onnx").write_bytes(SHIPPED_MODEL.read_bytes()[:100])
        path = "/v2/repository/models/versions/load"
        answer = post(running, path, headers={"authorization": f"Bearer {TOKEN}"})
        message = error_of(answer, 409)
        assert "the old model serves on" in message
        said = answer.json()["steps"]["neural"]
        assert said.startswith("reloaded, serving version 1; newer version(s) failed: version 2")
        assert "not a valid ONNX model" in said
        X = rows(3)
        scored = post(running, "/v2/models/versions/infer", json=features_request(X)).json()
        assert scored["model_version"] == "versions/neural@1"
        outputs = {o["name"]: o["data"] for o in scored["outputs"]}
        assert outputs["score"] == engine.score_batch(X).scores.tolist()


# -- the examples of docs/serving.md ----------------------------------------------------------


def doc_block(marker: str) -> str:
    text = (ROOT / "docs" / "serving.md").read_text()
    after = text.split(f"<!-- checked: {marker} -->", 1)[1]
    return after.split("```", 2)[1].split("\n", 1)[1]


def test_the_curl_example_answers_what_the_docs_show(server: ServerProcess) -> None:
    lines = doc_block("curl").splitlines()
    body = lines[1].split("-d '", 1)[1].rstrip("'")
    answer = post(server, "/v2/models/scoring/infer", content=body,
                  headers={"content-type": "application/json"})  # fmt: skip
    assert answer.json() == json.loads(lines[2])


def test_the_tritonclient_example_prints_what_the_docs_show(
    server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    code = doc_block("tritonclient").replace("localhost:8080", server.url.removeprefix("http://"))
    exec(compile(code, "serving.md", "exec"), {})
    expected = code.rstrip().splitlines()[-1].removeprefix("# ")
    assert capsys.readouterr().out.strip() == expected
