"""Prometheus metrics (``scoring_core.metrics``): every count, read back from a real scrape.

The exposition is parsed with ``prometheus_client.parser`` after batches that hit every
failure reason (unavailable at load, raise, circuit open, wrong shape, timeout, NaN, out
of range, deadline), and each sample is checked against what was scored and against
``engine.diagnostics()``.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from cli_helpers import MEAN_CLASS, plugin_source, run_cli, write_project
from onnx_models import write_linear_model
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from scorers import (
    ConstantScorer,
    MeanScorer,
    NaNForHighFirstFeature,
    OutOfRangeScorer,
    RaisingScorer,
    RefusesToLoad,
    WrongShapeScorer,
)

import scoring_core.metrics
from scoring_core import ConfigError, Engine, InputError, MissingExtraError
from scoring_core.metrics import FAILURE_REASONS, FAMILIES
from scoring_core.observe import LATENCY_BUCKETS_S
from scoring_core.testing import feature_list, scorer_plugin

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Clock:
    """A clock the test moves by hand (breakers and the chain's deadline read it)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CancellableWaiter:
    """Waits on its token until the watchdog cancels it: a timeout, every call."""

    def __init__(self, ctx: Any) -> None:
        pass

    def cancel_token(self) -> threading.Event:
        return threading.Event()

    def cancel(self, token: threading.Event) -> None:
        token.set()

    def score(self, X: np.ndarray, token: threading.Event | None = None) -> np.ndarray:
        if token is not None and token.wait(5.0):
            raise RuntimeError("cancelled")
        return np.full(X.shape[0], 0.5)


CLOCKS: dict[str, Clock] = {}


class Ticker:
    """Moves the engine's clock 5 s on (past any deadline_ms) and returns NaN."""

    def __init__(self, ctx: Any) -> None:
        self.clock = CLOCKS[ctx.name]

    def score(self, X: np.ndarray) -> np.ndarray:
        self.clock.now += 5.0
        return np.full(X.shape[0], np.nan)


PLUGIN = scorer_plugin(
    "refuses",
    RefusesToLoad,
    raising=RaisingScorer,
    wrong_shape=WrongShapeScorer,
    waiter=CancellableWaiter,
    nan_high=NaNForHighFirstFeature,
    out_of_range=OutOfRangeScorer,
    constant=ConstantScorer,
    mean=MeanScorer,
    ticker=Ticker,
)
BREAKER = {"failure_rate": 0.5, "minimum_calls": 2, "window": 2, "open_seconds": 30}
FAULTS_CHAIN = [
    {"name": "gone", "scorer": "refuses"},  # unavailable at load
    {"name": "flaky", "scorer": "raising", "circuit_breaker": BREAKER},  # error, circuit_open
    {"name": "shape", "scorer": "wrong_shape"},  # bad_shape
    {"name": "slow", "scorer": "waiter", "timeout_ms": 20},  # timeout
    {"name": "nan", "scorer": "nan_high"},  # non_finite where f0 > 0.5
    {"name": "range", "scorer": "out_of_range"},  # out_of_range where f1 > 0.5: exhausted
]


def faults_engine(clock: Clock, name: str = "faults") -> Engine:
    config = {
        "name": name,
        "features": feature_list(5),
        "output_range": [0, 1],
        "on_exhausted": {"score": 0.5},
        "chain": FAULTS_CHAIN,
    }
    return Engine.from_config(config, plugins=[PLUGIN], clock=clock)


def late_engine(clock: Clock) -> Engine:
    CLOCKS["tick"] = clock
    config = {
        "name": "late",
        "features": feature_list(5),
        "deadline_ms": 1000,
        "chain": [
            {"name": "tick", "scorer": "ticker"},  # non_finite, and the deadline passes
            {"name": "skipped", "scorer": "constant"},  # deadline
            {"name": "last", "scorer": "constant"},  # the last step always runs
        ],
    }
    return Engine.from_config(config, plugins=[PLUGIN], clock=clock)


def rows(n: int, seed: int) -> npt.NDArray[np.float32]:
    return np.random.default_rng(seed).uniform(0, 1, (n, 5)).astype(np.float32)


def scrape(registry: CollectorRegistry) -> Samples:
    """Every sample of a scrape, parsed back: (sample name, sorted labels) -> value."""
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def step_samples(samples: Samples, name: str, chain: str) -> dict[str, float]:
    """step -> value of a per-step family without other labels."""
    return {
        dict(labels)["step"]: v
        for (sample, labels), v in samples.items()
        if sample == name and dict(labels)["chain"] == chain and len(labels) == 2
    }


def failures(samples: Samples, chain: str) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["step"], dict(labels)["reason"]): v
        for (sample, labels), v in samples.items()
        if sample == "scoring_step_failures_total" and dict(labels)["chain"] == chain
    }


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def faults(registry: CollectorRegistry) -> Iterator[Engine]:
    with faults_engine(Clock()) as engine:
        scoring_core.metrics.register(engine, registry)
        yield engine


