"""Property tests: whatever comes in, the engine answers the way its contract says.

* Any array (any float or int dtype, any shape) or any mapping given to ``score`` or
  ``score_batch`` gives finite scores inside ``output_range`` from a named step, each the
  value that step gives the row, or an InputError: never another exception, never NaN.
  The chain's first step returns garbage on some inputs (NaN, infinity, out of range,
  the wrong shape or type, or raises), deterministically from the input, so the expected
  step and value of every row is known; the second step is the real ``rules`` formula.
* Any YAML-like document given to ``Engine.from_config``, or rendered to YAML text (and
  raw random text) given to ``Engine.from_yaml``, gives an Engine or a ConfigError (or a
  PluginError), never another exception.

Examples run under the ``ci`` profile of ``tests/conftest.py`` (derandomized, so the same
examples on every run): five times its ``max_examples`` for the input properties, which
are cheap, and twice for the configuration ones, which build an engine each time. Each
test counts the outcomes it saw, checks that every kind of outcome was reached (so the
property is not vacuously true) and prints the counts; run with ``-s`` (or
``--hypothesis-show-statistics``) to see them.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import string
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import yaml
from hypothesis import currently_in_test_context, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx_models import write_linear_model

from scoring_core import (
    BatchResult,
    ConfigError,
    Engine,
    InputError,
    PluginError,
    ScorerContext,
    ScoreResult,
    ScoringError,
)
from scoring_core.testing import scorer_plugin

FEATURES = [f"f{i}" for i in range(5)]
STEPS = ("garbage", "formula")

# -- (a) inputs ----------------------------------------------------------------------------


def _key(data: bytes) -> int:
    return zlib.crc32(data)


def call_fault(X: npt.NDArray[np.float32]) -> str | None:
    """What the garbage step does with this whole call, or None to return per-row values."""
    return {0: "raise", 1: "one too many", 2: "two columns", 3: "text", 4: "None"}.get(
        _key(X.tobytes()) % 9
    )


def row_values(X: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """Per row: NaN, infinity, out of range, or a valid score, from the row's bytes."""
    out = np.empty(X.shape[0])
    for i, row in enumerate(X):
        key = _key(row.tobytes())
        out[i] = (
            (np.nan, np.inf, -np.inf, 1.5, -0.25, 1e300)[key % 6]
            if key % 2
            else ((key % 1001) / 1000)
        )
    return out


class Garbage:
    """Valid scores for some rows, garbage for the others; remembers the rows it was given."""

    def __init__(self, ctx: ScorerContext) -> None:
        self.seen: npt.NDArray[np.float32] | None = None

    def score(self, X: npt.NDArray[np.float32]) -> Any:
        self.seen = X.copy()
        n = X.shape[0]
        fault = call_fault(X)
        if fault == "raise":
            raise ValueError("garbage step refuses this batch")
        if fault == "one too many":
            return [0.5] * (n + 1)
        if fault == "two columns":
            return np.full((n, 2), 0.5)
        if fault == "text":
            return "0.5 for everyone"
        if fault == "None":
            return None
        return row_values(X)


def expected(X: npt.NDArray[np.float32]) -> tuple[list[str], npt.NDArray[np.float64]]:
    """The step that must serve each row, and the value it must get."""
    formula = np.clip(X.astype(np.float64).mean(axis=1), 0, 1)
    if call_fault(X) is not None:
        return ["formula"] * X.shape[0], formula
    values = row_values(X)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(values) & (values >= 0) & (values <= 1)
    return list(np.where(ok, "garbage", "formula")), np.where(ok, values, formula)


INPUT_CONFIG = {
    "features": [{"name": name, "min": 0, "max": 1} for name in FEATURES],
    "output_range": [0, 1],
    "chain": [
        {"name": "garbage", "scorer": "garbage"},
        {
            "name": "formula",
            "scorer": "rules",
            "options": {"groups": {"all": FEATURES}, "terms": [{"mean": "all"}], "clamp": [0, 1]},
        },
    ],
}


@pytest.fixture
def engine() -> Iterator[Engine]:
    with Engine.from_config(INPUT_CONFIG, plugins=[scorer_plugin("garbage", Garbage)]) as built:
        yield built


def _count(counts: Counter[str], outcome: str) -> None:
    """Count an outcome; inside a property test also report it to --hypothesis-show-statistics."""
    counts[outcome] += 1
    if currently_in_test_context():
        event(outcome)


