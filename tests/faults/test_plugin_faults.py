"""A local plugin named in the YAML's ``plugins:`` that fails to import, or to register.

The engine starts without it, ``diagnostics()["plugins"]`` shows the error, and the
chain's other steps serve every row.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fault_kit import assert_rows_served, step_of

from scoring_core import ConfigError, Engine, PluginError

N = 20
X = np.random.default_rng(41).random((N, 3)).astype(np.float32)
MEANS = X.astype(np.float64).mean(axis=1)

WORKING_PLUGIN = """
import numpy as np
import scoring_core

class Fancy:
    def __init__(self, ctx):
        pass

    def score(self, X):
        return np.full(X.shape[0], 0.875)

@scoring_core.hookimpl
def scoring_register_scorers(register):
    register("fancy", Fancy)
"""

BROKEN_PLUGINS = {
    "raises at import": (
        "raise RuntimeError('cannot reach the licence server')",
        "RuntimeError: cannot reach the licence server",
    ),
    "imports a missing dependency": (
        "import scoring_fuzz_no_such_dependency",
        "ModuleNotFoundError: No module named 'scoring_fuzz_no_such_dependency'",
    ),
    "has a syntax error": ("def broken(:\n    pass", "SyntaxError"),
    "divides by zero at import": ("RATE = 1 / 0", "ZeroDivisionError: division by zero"),
    "exits at import": ("import sys\nsys.exit(3)", "SystemExit: 3"),
    "registers with a hook that raises": (
        "import scoring_core\n\n@scoring_core.hookimpl\ndef scoring_register_scorers(register):\n"
        "    raise KeyError('models')\n",
        "scoring_register_scorers raised KeyError: 'models'",
    ),
}

FORMULA_STEP = {
    "name": "formula",
    "scorer": "rules",
    "options": {"terms": [{"mean": "all"}], "groups": {"all": ["a", "b", "c"]}},
}


def _write(tmp_path: Path, plugins: dict[str, str], chain: list[dict[str, Any]]) -> Path:
    for name, source in plugins.items():
        (tmp_path / name).write_text(textwrap.dedent(source))
    config = {
        "features": [{"name": n, "min": 0, "max": 1} for n in "abc"],
        "output_range": [0, 1],
        "plugins": list(plugins),
        "chain": chain,
    }
    path = tmp_path / "scoring.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


@pytest.mark.parametrize("fault", list(BROKEN_PLUGINS))
def test_a_local_plugin_that_fails_to_load_leaves_the_engine_running(
    tmp_path: Path, fault: str
) -> None:
    source, error = BROKEN_PLUGINS[fault]
    path = _write(tmp_path, {"broken.py": source}, [FORMULA_STEP])
    with Engine.from_yaml(path) as engine:
        single = engine.score(X[0])
        batch = engine.score_batch(X)
        diagnostics = engine.diagnostics()
    plugins = {p["name"]: p for p in diagnostics["plugins"]}

    # what the caller sees: the engine works on the steps it has
    assert (single.scorer, single.fallbacks) == ("formula", ())
    assert single.score == pytest.approx(MEANS[0], abs=1e-6)

    # what diagnostics say
    broken = plugins["broken.py"]
    assert broken["source"] == "config"
    assert error in broken["error"]
    assert broken["scorers"] == []
    assert {p["name"] for p in diagnostics["plugins"] if p["error"]} == {"broken.py"}
    assert [s["status"] for s in diagnostics["steps"]] == ["ready"]
    json.dumps(diagnostics)

    # no row lost
    assert_rows_served(batch, N, ["formula"] * N, MEANS)


def test_a_working_plugin_beside_a_broken_one_still_serves_first(tmp_path: Path) -> None:
    plugins = {"broken.py": BROKEN_PLUGINS["raises at import"][0], "fancy.py": WORKING_PLUGIN}
    path = _write(tmp_path, plugins, [{"name": "model", "scorer": "fancy"}, FORMULA_STEP])
    with Engine.from_yaml(path) as engine:
        batch = engine.score_batch(X)
        model = step_of(engine, "model")
        plugins_seen = {p["name"]: p for p in engine.diagnostics()["plugins"]}
    assert plugins_seen["fancy.py"]["scorers"] == ["fancy"]
    assert plugins_seen["fancy.py"]["error"] is None
    assert "cannot reach the licence server" in plugins_seen["broken.py"]["error"]
    assert model["status"] == "ready"
    assert model["plugin"] == "fancy.py"
    assert_rows_served(batch, N, ["model"] * N, np.full(N, 0.875))


def test_a_step_whose_plugin_failed_to_import_says_so(tmp_path: Path) -> None:
    broken = WORKING_PLUGIN.replace("import numpy as np", "import numpy as np\n1 / 0")
    path = _write(tmp_path, {"fancy.py": broken}, [{"name": "model", "scorer": "fancy"}])
    outcome: Engine | ConfigError
    try:
        outcome = Engine.from_yaml(path)
    except ConfigError as exc:  # refusing to start is fine, if the message says why...
        outcome = exc
    if isinstance(outcome, ConfigError):
        message = str(outcome)
        assert "unknown scorer 'fancy'" in message
    else:  # ...and so is starting with the step unavailable, saying why
        with outcome:
            model = step_of(outcome, "model")
        assert model["status"] == "unavailable"
        message = model["reason"]
    assert "fancy.py" in message
    assert "ZeroDivisionError: division by zero" in message


def test_strict_plugins_turns_a_broken_local_plugin_into_a_plugin_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCORING_STRICT_PLUGINS", "1")
    path = _write(tmp_path, {"broken.py": BROKEN_PLUGINS["raises at import"][0]}, [FORMULA_STEP])
    with pytest.raises(PluginError, match=r"'broken.py' failed to load.*licence server"):
        Engine.from_yaml(path)