# -- every count, against what was scored --------------------------------------------------


def score_the_fault_batches(engine: Engine) -> tuple[list[npt.NDArray[np.float32]], int]:
    """Three scored batches and one row, then bad input: returns them and the rows rejected."""
    batches = [rows(10, 1), rows(7, 2), rows(1, 3)]
    engine.score_batch(batches[0])
    engine.score_batch(batches[1])
    engine.score(batches[2][0])
    bad = rows(4, 4)
    bad[1, 2] = 2.0
    bad[3, 0] = np.nan
    with pytest.raises(InputError):
        engine.score_batch(bad)  # two bad rows: nothing scored, two rejected
    with pytest.raises(InputError):
        engine.score({"f0": 0.5, "f9": 0.5})  # an unknown feature
    return batches, 3


def test_every_failure_reason_is_counted_in_rows_as_scored(
    faults: Engine, registry: CollectorRegistry
) -> None:
    batches, rejected = score_the_fault_batches(faults)
    samples = scrape(registry)

    calls_given = len(batches)  # every step saw every batch (no row is served before nan)
    rows_given = sum(len(b) for b in batches)
    high_first = sum(int((b[:, 0] > 0.5).sum()) for b in batches)
    high_both = sum(int(((b[:, 0] > 0.5) & (b[:, 1] > 0.5)).sum()) for b in batches)
    first = len(batches[0]) + len(batches[1])  # the breaker opened after two failed calls
    expected_failures = dict.fromkeys(
        ((step["name"], reason) for step in FAULTS_CHAIN for reason in FAILURE_REASONS), 0.0
    )
    expected_failures.update(
        {
            ("gone", "unavailable"): rows_given,
            ("flaky", "error"): first,
            ("flaky", "circuit_open"): rows_given - first,
            ("shape", "bad_shape"): rows_given,
            ("slow", "timeout"): rows_given,
            ("nan", "non_finite"): high_first,
            ("range", "out_of_range"): high_both,
        }
    )
    assert failures(samples, "faults") == expected_failures
    assert step_samples(samples, "scoring_rows_served_total", "faults") == {
        "gone": 0,
        "flaky": 0,
        "shape": 0,
        "slow": 0,
        "nan": rows_given - high_first,
        "range": high_first - high_both,
    }
    assert step_samples(samples, "scoring_step_calls_total", "faults") == {
        "gone": 0,  # never called: it has no scorer
        "flaky": 2,  # the open breaker skipped the third call
        "shape": calls_given,
        "slow": calls_given,
        "nan": calls_given,
        "range": sum(bool((b[:, 0] > 0.5).any()) for b in batches),  # when rows reach it
    }
    assert value(samples, "scoring_rows_exhausted_total", chain="faults") == high_both
    assert value(samples, "scoring_rows_rejected_total", chain="faults") == rejected
    assert step_samples(samples, "scoring_step_ready", "faults") == {
        "gone": 0,
        "flaky": 1,
        "shape": 1,
        "slow": 1,
        "nan": 1,
        "range": 1,
    }
    # the timed-out calls took at least their 20 ms budget
    assert value(samples, "scoring_step_duration_seconds_sum", chain="faults", step="slow") >= (
        0.02 * calls_given * 0.9
    )


