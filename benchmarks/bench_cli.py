"""Benchmark `scoring score` end to end: rows/s and peak memory, Parquet and CSV.

Generates files of N rows (default 100k and 2M) with the chain's features, runs the real
command line in a fresh process for each measurement, and prints a table with:

* wall: seconds for the whole process (interpreter start, imports, engine load, work);
* rows/s (wall): rows / wall, the end-to-end figure;
* rows/s (run): the rate the command's summary reports: reading, scoring and writing,
  from the chain loaded and the input open to the files closed;
* CPU s: user + system seconds of the process, all threads (steadier than wall time on a
  shared machine);
* peak RSS: the process's maximum resident set size, in MB.

Memory should not grow with the file: compare the peak RSS of the smallest and largest
files. The working set (a few chunks in flight, allocator pools, ONNX Runtime's arena)
fills during the first few hundred thousand rows, then stays flat: a 100k-row file peaks
about 15 MB lower than the rest; ``--rows 100000 300000 1000000 2000000 4000000``
shows the plateau.

Parquet input files are written in row groups of ``--row-group-rows`` rows (65,536 by
default; 0 for pyarrow's own default, 1,048,576 rows, which pandas' ``to_parquet`` uses
too). The reader holds each float column's dictionary and page buffers for the row group
it is in, so peak memory also depends on how the file was written: about 1.7 MB more
per feature column for row groups past about 260k rows (see docs/cli.md).

Chains: the project's ``scoring.yaml`` (ONNX model, then the formula) when it exists, and
a local plugin averaging the features (no model cost), so both figures are reported.
The machine may be shared: each figure is the best of ``--repeat`` runs.

    python benchmarks/bench_cli.py                    # 100k and 2M rows, both formats
    python benchmarks/bench_cli.py --rows 100000 --repeat 1
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PROJECT_CONFIG = ROOT / "scoring.yaml"
MEAN_PLUGIN = """
import scoring_core


class Mean:
    def __init__(self, ctx):
        pass

    def score(self, X):
        return X.mean(axis=1)


@scoring_core.hookimpl
def scoring_register_scorers(register):
    register("mean", Mean)