def _garbage_step(engine: Engine) -> Garbage:
    step = next(s for s in engine._chain.steps if s.name == "garbage")
    assert isinstance(step.scorer, Garbage)
    return step.scorer


def check_single(engine: Engine, row: Any, counts: Counter[str]) -> None:
    """score(row) gives a valid result from the right step, or InputError."""
    garbage = _garbage_step(engine)
    garbage.seen = None
    try:
        result = engine.score(row)
    except InputError as exc:
        error = exc
    else:
        error = None
    if error is not None:
        assert error.row == 0
        _count(counts, "InputError")
        return
    assert isinstance(result, ScoreResult)
    assert result.scorer in STEPS
    assert isinstance(result.score, float)
    assert math.isfinite(result.score)
    assert 0 <= result.score <= 1
    assert garbage.seen is not None  # the first step always sees a good row
    scorers, values = expected(garbage.seen)
    assert result.scorer == scorers[0]
    assert result.score == pytest.approx(values[0], abs=1e-6)
    assert [f.step for f in result.fallbacks] == (["garbage"] if scorers[0] == "formula" else [])
    _count(counts, f"served by {result.scorer}")


def check_batch(engine: Engine, rows: Any, counts: Counter[str]) -> None:
    """score_batch(rows) gives n valid results, each from the right step, or InputError."""
    garbage = _garbage_step(engine)
    garbage.seen = None
    try:
        batch = engine.score_batch(rows)
    except InputError:
        _count(counts, "InputError")
        return
    assert isinstance(batch, BatchResult)
    n = len(batch)
    assert batch.scores.shape == (n,)
    assert batch.scores.dtype == np.float64
    assert len(batch.scorers) == n
    assert np.isfinite(batch.scores).all()
    assert ((batch.scores >= 0) & (batch.scores <= 1)).all()
    assert set(batch.scorers) <= set(STEPS)
    if n == 0:
        assert garbage.seen is None  # nothing to score, no step called
        _count(counts, "empty batch")
        return
    assert garbage.seen is not None
    assert garbage.seen.shape == (n, len(FEATURES))  # no row lost or added
    scorers, values = expected(garbage.seen)
    assert list(batch.scorers) == scorers
    np.testing.assert_allclose(batch.scores, values, rtol=0, atol=1e-6)
    kinds = set(batch.scorers)
    _count(counts, "served by both steps" if len(kinds) == 2 else f"served by {kinds.pop()}")


# Strategies. Dtypes: every float (half to long double) and int width, either byte order.
NUMERIC_DTYPES = st.one_of(
    hnp.floating_dtypes(sizes=(16, 32, 64, 128)),
    hnp.integer_dtypes(),
    hnp.unsigned_integer_dtypes(),
)
ANY_SHAPE = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6)
BAD_VALUES = [np.nan, np.inf, -np.inf, -1e-3, 1.001, 2.0, -1.0, 1e300, -0.0, 255.0]


@st.composite
def unit_arrays(draw: st.DrawFn, shapes: st.SearchStrategy[tuple[int, ...]]) -> np.ndarray:
    """Arrays of values in [0, 1] of any numeric dtype; sometimes with one bad value poked in."""
    dtype = draw(NUMERIC_DTYPES)
    shape = draw(shapes)
    if dtype.kind == "f":
        elements = st.floats(0, 1, width=min(8 * dtype.itemsize, 64))  # type: ignore[call-overload]
    else:
        elements = st.integers(0, 1)
    array = draw(hnp.arrays(dtype, shape, elements=elements))
    if array.size and draw(st.integers(0, 3)) == 0:
        position = draw(st.integers(0, array.size - 1))
        with np.errstate(all="ignore"):
            array.flat[position] = np.asarray(draw(st.sampled_from(BAD_VALUES))).astype(dtype)
    return array


ROW_ARRAYS = unit_arrays(st.just((len(FEATURES),)))
BATCH_ARRAYS = unit_arrays(st.tuples(st.integers(0, 12), st.just(len(FEATURES))))
ANY_ARRAYS = hnp.arrays(NUMERIC_DTYPES, ANY_SHAPE)