def test_every_count_agrees_with_diagnostics(faults: Engine, registry: CollectorRegistry) -> None:
    score_the_fault_batches(faults)
    samples = scrape(registry)
    diagnostics = faults.diagnostics()
    engine = diagnostics["engine"]
    assert value(samples, "scoring_rows_rejected_total", chain="faults") == engine["rows_rejected"]
    assert (
        value(samples, "scoring_rows_exhausted_total", chain="faults") == engine["rows_exhausted"]
    )
    for step in diagnostics["steps"]:
        name = step["name"]
        assert (
            value(samples, "scoring_rows_served_total", chain="faults", step=name)
            == (step["rows_served"])
        )
        assert (
            value(samples, "scoring_step_calls_total", chain="faults", step=name) == (step["calls"])
        )
        for reason in FAILURE_REASONS:
            got = value(
                samples, "scoring_step_failures_total", chain="faults", step=name, reason=reason
            )
            assert got == step["rows_failed"].get(reason, 0), (name, reason)
        assert value(samples, "scoring_step_ready", chain="faults", step=name) == (
            step["status"] == "ready"
        )
        count = value(samples, "scoring_step_duration_seconds_count", chain="faults", step=name)
        assert count == step["calls"]
        assert count == (0 if step["latency_ms"] is None else step["latency_ms"]["samples"])


def test_the_chain_deadline_is_counted_as_its_own_reason(registry: CollectorRegistry) -> None:
    with late_engine(Clock()) as engine:
        scoring_core.metrics.register(engine, registry)
        engine.score_batch(rows(6, 5))
        engine.score(rows(1, 6)[0])
        samples = scrape(registry)
        diagnostics = engine.diagnostics()
    got = {key: v for key, v in failures(samples, "late").items() if v}
    assert got == {("tick", "non_finite"): 7, ("skipped", "deadline"): 7}
    assert step_samples(samples, "scoring_rows_served_total", "late") == {
        "tick": 0,
        "skipped": 0,
        "last": 7,
    }
    assert step_samples(samples, "scoring_step_calls_total", "late") == {
        "tick": 2,
        "skipped": 0,  # skipped, never called
        "last": 2,
    }
    assert diagnostics["steps"][1]["rows_failed"] == {"deadline": 7}


def test_the_latency_histogram_has_the_buckets_from_25_us_to_1_s(
    faults: Engine, registry: CollectorRegistry
) -> None:
    faults.score_batch(rows(3, 7))
    samples = scrape(registry)
    buckets = {
        dict(labels)["le"]: v
        for (name, labels), v in samples.items()
        if name == "scoring_step_duration_seconds_bucket" and dict(labels)["step"] == "nan"
    }
    assert [float(le) for le in buckets] == [*LATENCY_BUCKETS_S, float("inf")]
    counts = list(buckets.values())
    assert counts == sorted(counts)  # cumulative
    assert counts[-1] == 1
    assert value(samples, "scoring_step_duration_seconds_count", chain="faults", step="nan") == 1


# -- several engines, one registry --------------------------------------------------------


def test_two_engines_share_one_collector_each_family_once_with_samples_per_chain(
    faults: Engine, registry: CollectorRegistry
) -> None:
    with late_engine(Clock()) as late:
        collector = scoring_core.metrics.register(late, registry)
        assert collector.chains == ("faults", "late")
        faults.score_batch(rows(2, 8))
        late.score_batch(rows(3, 9))
        text = generate_latest(registry).decode()
        samples = scrape(registry)
    for family in FAMILIES:
        assert text.count(f"# TYPE {family.name} {family.type}\n") == 1, family.name
        assert text.count(f"# HELP {family.name} ") == 1, family.name
    assert step_samples(samples, "scoring_rows_served_total", "late") == {
        "tick": 0,
        "skipped": 0,
        "last": 3,
    }
    assert (
        sum(step_samples(samples, "scoring_rows_served_total", "faults").values())
        + value(samples, "scoring_rows_exhausted_total", chain="faults")
        == 2
    )


def test_registering_an_engine_twice_is_an_error_naming_its_chain(
    faults: Engine, registry: CollectorRegistry
) -> None:
    with pytest.raises(ValueError, match="'faults' is already registered"):
        scoring_core.metrics.register(faults, registry)


def test_two_chains_of_one_name_in_one_registry_is_an_error_naming_the_chain(
    faults: Engine, registry: CollectorRegistry
) -> None:
    with faults_engine(Clock()) as twin:
        with pytest.raises(ValueError, match="a chain named 'faults' is already registered"):
            scoring_core.metrics.register(twin, registry)
        scoring_core.metrics.register(twin, CollectorRegistry())  # another registry is fine


