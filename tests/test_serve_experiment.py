"""``scoring serve EXPERIMENT.yaml`` over the wire: the experiment is one model whose infer
takes the unit ids; every unit gets ``exp.assign(unit)``'s variant and exactly that
variant chain's ``score_batch``; exposures are logged and counted; ``model_version`` is the
provenance stamp of what scored, and moves with a promote and a reload."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from cli_helpers import run_cli
from onnx_models import write_linear_model
from serve_helpers import ServerProcess

from scoring_core import Engine, Experiment

pytest.importorskip("tritonclient.http")
import tritonclient.http as triton

TOKEN = "experiment-token"
FEATURES = ("a", "b", "c")
UNITS = [f"user-{i}" for i in range(40)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """neural.yaml (an onnx step on m/, version stable = 1, then the formula), formula.yaml
    (the formula alone) and ab.yaml, the experiment between them."""
    folder = tmp_path_factory.mktemp("serve-experiment")
    for version in (1, 2):
        write_linear_model(
            folder / "m" / str(version) / "model.onnx",
            len(FEATURES),
            feature_names=FEATURES,
            bias=version / 10,
        )
    (folder / "m" / "labels.yaml").write_text("labels:\n  stable: 1\n")
    formula = "{name: formula, scorer: rules, options: {terms: [{feature: a}]}}"
    (folder / "neural.yaml").write_text(
        "features: [a, b, c]\n"
        "chain:\n"
        "  - {name: neural, scorer: onnx, options: {model: m, version: stable}}\n"
        f"  - {formula}\n"
    )
    (folder / "formula.yaml").write_text(f"features: [a, b, c]\nchain:\n  - {formula}\n")
    (folder / "ab.yaml").write_text(
        "experiment: calling-ab\n"
        "unit: user_id\n"
        "variants:\n"
        "  - {name: formula, config: formula.yaml, weight: 0.5}\n"
        "  - {name: neural, config: neural.yaml, weight: 0.5}\n"
        "exposures: exposures.jsonl\n"
    )
    return folder


@pytest.fixture(scope="module")
def server(folder: Path) -> Iterator[ServerProcess]:
    with ServerProcess(
        [str(folder / "ab.yaml"), str(folder / "formula.yaml")],
        env={"SCORING_ADMIN_TOKEN": TOKEN},
    ) as running:
        yield running


@pytest.fixture(scope="module")
def experiment(folder: Path) -> Iterator[Experiment]:
    """The same experiment in this process, without its exposure log (not to mix them)."""
    text = (folder / "ab.yaml").read_text().replace("exposures: exposures.jsonl\n", "")
    (folder / "ab-local.yaml").write_text(text)
    with Experiment.from_yaml(folder / "ab-local.yaml") as built:
        yield built


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, len(FEATURES)), dtype=np.float32)


def infer_body(X: np.ndarray, units: list[str] | None) -> dict[str, Any]:
    inputs: list[dict[str, Any]] = [
        {"name": "features", "datatype": "FP32", "shape": list(X.shape), "data": X.tolist()}
    ]
    if units is not None:
        inputs.append({"name": "unit", "datatype": "BYTES", "shape": [len(units)], "data": units})
    return {"inputs": inputs}


def post(server: ServerProcess, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(server.url + path, timeout=30, **kwargs)


def triton_infer(
    server: ServerProcess, X: np.ndarray, units: list[str], *, binary: bool
) -> triton.InferResult:
    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    features = triton.InferInput("features", list(X.shape), "FP32")
    features.set_data_from_numpy(X, binary_data=binary)
    unit = triton.InferInput("unit", [len(units)], "BYTES")
    unit.set_data_from_numpy(np.array(units, dtype=object), binary_data=binary)
    outputs = [
        triton.InferRequestedOutput(name, binary_data=binary)
        for name in ("score", "scorer", "fallback_reason", "variant")
    ]
    return client.infer("calling-ab", [features, unit], outputs=outputs)


def texts(values: np.ndarray) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values.tolist()]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_each_unit_gets_its_variant_and_exactly_that_chains_scores(
    server: ServerProcess, experiment: Experiment, binary: bool
) -> None:
    X = rows(len(UNITS), seed=int(binary))
    answer = triton_infer(server, X, UNITS, binary=binary)
    variants = texts(answer.as_numpy("variant"))
    assert variants == [experiment.assign(u) for u in UNITS]
    assert set(variants) == {"formula", "neural"}  # 40 units: both variants seen
    scores = answer.as_numpy("score")
    scorers = texts(answer.as_numpy("scorer"))
    for name, engine in experiment.engines.items():
        picked = [i for i, v in enumerate(variants) if v == name]
        expected = engine.score_batch(X[picked])
        assert scores[picked].tolist() == expected.scores.tolist()  # exactly
        assert [scorers[i] for i in picked] == expected.scorers.tolist()
    assert texts(answer.as_numpy("fallback_reason")) == [""] * len(UNITS)


def test_model_metadata_lists_the_unit_input_the_variant_output_and_each_variants_steps(
    server: ServerProcess,
) -> None:
    meta = httpx.get(server.url + "/v2/models/calling-ab", timeout=10).json()
    assert meta["name"] == "calling-ab"
    assert {"name": "unit", "datatype": "BYTES", "shape": [-1]} in meta["inputs"]
    assert [o["name"] for o in meta["outputs"]] == ["score", "scorer", "fallback_reason", "variant"]
    experiment = meta["parameters"]["experiment"]
    assert experiment["unit"] == "user_id"
    by_name = {v["name"]: v for v in experiment["variants"]}
    assert [s["name"] for s in by_name["neural"]["steps"]] == ["neural", "formula"]
    assert [s["name"] for s in by_name["formula"]["steps"]] == ["formula"]
    assert all(s["status"] == "ready" for v in by_name.values() for s in v["steps"])
    assert meta["parameters"]["ready"] is True
    ready = httpx.get(server.url + "/v2/models/calling-ab/ready", timeout=10)
    assert ready.json() == {"name": "calling-ab", "ready": True}


def test_a_missing_or_empty_unit_is_400_naming_it(server: ServerProcess) -> None:
    X = rows(2)
    missing = post(server, "/v2/models/calling-ab/infer", json=infer_body(X, None))
    assert missing.status_code == 400, missing.text
    assert "'unit'" in missing.json()["error"]
    empty = post(server, "/v2/models/calling-ab/infer", json=infer_body(X, ["u1", ""]))
    assert empty.status_code == 400, empty.text
    assert "row 1" in empty.json()["error"]
    assert "'unit'" in empty.json()["error"]
    numbers = infer_body(X, None)
    numbers["inputs"].append({"name": "unit", "datatype": "INT64", "shape": [2], "data": [1, 2]})
    wrong = post(server, "/v2/models/calling-ab/infer", json=numbers)
    assert wrong.status_code == 400
    assert "BYTES" in wrong.json()["error"]
    few = post(server, "/v2/models/calling-ab/infer", json=infer_body(X, ["u1"]))
    assert few.status_code == 400
    assert "Traceback" not in few.text


def test_exposures_are_written_and_counted_in_metrics(
    server: ServerProcess, folder: Path, experiment: Experiment
) -> None:
    units = ["exposed-1", "exposed-2", "exposed-3"]
    answer = post(server, "/v2/models/calling-ab/infer", json=infer_body(rows(3), units))
    assert answer.status_code == 200, answer.text
    path = folder / "exposures.jsonl"
    records: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not set(units) <= set(records):
        if path.exists():
            records = {r["unit"]: r for r in map(json.loads, path.read_text().splitlines())}
        time.sleep(0.1)
    for unit in units:
        record = records[unit]
        assert record["variant"] == experiment.assign(unit)
        assert record["provenance"]["chain"] == record["chain"]
        assert record["provenance"]["step"] == record["scorer"]
    metrics = httpx.get(server.url + "/metrics", timeout=10).text
    exposed = [
        line
        for line in metrics.splitlines()
        if line.startswith('scoring_exposures_total{experiment="calling-ab"')
    ]
    assert {line.split('variant="')[1].split('"')[0] for line in exposed} == {"formula", "neural"}
    assert sum(float(line.rsplit(" ", 1)[1]) for line in exposed) >= len(units)


def test_mlflow_invocations_take_the_unit_from_the_unit_column(
    server: ServerProcess, experiment: Experiment
) -> None:
    # /invocations serves the first config, the experiment
    X = rows(4, seed=7)
    units = ["m-1", "m-2", "m-3", "m-4"]
    split = {
        "columns": ["user_id", *FEATURES],
        "data": [[u, *r] for u, r in zip(units, X.tolist(), strict=True)],
    }
    answer = post(server, "/invocations", json={"dataframe_split": split})
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert [p["variant"] for p in predictions] == [experiment.assign(u) for u in units]
    expected = experiment.score_batch(X, units=units)
    assert [p["score"] for p in predictions] == expected.scores.tolist()
    csv = "user_id,a,b,c\n" + "".join(
        f"{u},{','.join(map(repr, r))}\n" for u, r in zip(units, X.tolist(), strict=True)
    )
    from_csv = post(server, "/invocations", content=csv, headers={"content-type": "text/csv"})
    assert from_csv.status_code == 200, from_csv.text
    assert [p["variant"] for p in from_csv.json()["predictions"]] == expected.variants.tolist()
    no_unit = post(
        server,
        "/invocations",
        json={"dataframe_records": [dict(zip(FEATURES, X[0].tolist(), strict=True))]},
    )
    assert no_unit.status_code == 400
    assert "'user_id'" in no_unit.json()["error"]


def test_model_version_is_the_provenance_stamp_and_moves_with_promote_and_reload(
    server: ServerProcess, folder: Path, experiment: Experiment
) -> None:
    neural_unit = next(u for u in UNITS if experiment.assign(u) == "neural")
    formula_unit = next(u for u in UNITS if experiment.assign(u) == "formula")
    X = rows(1, seed=3)

    def version(unit: str) -> str:
        answer = post(server, "/v2/models/calling-ab/infer", json=infer_body(X, [unit]))
        assert answer.status_code == 200, answer.text
        return str(answer.json()["model_version"])

    with Engine.from_yaml(folder / "neural.yaml") as neural:
        origin = neural.score_batch(X).provenance_of(0)
    assert origin is not None
    assert version(neural_unit) == origin.stamp == "neural/neural@1"
    assert version(formula_unit) == "formula/formula"  # the formula: no model version

    chain = post(server, "/v2/models/formula/infer", json=infer_body(X, None))
    assert chain.json()["model_version"] == "formula/formula"

    promoted = run_cli("models", "promote", str(folder / "neural.yaml"), "neural", "stable", "2")
    assert promoted.exit_code == 0, promoted.output
    reload = post(
        server,
        "/v2/repository/models/calling-ab/load",
        headers={"authorization": f"Bearer {TOKEN}"},
    )
    assert reload.status_code == 200, reload.text
    assert reload.json()["steps"] == {
        "formula/formula": "reloaded",
        "neural/neural": "reloaded",
        "neural/formula": "reloaded",
    }
    assert version(neural_unit) == "neural/neural@2"
    meta = httpx.get(server.url + "/v2/models/calling-ab", timeout=10).json()
    assert meta["versions"] == ["formula/formula"]  # the control's stamp
    # a path names a version by what serves now: a variant's bare model version
    served = httpx.get(server.url + "/v2/models/calling-ab/versions/2/ready", timeout=10)
    assert served.status_code == 200, served.text
    gone = httpx.get(server.url + "/v2/models/calling-ab/versions/1/ready", timeout=10)
    assert gone.status_code == 404


def test_an_experiment_served_by_two_workers_logs_and_counts_every_exposure_once(
    folder: Path, tmp_path: Path, experiment: Experiment
) -> None:
    """Both worker processes append to the one exposure log: every request's units are in
    it once, whole lines, and the merged /metrics count them all."""
    import concurrent.futures

    served = tmp_path / "served"
    served.mkdir()
    for name in ("neural.yaml", "formula.yaml", "ab.yaml"):
        (served / name).write_text((folder / name).read_text())
    (served / "m").symlink_to(folder / "m")
    batches = [[f"w{i}-u{j}" for j in range(30)] for i in range(60)]  # 60 requests of 30
    with ServerProcess([str(served / "ab.yaml"), "--workers", "2"]) as server:

        def send(units: list[str]) -> list[str]:
            answer = post(server, "/v2/models/calling-ab/infer", json=infer_body(rows(30), units))
            assert answer.status_code == 200, answer.text
            (variant,) = (o for o in answer.json()["outputs"] if o["name"] == "variant")
            return list(variant["data"])

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answered = list(pool.map(send, batches))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = httpx.get(server.url + "/metrics", timeout=10).text
            exposed = [
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith('scoring_exposures_total{experiment="calling-ab"')
            ]
            if sum(exposed) >= 60 * 30:
                break
            time.sleep(0.1)
        assert sum(exposed) == 60 * 30
        assert server.stop() == 0
    records = [json.loads(line) for line in (served / "exposures.jsonl").read_text().splitlines()]
    units = [u for batch in batches for u in batch]
    assert sorted(r["unit"] for r in records) == sorted(units)
    variant_of = {r["unit"]: r["variant"] for r in records}
    for batch, variants in zip(batches, answered, strict=True):
        assert variants == [experiment.assign(u) for u in batch]
        assert [variant_of[u] for u in batch] == variants