KEYS = st.one_of(
    st.sampled_from(FEATURES),
    st.text(max_size=4),
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
)
VALUES = st.one_of(
    st.floats(0, 1),
    st.floats(),
    st.integers(-3, 3),
    st.integers(),
    st.integers(min_value=2**64, max_value=2**70),  # beyond int64, not beyond float
    st.integers(min_value=2**1024, max_value=2**1030).map(lambda v: v * (-1) ** v),  # beyond
    st.lists(st.floats(0, 1), max_size=2),  # a list where a number belongs
    st.booleans(),
    st.none(),
    st.text(max_size=4),
)
UNIT_VALUES = st.one_of(st.floats(0, 1), st.integers(0, 1), st.booleans())
ANY_MAPPINGS = st.dictionaries(KEYS, VALUES, max_size=7)
FEATURE_MAPPINGS = st.fixed_dictionaries({}, optional={f: VALUES for f in FEATURES})
VALID_MAPPINGS = st.fixed_dictionaries({f: UNIT_VALUES for f in FEATURES})
ROWS = st.one_of(
    ROW_ARRAYS,
    ANY_ARRAYS,
    ANY_MAPPINGS,
    FEATURE_MAPPINGS,
    VALID_MAPPINGS,
    st.lists(VALUES, max_size=7),
    st.lists(UNIT_VALUES, min_size=5, max_size=5).map(tuple),
)
BATCHES = st.one_of(
    BATCH_ARRAYS,
    ANY_ARRAYS,
    st.lists(st.one_of(VALID_MAPPINGS, FEATURE_MAPPINGS, ANY_MAPPINGS), max_size=6),
    st.lists(VALID_MAPPINGS, max_size=8),
    st.lists(st.lists(UNIT_VALUES, min_size=5, max_size=5), max_size=8),
    st.lists(st.lists(VALUES, max_size=6), max_size=4),
    st.lists(ROW_ARRAYS, max_size=6),
    ANY_MAPPINGS,
    st.none(),
    st.text(max_size=5),
)


def _report(name: str, counts: Counter[str]) -> None:
    print(f"\n{name}: {sum(counts.values())} examples: {dict(sorted(counts.items()))}")


def test_any_row_given_to_score_gives_a_valid_score_or_an_input_error(engine: Engine) -> None:
    counts: Counter[str] = Counter()

    @settings(max_examples=5 * settings.default.max_examples)
    @given(row=ROWS)
    def run(row: Any) -> None:
        check_single(engine, row, counts)

    try:
        run()
    finally:  # on a failure the counts include the examples tried while shrinking it
        _report("score()", counts)
    assert counts["served by garbage"] >= 10
    assert counts["served by formula"] >= 10
    assert counts["InputError"] >= 10


def test_any_batch_given_to_score_batch_gives_valid_scores_or_an_input_error(
    engine: Engine,
) -> None:
    counts: Counter[str] = Counter()

    @settings(max_examples=5 * settings.default.max_examples)
    @given(rows=BATCHES)
    def run(rows: Any) -> None:
        check_batch(engine, rows, counts)

    try:
        run()
    finally:  # on a failure the counts include the examples tried while shrinking it
        _report("score_batch()", counts)
    assert counts["served by both steps"] >= 10
    assert counts["InputError"] >= 10
    assert counts["empty batch"] >= 1


def _row(**changes: Any) -> dict[str, Any]:
    return {**dict.fromkeys(FEATURES, 0.5), **changes}