def test_an_unregistered_engine_leaves_the_scrape(
    faults: Engine, registry: CollectorRegistry
) -> None:
    scoring_core.metrics.unregister(faults, registry)
    assert not any(dict(labels).get("chain") for _, labels in scrape(registry))
    with pytest.raises(KeyError, match="faults"):
        scoring_core.metrics.unregister(faults, registry)
    scoring_core.metrics.register(faults, registry)  # and can come back


def test_the_default_registry_is_used_when_none_is_given() -> None:
    from prometheus_client import REGISTRY

    with faults_engine(Clock(), name="default-registry-test") as engine:
        collector = scoring_core.metrics.register(engine)
        try:
            labels = {"chain": "default-registry-test", "step": "nan"}
            assert REGISTRY.get_sample_value("scoring_step_ready", labels) == 1
        finally:
            collector.remove(engine)


def test_a_closed_engine_reports_its_steps_not_ready_and_keeps_its_counts(
    registry: CollectorRegistry,
) -> None:
    engine = faults_engine(Clock())
    scoring_core.metrics.register(engine, registry)
    engine.score_batch(rows(2, 10))
    engine.close()
    samples = scrape(registry)
    assert set(step_samples(samples, "scoring_step_ready", "faults").values()) == {0}
    assert value(samples, "scoring_step_calls_total", chain="faults", step="shape") == 1
    assert not any(name == "scoring_model_info" for name, _ in samples)


# -- model identity -----------------------------------------------------------------------


def model_info(samples: Samples, chain: str) -> list[dict[str, str]]:
    return [
        dict(labels)
        for (name, labels), v in samples.items()
        if name == "scoring_model_info" and dict(labels)["chain"] == chain and v == 1
    ]


def onnx_engine(model: Path) -> Engine:
    config = {
        "name": "neural-chain",
        "features": feature_list(5),
        "chain": [
            {"name": "neural", "scorer": "onnx", "options": {"model": str(model)}},
            {"name": "formula", "scorer": "mean"},
        ],
    }
    return Engine.from_config(config, plugins=[PLUGIN])


def deploy(source: Path, target: Path) -> None:
    staged = target.with_suffix(".staged")
    shutil.copyfile(source, staged)
    os.replace(staged, target)


