"""A small local scorer plugin, its config and the command line, for the CLI's tests.

A test module builds its plugin with :func:`plugin_source` from the shared scorer classes
here (``Mean``, ``Flaky``) and the classes only its own tests need, then writes it next to a
config with :func:`write_project` and runs ``scoring`` through click with :func:`run_cli`,
or as a process of its own with :func:`run_process` (for what only a real process shows:
signals, pipes, logging, its environment).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from click.testing import CliRunner, Result

from scoring_core.cli import cli

__all__ = [
    "FLAKY_CLASS",
    "MEAN_CLASS",
    "PLUGIN_FILE",
    "plugin_source",
    "run_cli",
    "run_process",
    "write_project",
]

PLUGIN_FILE = "myplugin.py"

# The mean of each row: in [0, 1] whenever the features are.
MEAN_CLASS = """
class Mean:
    def __init__(self, ctx):
        pass

    def score(self, X):
        return X.mean(axis=1)
"""

# The row mean, but NaN for rows whose first feature is above 0.9.
FLAKY_CLASS = """
class Flaky:
    def __init__(self, ctx):
        pass

    def score(self, X):
        out = X.mean(axis=1).astype(np.float64)
        out[X[:, 0] > 0.9] = np.nan
        return out
"""


def plugin_source(*classes: str, register: Mapping[str, str]) -> str:
    """A plugin module defining ``classes`` and registering them, scorer name -> class name.

    The scorers are registered in the order given; the module imports ``numpy as np``.
    """
    calls = "\n".join(f'    register("{name}", {cls})' for name, cls in register.items())
    hook = f"@scoring_core.hookimpl\ndef scoring_register_scorers(register):\n{calls}"
    parts = ["import numpy as np\nimport scoring_core", *(c.strip("\n") for c in classes), hook]
    return "\n\n\n".join(parts) + "\n"


def write_project(
    folder: Path,
    plugin: str,
    features: Sequence[str],
    chain: str,
    *,
    defaults: Mapping[str, float] | None = None,
    output_range: tuple[float, float] | None = None,
    extra: str = "",
) -> Path:
    """Write ``plugin`` as ``folder/myplugin.py`` and a ``scoring.yaml`` that loads it.

    Every feature is in [0, 1], with a default where ``defaults`` names one; ``chain`` and
    ``extra`` are YAML lines, written as they are. Returns the config's path.
    """
    (folder / PLUGIN_FILE).write_text(plugin)
    defaults = defaults or {}
    lines = "".join(
        f"  - {{name: {name}, min: 0, max: 1"
        + (f", default: {defaults[name]}" if name in defaults else "")
        + "}\n"
        for name in features
    )
    limits = (
        "" if output_range is None else f"output_range: [{output_range[0]}, {output_range[1]}]\n"
    )
    config = folder / "scoring.yaml"
    config.write_text(f"features:\n{lines}{limits}plugins: [{PLUGIN_FILE}]\nchain:\n{chain}{extra}")
    return config


def run_cli(*args: str, stdin: bytes | None = None) -> Result:
    """``scoring *args`` through click's CliRunner, with ``stdin`` as its input."""
    return CliRunner().invoke(cli, list(args), input=stdin)


def run_process(
    cwd: Path, *args: str, stdin: IO[Any] | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m scoring_core *args`` in ``cwd``, no installed plugins, output captured.

    ``env`` replaces the environment (``SCORING_LOAD_PLUGINS`` is still set to nothing).
    """
    environment = {**(os.environ if env is None else env), "SCORING_LOAD_PLUGINS": ""}
    return subprocess.run(
        [sys.executable, "-m", "scoring_core", *args],
        cwd=cwd,
        env=environment,
        stdin=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