# Inputs found by hand that deserve a fixed place (each is an InputError or a valid score).
AWKWARD_ROWS = {
    "float64 beyond float32": np.array([1e300, 0.5, 0.5, 0.5, 0.5]),
    "long double beyond float32": np.full(5, np.finfo(np.longdouble).max, dtype=np.longdouble),
    "a mapping with a value beyond float32": _row(f2=-1e300),
    "a mapping with a one-item list value": _row(f0=[0.5]),
    "a sequence with a one-item list inside": [0.5, [0.5], 0.5, 0.5, 0.5],
    "a mapping with an int beyond any float": _row(f0=10**400),
    "a mapping of booleans": dict.fromkeys(FEATURES, True),
    "uint64 max": np.full(5, 2**64 - 1, dtype=np.uint64),
    "big-endian float64": np.full(5, 0.25, dtype=">f8"),
    "negative zero": np.array([-0.0] * 5),
    "float16 subnormal": np.full(5, np.finfo(np.float16).smallest_subnormal, dtype=np.float16),
    "a 0-d array": np.array(0.5),
    "a (1, 5) array": np.full((1, 5), 0.5),
    "an object array with None": np.array([0.5, None, 0.5, 0.5, 0.5], dtype=object),
    "a text array": np.array(["0.5"] * 5),
    "a complex array": np.full(5, 0.5 + 0j),
    "a datetime array": np.array(["2024-01-01"] * 5, dtype="datetime64[D]"),
    "a structured array": np.zeros(5, dtype=[("a", "f4")]),
    "a set": {0.5},
    "a string of five characters": "0.5.5",
    "bytes": b"\x00" * 5,
    "range(5)": range(5),
    "a mapping with a NaN key": {math.nan: 0.5, **_row()},
}
AWKWARD_BATCHES = {
    "float64 beyond float32": np.full((3, 5), 1e300),
    "mappings whose values are one-item lists": [{key: [0.5] for key in FEATURES}],
    "mappings whose values are two-item lists": [{key: [0.1, 0.2] for key in FEATURES}],
    "a ragged row with a list inside": [[0.5] * 5, [[0.5], 0.5, 0.5, 0.5, 0.5]],
    "rows of ints beyond any float": [[10**400] * 5],
    "a (2, 5, 1) array": np.zeros((2, 5, 1)),
    "a (0,) array": np.zeros(0),
    "a (0, 0) array": np.zeros((0, 0)),
    "an object 2-D array of None": np.array([[None] * 5], dtype=object),
    "a mapping row beside a sequence row": [_row(), [0.5] * 5],
    "a tuple of arrays": (np.full(5, 0.5), np.full(5, 0.25)),
    "a generator": (r for r in [[0.5] * 5]),
}


@pytest.mark.parametrize("name", list(AWKWARD_ROWS))
def test_awkward_rows_give_a_valid_score_or_an_input_error(engine: Engine, name: str) -> None:
    check_single(engine, AWKWARD_ROWS[name], Counter())


@pytest.mark.parametrize("name", list(AWKWARD_BATCHES))
def test_awkward_batches_give_valid_scores_or_an_input_error(engine: Engine, name: str) -> None:
    check_batch(engine, AWKWARD_BATCHES[name], Counter())


# -- (b) configurations -------------------------------------------------------------------

SCHEMA_KEYS = [
    "features", "output_range", "chain", "on_exhausted", "deadline_ms", "watch", "require",
    "plugins", "disable_plugins", "name", "min", "max", "default", "clip", "scorer",
    "options", "timeout_ms", "circuit_breaker", "self_test", "score", "failure_rate",
    "minimum_calls", "window", "open_seconds", "half_open_calls", "rows", "expected",
    "tolerance", "model", "sha256", "max_batch_rows", "providers", "groups", "terms", "bias",
    "clamp", "mean", "feature", "similarity", "constant", "weight", "pattern", "exclude",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 3),
    st.integers(),
    st.floats(),
    st.sampled_from(["f0", "f1", "all", "rules", "onnx", "model.onnx", "raise", "1e-3", ""]),
    st.text(max_size=8),
)
DOC_KEYS = st.one_of(st.sampled_from(SCHEMA_KEYS), st.text(max_size=6), st.integers(), st.none())
DOCS = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(DOC_KEYS, children, max_size=5)
    ),
    max_leaves=25,
)
VALID_CONFIG: dict[str, Any] = {
    "features": [
        {"name": "f0", "min": 0, "max": 1},
        {"name": "f1", "min": 0, "max": 1},
        {"name": "f2", "min": 0, "max": 1},
        {"name": "f3", "min": 0, "max": 1, "default": 0.5},
        {"name": "f4", "min": 0, "max": 1, "clip": True},
    ],
    "output_range": [0, 1],
    "chain": [
        {
            "name": "neural",
            "scorer": "onnx",
            "options": {"model": "model.onnx", "max_batch_rows": 64},
            "timeout_ms": 200,
            "circuit_breaker": {"minimum_calls": 5, "window": 10, "half_open_calls": 1},
            "self_test": {"rows": [[0.5] * 5], "expected": [0.5], "tolerance": 0.001},
        },
        {
            "name": "formula",
            "scorer": "rules",
            "options": {
                "groups": {"all": FEATURES, "tail": {"pattern": "f*", "exclude": ["f0"]}},
                "terms": [
                    {"mean": "all", "weight": 0.5},
                    {"similarity": ["f0", "f1"], "weight": 0.25},
                    {"feature": "f2", "weight": 0.125},
                    {"mean": "tail", "weight": 0.125},
                    {"constant": 0.0},
                ],
                "bias": 0.0,
                "clamp": [0, 1],
            },
        },
    ],
    "on_exhausted": {"score": 0.5},
    "deadline_ms": 1000,
    "require": ["formula"],
    "plugins": [],
    "disable_plugins": [],
}
SAFE_PLUGIN_NAMES = ["", ".", "..", "x.py", "sub/x.py", "/nonexistent-fuzz-dir/x.py", "a..b"]