def test_model_info_shows_the_model_served_and_follows_a_reload(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    names = [f"f{i}" for i in range(5)]
    model = write_linear_model(tmp_path / "model.onnx", 5, feature_names=names, model_version="1")
    new = write_linear_model(
        tmp_path / "new.onnx", 5, feature_names=names, model_version="2", bias=0.125
    )
    with onnx_engine(model) as engine:
        scoring_core.metrics.register(engine, registry)
        before = model_info(scrape(registry), "neural-chain")
        described = engine.diagnostics()["steps"][0]["details"]
        deploy(new, model)
        assert engine.reload() == {"neural": "reloaded", "formula": "reloaded"}
        after = model_info(scrape(registry), "neural-chain")
        model.write_bytes(b"not a model")
        assert engine.reload("neural")["neural"].startswith("kept old: ")
        kept = model_info(scrape(registry), "neural-chain")
        renewed = engine.diagnostics()["steps"][0]["details"]
    # the formula step has no model, so no sample
    assert before == [
        {
            "chain": "neural-chain",
            "step": "neural",
            "version": "1",
            "sha256": described["sha256"],
        }
    ]
    assert after == [{**before[0], "version": "2", "sha256": renewed["sha256"]}]
    assert renewed["sha256"] != described["sha256"]
    assert kept == after  # a failed reload keeps the old model serving, and says so


def test_a_model_without_a_version_has_an_empty_version_label(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    names = [f"f{i}" for i in range(5)]
    model = write_linear_model(tmp_path / "model.onnx", 5, feature_names=names)
    with onnx_engine(model) as engine:
        scoring_core.metrics.register(engine, registry)
        [info] = model_info(scrape(registry), "neural-chain")
    assert info["version"] == ""
    assert len(info["sha256"]) == 64


# -- the chain's name ---------------------------------------------------------------------


def test_the_chain_name_is_the_name_key_else_the_file_stem_else_default(tmp_path: Path) -> None:
    config = tmp_path / "calling.yaml"
    config.write_text("features: [a]\nchain:\n  - {name: m, scorer: mean}\n")
    with Engine.from_yaml(config, plugins=[PLUGIN]) as engine:
        assert engine.name == "calling"
        assert engine.diagnostics()["engine"]["name"] == "calling"
    config.write_text("name: calling-v2\nfeatures: [a]\nchain:\n  - {name: m, scorer: mean}\n")
    with Engine.from_yaml(config, plugins=[PLUGIN]) as engine:
        assert engine.name == "calling-v2"
    mapping = {"features": ["a"], "chain": [{"name": "m", "scorer": "mean"}]}
    with Engine.from_config(mapping, plugins=[PLUGIN]) as engine:
        assert engine.name == "default"


@pytest.mark.parametrize("name", ["", "two words", "a/b", 'quote"d'])
def test_a_chain_name_is_checked_like_a_step_name(tmp_path: Path, name: str) -> None:
    config = tmp_path / "scoring.yaml"
    config.write_text(f"name: '{name}'\nfeatures: [a]\nchain:\n  - {{name: m, scorer: mean}}\n")
    with pytest.raises(ConfigError, match="name") as caught:
        Engine.from_yaml(config, plugins=[PLUGIN])
    assert caught.value.line == 1


# -- without prometheus_client ------------------------------------------------------------


def test_without_prometheus_client_register_names_the_extra_to_install(
    faults: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(sys.modules):
        if name.startswith(("prometheus_client", "scoring_core.metrics.")):
            monkeypatch.delitem(sys.modules, name)
    for module in ("collector", "textfile"):
        monkeypatch.delattr(scoring_core.metrics, module, raising=False)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'scoring-core\[serve\]'") as caught:
        scoring_core.metrics.register(faults, None)
    assert isinstance(caught.value, ImportError)
    assert caught.value.extra == "serve"


def test_importing_scoring_core_metrics_does_not_import_prometheus_client() -> None:
    import subprocess

    code = "import sys, scoring_core.metrics; print('prometheus_client' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


# -- the --metrics FILE of scoring score and scoring compare ------------------------------


def parse_file(path: Path) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(path.read_text())
        for sample in family.samples
    }


FLAKY_HALF = """
class NanHalf:
    def __init__(self, ctx):
        pass

    def score(self, X):
        out = X.mean(axis=1).astype(np.float64)
        out[X[:, 0] > 0.5] = np.nan
        return out
"""


def metrics_project(tmp_path: Path) -> tuple[Path, Path, int, int]:
    config = write_project(
        tmp_path,
        plugin_source(MEAN_CLASS, FLAKY_HALF, register={"mean": "Mean", "nan_half": "NanHalf"}),
        ["a", "b"],
        "  - {name: model, scorer: nan_half}\n  - {name: formula, scorer: mean}\n",
    )
    data = tmp_path / "in.csv"
    lines = ["a,b", "0.9,0.1", "0.1,0.2", "0.7,0.3", "0.2,0.4", "5,0.5", "x,0.1"]
    data.write_text("\n".join(lines) + "\n")
    return config, data, 2, 2  # rows the model fails (a > 0.5), rows rejected (5, x)


def test_scoring_score_writes_the_final_metrics_to_a_file(tmp_path: Path) -> None:
    config, data, failed, rejected = metrics_project(tmp_path)
    out = tmp_path / "metrics.prom"
    output = str(tmp_path / "out.csv")
    result = run_cli("score", str(data), "-o", output, "-c", str(config), "--metrics", str(out))
    assert result.exit_code == 0, result.output
    samples = parse_file(out)
    assert value(samples, "scoring_rows_served_total", chain="scoring", step="model") == 2
    assert value(samples, "scoring_rows_served_total", chain="scoring", step="formula") == failed
    model_failures = {"chain": "scoring", "step": "model", "reason": "non_finite"}
    assert value(samples, "scoring_step_failures_total", **model_failures) == failed
    assert value(samples, "scoring_rows_rejected_total", chain="scoring") == rejected
    assert value(samples, "scoring_step_ready", chain="scoring", step="model") == 1
    assert not list(tmp_path.glob("metrics.prom.*"))  # written atomically, nothing left over


def test_scoring_compare_writes_the_final_metrics_to_a_file(tmp_path: Path) -> None:
    config, data, failed, rejected = metrics_project(tmp_path)
    out = tmp_path / "compare.prom"
    result = run_cli("compare", str(data), "-c", str(config), "--json", "--metrics", str(out))
    assert result.exit_code == 0, result.output
    samples = parse_file(out)
    scored = 4  # each step alone sees every good row
    assert value(samples, "scoring_rows_served_total", chain="scoring", step="model") == (
        scored - failed
    )
    assert value(samples, "scoring_rows_served_total", chain="scoring", step="formula") == scored
    assert value(samples, "scoring_step_calls_total", chain="scoring", step="formula") == 1
    assert value(samples, "scoring_rows_rejected_total", chain="scoring") == rejected


# -- docs/metrics.md says what a scrape shows -----------------------------------------------

METRICS_MD = (Path(__file__).resolve().parent.parent / "docs" / "metrics.md").read_text()


def documented_metrics() -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (type, labels), from the table of docs/metrics.md."""
    found = {}
    for line in METRICS_MD.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`scoring_"):
            labels = frozenset(label.strip() for label in cells[2].split(","))
            found[cells[0].strip("`")] = (cells[1], labels)
    return found


def scraped_metrics() -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (type, labels) of a real scrape of the shipped chain (an onnx step and the
    formula), counters named with their ``_total`` as the text format exposes them."""
    registry = CollectorRegistry()
    root = Path(__file__).resolve().parent.parent
    broken = {  # a model that is not there: a failed load, counted
        "name": "broken",
        "features": ["a"],
        "chain": [
            {"name": "model", "scorer": "onnx", "options": {"model": "missing.onnx"}},
            {"name": "formula", "scorer": "rules", "options": {"terms": [{"constant": 0.5}]}},
        ],
    }
    with (
        Engine.from_yaml(root / "scoring.yaml") as engine,
        Engine.from_config(broken, base_dir=root) as fallback,
    ):
        scoring_core.metrics.register(engine, registry)
        scoring_core.metrics.register(fallback, registry)
        engine.score_batch(np.full((2, len(engine.feature_names)), 0.5, dtype=np.float32))
        text = generate_latest(registry).decode()
    found = {}
    for family in text_string_to_metric_families(text):
        labels = frozenset(label for s in family.samples for label in s.labels) - {"le"}
        name = f"{family.name}_total" if family.type == "counter" else family.name
        found[name] = (family.type, labels)
    return found


def test_docs_metrics_md_lists_every_metric_with_its_type_and_labels() -> None:
    assert documented_metrics() == scraped_metrics()
    assert set(documented_metrics()) == {family.name for family in FAMILIES}


def test_docs_metrics_md_lists_every_failure_reason() -> None:
    documented = re.findall(
        r"^\| `([a-z_]+)` \| (?:could|raised|did|returned|was)", METRICS_MD, re.M
    )
    assert documented == list(FAILURE_REASONS)


def test_the_promql_examples_of_docs_metrics_md_name_only_exposed_series() -> None:
    blocks = re.findall(r"```promql\n(.*?)```", METRICS_MD, re.S)
    assert len(blocks) >= 2
    exposed = set()
    for name, (kind, _) in scraped_metrics().items():
        exposed |= (
            {name, f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            if (kind == "histogram")
            else {name}
        )
    named = {name for block in blocks for name in re.findall(r"\bscoring_[a-z_]+", block)}
    assert named <= exposed
    # the two queries the issue asks for
    assert any('scoring_rows_served_total{step="formula"}' in block for block in blocks)
    assert any("histogram_quantile(0.99" in block for block in blocks)


def test_a_run_that_stops_on_an_exhausted_row_still_writes_its_metrics(tmp_path: Path) -> None:
    config = write_project(
        tmp_path,
        plugin_source(FLAKY_HALF, register={"nan_half": "NanHalf"}),
        ["a", "b"],
        "  - {name: model, scorer: nan_half}\n",
    )
    data = tmp_path / "in.csv"
    data.write_text("a,b\n0.1,0.1\n0.9,0.1\n")
    out = tmp_path / "metrics.prom"
    output = str(tmp_path / "out.csv")
    result = run_cli("score", str(data), "-o", output, "-c", str(config), "--metrics", str(out))
    assert result.exit_code == 1, result.output
    samples = parse_file(out)
    assert value(samples, "scoring_rows_exhausted_total", chain="scoring") == 1
    assert value(samples, "scoring_rows_served_total", chain="scoring", step="model") == 1


@pytest.mark.parametrize("clash", ["output", "rejects file", "input", "no folder"])
def test_metrics_that_would_replace_another_file_of_the_run_are_refused_first(
    tmp_path: Path, clash: str
) -> None:
    config, data, _, _ = metrics_project(tmp_path)
    output, rejects = tmp_path / "out.csv", tmp_path / "bad.csv"
    rejects.write_text("kept\n")
    metrics = {"output": output, "rejects file": rejects, "input": data,
               "no folder": tmp_path / "nope" / "m.prom"}[clash]  # fmt: skip
    before = data.read_text()
    args = ["score", str(data), "-o", str(output), "--rejects", str(rejects)]
    result = run_cli(*args, "-c", str(config), "--metrics", str(metrics))
    assert result.exit_code == 2, result.output
    expected = {
        "output": "is also the output",
        "rejects file": "is also the rejects file",
        "input": "it is the input file",
        "no folder": "there is no folder",
    }[clash]
    assert expected in result.output
    assert not output.exists()  # refused before any work
    assert rejects.read_text() == "kept\n"
    assert data.read_text() == before


def test_compare_metrics_naming_its_rejects_file_are_refused(tmp_path: Path) -> None:
    config, data, _, _ = metrics_project(tmp_path)
    rejects = tmp_path / "rejects.csv"
    args = ["compare", str(data), "-c", str(config), "--rejects", str(rejects)]
    result = run_cli(*args, "--metrics", str(tmp_path / "." / "rejects.csv"))
    assert result.exit_code == 2, result.output
    assert "is also the rejects file" in result.output


def test_metrics_without_prometheus_client_stop_the_cli_before_scoring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, data, _, _ = metrics_project(tmp_path)
    for name in list(sys.modules):
        if name.startswith(("prometheus_client", "scoring_core.metrics.")):
            monkeypatch.delitem(sys.modules, name)
    for module in ("collector", "textfile"):
        monkeypatch.delattr(scoring_core.metrics, module, raising=False)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    output = tmp_path / "out.csv"
    metrics = str(tmp_path / "m.prom")
    result = run_cli("score", str(data), "-o", str(output), "-c", str(config), "--metrics", metrics)
    assert result.exit_code == 2, result.output
    assert "pip install 'scoring-core[serve]'" in result.output
    assert not output.exists()


def test_failed_model_loads_are_counted_per_version_and_reason(tmp_path: Path) -> None:
    """With `latest`, a truncated version 2 leaves version 1 serving; each load and reload
    counts the failure of version 2, as `invalid`."""
    from onnx_models import write_linear_model

    for version in (1, 2):
        write_linear_model(tmp_path / "m" / str(version) / "model.onnx", 3, bias=version)
    broken = tmp_path / "m" / "2" / "model.onnx"
    broken.write_bytes(broken.read_bytes()[:40])
    config = {
        "name": "versions",
        "features": ["a", "b", "c"],
        "chain": [{"name": "model", "scorer": "onnx", "options": {"model": "m"}}],
    }
    registry = CollectorRegistry()
    with Engine.from_config(config, base_dir=tmp_path) as engine:
        scoring_core.metrics.register(engine, registry)
        assert engine.diagnostics()["steps"][0]["details"]["version"] == 1
        first = sample_values(registry, "scoring_model_load_failures_total")
        engine.reload()
        second = sample_values(registry, "scoring_model_load_failures_total")
    key = (("chain", "versions"), ("reason", "invalid"), ("step", "model"), ("version", "2"))
    assert first == {key: 1.0}
    assert second == {key: 2.0}


def sample_values(registry: CollectorRegistry, name: str) -> dict[tuple[Any, ...], float]:
    text = generate_latest(registry).decode()
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                values[tuple(sorted(sample.labels.items()))] = sample.value
    return values
