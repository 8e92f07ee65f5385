"""Projects and data for the Dask and Spark tests: the shipped chain, a chain whose scorer
kills its own worker process once, one that cannot load on one worker, Parquet inputs.

The fault scorers live in a local plugin file named by the config's ``plugins:``, so the
workers only have them because the file travelled with the job.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "calling_sample.csv"

FAULT_PLUGIN = '''
import os
import signal

import scoring_core


def _claim(path):
    """True for the one process that creates ``path`` first."""
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(descriptor, str(os.getpid()).encode())
    os.close(descriptor)
    return True


class Mean:
    def __init__(self, ctx):
        pass

    def score(self, X):
        return X.mean(axis=1)


class KillOnce:
    """The row mean; at its second call, the first process to claim the marker kills itself."""

    def __init__(self, ctx):
        self.marker = ctx.options["marker"]
        self.calls = 0

    def score(self, X):
        self.calls += 1
        if self.calls == 2 and _claim(self.marker):
            os.kill(os.getpid(), signal.SIGKILL)
        return X.mean(axis=1)


class BrokenOnOneWorker:
    """Cannot load in the first process other than the driver to claim the marker."""

    def __init__(self, ctx):
        if os.getpid() != ctx.options["driver_pid"] and _claim(ctx.options["claim"]):
            raise OSError(f"cannot read the model file on this worker (pid {os.getpid()})")

    def score(self, X):
        return X.mean(axis=1) * 0.5


@scoring_core.hookimpl
def scoring_register_scorers(register):
    register("mean", Mean)
    register("kill_once", KillOnce)
    register("broken_on_one_worker", BrokenOnOneWorker)
'''

FEATURES = ("a", "b", "c")


def fault_project(folder: Path, first_step: dict[str, Any]) -> Path:
    """A config in ``folder``: three features, ``first_step``, then ``mean``."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fault_plugin.py").write_text(FAULT_PLUGIN)
    config = {
        "features": [{"name": n, "min": 0, "max": 1} for n in FEATURES],
        "output_range": [0, 1],
        "chain": [first_step, {"name": "fallback", "scorer": "mean"}],
        "plugins": ["fault_plugin.py"],
    }
    path = folder / "chain.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def fault_rows(rows: int, seed: int = 7) -> pa.Table:
    generator = np.random.default_rng(seed)
    columns: dict[str, Any] = {"id": [f"row-{i:05d}" for i in range(rows)]}
    for name in FEATURES:
        columns[name] = generator.random(rows)
    return pa.table(columns)


def shipped_project(folder: Path) -> Path:
    """A copy of the shipped chain (scoring.yaml, its features and model) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "scoring.yaml", folder / "scoring.yaml")
    shutil.copytree(ROOT / "models", folder / "models", ignore=shutil.ignore_patterns("*.py"))
    return folder / "scoring.yaml"


def sample_with_bad_rows() -> tuple[pa.Table, dict[int, str]]:
    """The sample rows (3,000), some made bad: position -> the feature at fault."""
    table = pa_csv.read_csv(SAMPLE)
    bad = {3: "user_overall_energy", 1200: "spot_crowd_tolerance", 2999: "timing_alignment"}
    for position, feature in bad.items():
        index = table.schema.get_field_index(feature)
        values = table.column(index).to_numpy().astype(np.float64)
        values[position] = 7.0 if position != 1200 else np.nan
        table = table.set_column(index, feature, pa.array(values, pa.float64()))
    return table, bad


def write_parts(table: pa.Table, folder: Path, parts: int) -> list[str]:
    """``table`` as ``parts`` Parquet files in ``folder``, in order."""
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-table.num_rows // parts)
    names = []
    for index in range(parts):
        name = str(folder / f"part-{index:02d}.parquet")
        pq.write_table(table.slice(index * size, size), name)
        names.append(name)
    return names


def no_temporary_files(*folders: Path) -> list[str]:
    """Names in ``folders`` (and beside them) that a killed writer could have left."""
    left = []
    for folder in folders:
        for parent in {folder, folder.parent}:
            left += [e for e in os.listdir(parent) if e.endswith(".tmp") or ".scoring-" in e]
    return left