def _sanitized(doc: Any) -> Any:
    """Keep fuzzed configs from importing real modules or reading special files.

    ``plugins:`` entries become names of modules that do not exist; a ``features:`` file
    name stays only when it is a plain name inside the test's folder.
    """
    if not isinstance(doc, dict):
        return doc
    doc = dict(doc)
    plugins = doc.get("plugins")
    if isinstance(plugins, list):
        doc["plugins"] = [
            (
                p
                if p in SAFE_PLUGIN_NAMES
                else f"scoring_fuzz_no_such_module_{zlib.crc32(p.encode('utf-8', 'replace'))}"
            )
            if isinstance(p, str)
            else p
            for p in plugins
        ]
    features = doc.get("features")
    plain = set(string.ascii_letters + string.digits + "_-.")
    if isinstance(features, str) and (not set(features) <= plain or ".." in features):
        doc["features"] = "no-such-features.yaml"
    return doc


def _nodes(doc: Any) -> Iterator[tuple[Any, Any]]:
    """Every (container, key-or-index) in a document, depth first."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield doc, key
            yield from _nodes(value)
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield doc, index
            yield from _nodes(value)


@st.composite
def mutated_configs(draw: st.DrawFn) -> Any:
    """The valid config with one to four keys dropped, renamed or given other values."""
    doc = copy.deepcopy(VALID_CONFIG)
    for _ in range(draw(st.integers(1, 4))):
        nodes = list(_nodes(doc))
        if not nodes:
            break
        container, key = draw(st.sampled_from(nodes))
        action = draw(st.sampled_from(["drop", "rename", "replace", "scalar", "wrap", "copy"]))
        if action == "drop":
            del container[key]
        elif action == "rename" and isinstance(container, dict):
            typo = key[:-1] if isinstance(key, str) and key else "x"
            new = draw(st.one_of(st.sampled_from(SCHEMA_KEYS), st.just(typo), DOC_KEYS))
            container[new] = container.pop(key)
        elif action == "replace":
            container[key] = draw(DOCS)
        elif action == "scalar":
            container[key] = draw(SCALARS)
        elif action == "wrap":
            container[key] = [container[key]]
        elif isinstance(container, list):
            container.append(copy.deepcopy(container[key]))
    return doc


CONFIG_DOCS = st.one_of(mutated_configs(), mutated_configs(), DOCS, st.just(VALID_CONFIG))


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("configs")
    write_linear_model(folder / "model.onnx", 5, feature_names=FEATURES)
    (folder / "features.yaml").write_text(yaml.safe_dump(VALID_CONFIG["features"]))
    return folder


def _outcome(build: Any, counts: Counter[str]) -> None:
    """Build an engine; it must work (diagnostics, one row) or the build must say why."""
    try:
        engine = build()
    except ConfigError:
        _count(counts, "ConfigError")
        return
    except PluginError:
        _count(counts, "PluginError")
        return
    assert isinstance(engine, Engine)
    with engine:
        diagnostics = engine.diagnostics()
        json.dumps(diagnostics)
        with contextlib.suppress(ScoringError):
            engine.score([0.5] * len(engine.feature_names))
    ready = all(s["status"] == "ready" for s in diagnostics["steps"])
    _count(counts, "Engine, every step ready" if ready else "Engine, a step unavailable")


def test_any_document_given_to_from_config_gives_an_engine_or_a_config_error(
    config_dir: Path,
) -> None:
    counts: Counter[str] = Counter()

    @settings(max_examples=2 * settings.default.max_examples)
    @given(doc=CONFIG_DOCS)
    def run(doc: Any) -> None:
        _outcome(lambda: Engine.from_config(_sanitized(doc), base_dir=config_dir), counts)

    try:
        run()
    finally:  # on a failure the counts include the examples tried while shrinking it
        _report("from_config()", counts)
    assert counts["ConfigError"] >= 20
    assert counts["Engine, every step ready"] >= 1
    assert counts["Engine, a step unavailable"] >= 1


YAML_TEXTS = st.one_of(
    CONFIG_DOCS.map(lambda doc: yaml.safe_dump(_sanitized(doc))),
    st.text(max_size=120),
    st.text(alphabet="{}[]:,-&*!|>'\"#% \n\tabf01.", max_size=80),
)


@st.composite
def edited_yaml(draw: st.DrawFn) -> str:
    """The valid config's YAML with a few characters deleted, replaced or inserted."""
    text = list(yaml.safe_dump(VALID_CONFIG))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(text) - 1))
        action = draw(st.sampled_from(["delete", "replace", "insert"]))
        character = draw(st.sampled_from(list("{}[]:,-&*!|>'\"#% \n\t0a")))
        if action == "delete":
            del text[position]
        elif action == "replace":
            text[position] = character
        else:
            text.insert(position, character)
    return "".join(text)