"""


def feature_names() -> list[str]:
    """The 39 calling-score features, from the project config when it exists."""
    if PROJECT_CONFIG.exists():
        os.environ.setdefault("SCORING_LOAD_PLUGINS", "onnx,rules")
        from scoring_core import Engine

        with Engine.from_yaml(PROJECT_CONFIG) as engine:
            return list(engine.feature_names)
    return [f"feature_{i:02d}" for i in range(39)]


def mean_config(folder: Path, names: list[str]) -> Path:
    (folder / "bench_mean_plugin.py").write_text(MEAN_PLUGIN)
    config = folder / "mean.yaml"
    features = "".join(f"  - {{name: {name}, min: 0, max: 1}}\n" for name in names)
    config.write_text(
        f"features:\n{features}output_range: [0, 1]\nplugins: [bench_mean_plugin.py]\n"
        "chain:\n  - {name: mean, scorer: mean}\n"
    )
    return config


def make_inputs(
    folder: Path, rows: int, names: list[str], row_group_rows: int = 65_536, dictionary: bool = True
) -> dict[str, Path]:
    """Rows drawn like the model's training data: user dims ~ Beta(2,2), spot = clipped
    user + noise, the rest ~ Beta(2,2); plus an id column carried through.

    ``row_group_rows`` is the Parquet file's row-group size (0 leaves it to pyarrow), and
    ``dictionary`` whether its columns are dictionary-encoded (pyarrow's default)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    layout = "" if row_group_rows == 65_536 else f"_rg{row_group_rows or 'default'}"
    layout += "" if dictionary else "_plain"
    paths = {"parquet": folder / f"in_{rows}{layout}.parquet", "csv": folder / f"in_{rows}.csv"}
    if all(p.exists() for p in paths.values()):
        return paths
    rng = np.random.default_rng(rows)
    X = rng.beta(2.0, 2.0, size=(rows, len(names))).astype(np.float32)
    X[:, 12:24] = np.clip(X[:, 0:12] + rng.normal(0.0, 0.2, size=(rows, 12)), 0.0, 1.0)
    ids = pa.array(np.char.add("row-", np.arange(rows).astype("U9")))
    table = pa.table({"id": ids, **{name: X[:, j] for j, name in enumerate(names)}})
    pq.write_table(
        table, paths["parquet"], row_group_size=row_group_rows or None, use_dictionary=dictionary
    )
    pcsv.write_csv(table, paths["csv"])
    return paths


# A small process between us and the command: a child's peak RSS counts the memory of the
# process it was forked from, and this one holds generated data.
_MEASURE = """
import resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
wall = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = usage.ru_utime + usage.ru_stime
print(f"MEASURED {code} {wall} {usage.ru_maxrss} {cpu}", file=sys.stderr)
"""


def run_once(args: list[str], env: dict[str, str]) -> tuple[float, float, float | None, float]:
    """Wall seconds, peak RSS in MB, the rate from the command's summary, CPU seconds."""
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *args], env=env, stderr=subprocess.PIPE, check=False
    )
    stderr = done.stderr.decode()
    measured = re.search(r"MEASURED (-?\d+) (\S+) (\d+) (\S+)", stderr)
    if measured is None or measured.group(1) != "0":
        raise SystemExit(f"{' '.join(args)} failed:\n{stderr}")
    match = re.search(r"([\d,]+) rows/s", stderr)
    rate = float(match.group(1).replace(",", "")) if match else None
    return float(measured.group(2)), int(measured.group(3)) / 1024, rate, float(measured.group(4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 2_000_000])
    parser.add_argument("--formats", nargs="+", default=["parquet", "csv"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk-rows", type=int, default=None)
    parser.add_argument(
        "--row-group-rows",
        type=int,
        default=65_536,
        help="row-group size of the Parquet inputs (0: pyarrow's default)",
    )
    parser.add_argument(
        "--no-dictionary",
        action="store_true",
        help="write the Parquet inputs without dictionary encoding",
    )
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bench_cli")
    options = parser.parse_args()
    options.workdir.mkdir(parents=True, exist_ok=True)

    names = feature_names()
    chains = {"mean plugin": (mean_config(options.workdir, names), "")}
    if PROJECT_CONFIG.exists():
        chains = {"scoring.yaml": (PROJECT_CONFIG, "onnx,rules"), **chains}
    layout = f"{options.row_group_rows:,}-row" if options.row_group_rows else "pyarrow's default"
    layout += " row groups" + (", no dictionaries" if options.no_dictionary else "")
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; best of "
        f"{options.repeat}; Parquet inputs: {layout}"
    )
    header = f"{'chain':<13} {'format':<8} {'rows':>10} {'wall s':>7} {'rows/s (wall)':>14}"
    header += f" {'rows/s (run)':>13} {'CPU s':>6} {'peak RSS MB':>12}"
    print(header)
    print("-" * len(header))
    for chain, (config, plugins) in chains.items():
        env = {**os.environ, "SCORING_LOAD_PLUGINS": plugins}
        for fmt in options.formats:
            peaks = []
            for rows in options.rows:
                files = make_inputs(
                    options.workdir, rows, names, options.row_group_rows, not options.no_dictionary
                )
                source = files[fmt]
                out = options.workdir / f"out_{rows}.{fmt}"
                args = [sys.executable, "-m", "scoring_core", "score", str(source), "-o", str(out)]
                args += ["--config", str(config)]
                if options.chunk_rows:
                    args += ["--chunk-rows", str(options.chunk_rows)]
                runs = [run_once(args, env) for _ in range(options.repeat)]
                wall = min(r[0] for r in runs)
                peak = min(r[1] for r in runs)
                cpu = min(r[3] for r in runs)
                rate = max((r[2] for r in runs if r[2] is not None), default=float("nan"))
                peaks.append(peak)
                print(
                    f"{chain:<13} {fmt:<8} {rows:>10,} {wall:>7.2f} {rows / wall:>14,.0f} "
                    f"{rate:>13,.0f} {cpu:>6.2f} {peak:>12.1f}"
                )
            if len(peaks) > 1:
                print(
                    f"{'':<13} {fmt:<8} peak RSS, largest - smallest file: "
                    f"{peaks[-1] - peaks[0]:+.1f} MB"
                )


if __name__ == "__main__":
    main()