def test_any_yaml_text_given_to_from_yaml_gives_an_engine_or_a_config_error(
    config_dir: Path,
) -> None:
    counts: Counter[str] = Counter()
    path = config_dir / "scoring.yaml"

    @settings(max_examples=2 * settings.default.max_examples)
    @given(text=st.one_of(YAML_TEXTS, edited_yaml()))
    def run(text: str) -> None:
        path.write_text(text, encoding="utf-8")
        _outcome(lambda: Engine.from_yaml(path), counts)

    try:
        run()
    finally:  # on a failure the counts include the examples tried while shrinking it
        _report("from_yaml()", counts)
    assert counts["ConfigError"] >= 20
    assert counts["Engine, every step ready"] >= 1


BAD_VALUES_BY_NAME = {
    "an int beyond any float": 10**400,
    "a one-item list": [0.5],
    "a two-item list": [0.1, 0.2],
    "text": "0.5",
    "None": None,
    "NaN": math.nan,
    "a float beyond float32": 1e300,
    "a negative number": -0.5,
}


@pytest.mark.parametrize("how", ["score mapping", "score sequence", "batch mappings", "batch rows"])
@pytest.mark.parametrize("bad", list(BAD_VALUES_BY_NAME))
def test_a_bad_value_is_an_input_error_naming_its_feature_and_row(
    engine: Engine, bad: str, how: str
) -> None:
    value = BAD_VALUES_BY_NAME[bad]
    mapping = _row(f2=value)
    sequence = [mapping[name] for name in FEATURES]
    good = [0.5] * len(FEATURES)
    call = {
        "score mapping": lambda: engine.score(mapping),
        "score sequence": lambda: engine.score(sequence),
        "batch mappings": lambda: engine.score_batch([_row(), _row(), mapping]),
        "batch rows": lambda: engine.score_batch([good, good, sequence]),
    }[how]
    with pytest.raises(InputError) as info:
        call()
    assert info.value.feature == "f2"
    assert info.value.row == (0 if how.startswith("score") else 2)
    assert "f2" in str(info.value)


@pytest.mark.parametrize("rows_as", ["sequences", "mappings"])
@pytest.mark.parametrize("bad", list(BAD_VALUES_BY_NAME))
def test_one_bad_value_in_a_batch_rejects_only_its_row(
    engine: Engine, bad: str, rows_as: str
) -> None:
    rows: list[Any] = [_row(f0=0.25), _row(f2=BAD_VALUES_BY_NAME[bad]), _row(f4=0.75)]
    if rows_as == "sequences":
        rows = [[row[name] for name in FEATURES] for row in rows]
    prepared = engine.prepare_batch(rows)
    assert [(error.row, error.feature) for error in prepared.errors] == [(1, "f2")]
    assert list(prepared.rows) == [0, 2]
    counts: Counter[str] = Counter()
    check_batch(engine, [rows[0], rows[2]], counts)  # the good rows alone score normally
    assert counts["InputError"] == 0


def test_a_row_of_one_item_lists_is_refused_by_score_and_score_batch_alike(engine: Engine) -> None:
    row = {name: [0.5] for name in FEATURES}
    with pytest.raises(InputError):
        engine.score(row)
    with pytest.raises(InputError) as info:
        engine.score_batch([_row(), row])
    assert info.value.row == 1
