"""`scoring check` and `scoring plugins`, run through the real command line."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import MEAN_CLASS, PLUGIN_FILE, plugin_source, run_cli, run_process, write_project

from scoring_core import process

BROKEN_CLASS = """
class Broken:
    def __init__(self, ctx):
        raise FileNotFoundError("models/missing.onnx does not exist")
"""
LOCAL_PLUGIN = plugin_source(
    MEAN_CLASS, BROKEN_CLASS, register={"mean": "Mean", "broken": "Broken"}
)


def project(tmp_path: Path, chain: str) -> Path:
    return write_project(tmp_path, LOCAL_PLUGIN, ("a", "b"), chain)


def test_check_reports_ready_steps_and_exits_0(tmp_path: Path) -> None:
    config = project(tmp_path, "  - {name: formula, scorer: mean}\n")
    result = run_cli("check", str(config))
    assert result.exit_code == 0, result.output
    assert "formula" in result.output
    assert "ready" in result.output


def test_check_exits_1_and_gives_the_reason_when_a_step_is_unavailable(tmp_path: Path) -> None:
    config = project(
        tmp_path, "  - {name: model, scorer: broken}\n  - {name: formula, scorer: mean}\n"
    )
    result = run_cli("check", "--config", str(config))
    assert result.exit_code == 1
    assert "unavailable" in result.output
    assert "models/missing.onnx does not exist" in result.output


@pytest.mark.parametrize("verbose", [[], ["-v"]])
def test_score_says_once_why_a_step_is_unavailable_and_marks_rows_briefly(
    tmp_path: Path, verbose: list[str]
) -> None:
    config = project(
        tmp_path, "  - {name: model, scorer: broken}\n  - {name: formula, scorer: mean}\n"
    )
    (tmp_path / "in.csv").write_text("id,a,b\nx,0.2,0.4\ny,0.6,0.8\n")
    done = run_process(
        tmp_path, *verbose, "score", "in.csv", "-o", "out.csv", "--config", str(config)
    )
    # the output is written, but a run whose model never loaded is not a success (exit 1)
    assert done.returncode == 1, done.stderr
    assert "warning: step 'model' is unavailable (FileNotFoundError: models/missing" in done.stderr
    # the engine's own log line says it again only when asked for more logs (-v)
    # ... and the summary's first line says it once more, with what scored instead
    assert done.stderr.count("models/missing.onnx does not exist") == (3 if verbose else 2)
    with open(tmp_path / "out.csv", newline="") as scored:
        rows = list(csv.DictReader(scored))
    assert [(r["scorer"], r["fallback_reason"]) for r in rows] == [
        ("formula", "model: unavailable")
    ] * 2


def test_check_exits_0_and_says_optional_when_only_optional_steps_are_unavailable(
    tmp_path: Path,
) -> None:
    config = project(
        tmp_path,
        "  - {name: model, scorer: broken, optional: true}\n  - {name: formula, scorer: mean}\n",
    )
    result = run_cli("check", str(config))
    assert result.exit_code == 0, result.output
    assert "model    unavailable  scorer=broken (optional: the chain runs without it)" in (
        result.output
    )
    assert "models/missing.onnx does not exist" in result.output
    assert "1 optional step(s) unavailable: model" in result.output
    data = json.loads(run_cli("check", str(config), "--json").output)
    assert [(s["name"], s["optional"]) for s in data["steps"]] == [
        ("model", True),
        ("formula", False),
    ]


def test_check_exits_1_when_a_step_that_is_not_optional_is_unavailable_too(
    tmp_path: Path,
) -> None:
    config = project(
        tmp_path,
        "  - {name: model, scorer: broken, optional: true}\n"
        "  - {name: other, scorer: broken}\n"
        "  - {name: formula, scorer: mean}\n",
    )
    result = run_cli("check", str(config))
    assert result.exit_code == 1
    assert "1 step(s) unavailable: other" in result.output
    assert "1 optional step(s) unavailable: model" in result.output


def test_a_step_cannot_be_both_required_and_optional(tmp_path: Path) -> None:
    config = project(
        tmp_path,
        "  - {name: model, scorer: mean, optional: true}\n  - {name: formula, scorer: mean}\n",
    )
    config.write_text(config.read_text() + "require: [model]\n")
    result = run_cli("check", str(config))
    assert result.exit_code == 2
    assert "step 'model' is marked `optional: true` and listed in `require`" in result.output


def test_check_json_is_the_diagnostics(tmp_path: Path) -> None:
    config = project(tmp_path, "  - {name: formula, scorer: mean}\n")
    result = run_cli("check", str(config), "--json")
    data = json.loads(result.output)
    assert data["steps"][0]["status"] == "ready"


def test_check_with_a_bad_config_exits_2_without_a_traceback(tmp_path: Path) -> None:
    config = project(tmp_path, "  - {name: formula, scorer: maen}\n")
    result = run_cli("check", str(config))
    assert result.exit_code == 2
    assert "did you mean 'mean'" in result.output
    assert "Traceback" not in result.output


def test_debug_adds_the_traceback_and_keeps_the_exit_code(tmp_path: Path) -> None:
    config = project(tmp_path, "  - {name: formula, scorer: maen}\n")
    result = run_cli("--debug", "check", str(config))
    assert result.exit_code == 2  # a bad configuration, as without --debug
    assert "Traceback" in result.output
    assert "did you mean 'mean'" in result.output


def test_check_without_a_config_says_how_to_pass_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli("check")
    assert result.exit_code == 2
    assert "--config" in result.output


@pytest.mark.parametrize("how", [[], ["--config"]])
def test_check_with_a_config_file_that_does_not_exist_says_so(
    tmp_path: Path, how: list[str]
) -> None:
    result = run_cli("check", *how, str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert f"no configuration at '{tmp_path / 'nope.yaml'}': there is no such file" in result.output


def test_plugins_lists_first_party_plugins_with_distribution_and_scorers() -> None:
    result = run_cli("plugins", "--json")
    assert result.exit_code == 0, result.output
    plugins = {p["name"]: p for p in json.loads(result.output)["plugins"]}
    assert plugins["onnx"]["distribution"] == "scoring-core"
    assert plugins["onnx"]["scorers"] == ["onnx"]
    assert plugins["rules"]["scorers"] == ["rules"]
    assert "scoring_register_scorers" in plugins["rules"]["hooks"]


def test_plugins_shows_import_errors(tmp_path: Path) -> None:
    config = project(tmp_path, "  - {name: formula, scorer: mean}\n")
    text = config.read_text().replace(f"[{PLUGIN_FILE}]", f"[{PLUGIN_FILE}, nowhere.py]")
    config.write_text(text)
    result = run_cli("plugins", "--config", str(config))
    assert result.exit_code == 1  # a plugin failed to load
    assert "nowhere.py" in result.output
    assert "ERROR" in result.output
    assert "scorers: mean, broken" in result.output
    assert "1 plugin(s) failed to load: nowhere" in result.output
    assert run_cli("plugins", "--config", str(config), "--json").exit_code == 1


# -- the process the command runs in ------------------------------------------------------------

# Records, while it scores, the memory pool pyarrow runs on, whether the garbage collector
# runs, numpy's BLAS threads, and the variables a child process would get.
PROCESS_CLASS = """
class ProcessMean(Mean):
    def score(self, X):
        import gc, json, os, pathlib

        import pyarrow
        import threadpoolctl

        blas = threadpoolctl.threadpool_info()
        seen = {
            "pool": pyarrow.default_memory_pool().backend_name,
            "gc": gc.isenabled(),
            "variable": os.environ.get("ARROW_DEFAULT_MEMORY_POOL"),
            "blas_threads": [pool["num_threads"] for pool in blas if pool["user_api"] == "blas"],
            "blas_variable": os.environ.get("OPENBLAS_NUM_THREADS"),
        }
        pathlib.Path(__file__).with_name("process.json").write_text(json.dumps(seen))
        return super().score(X)
"""
_CHOICES = ("ARROW_DEFAULT_MEMORY_POOL", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS")


def seen_while_scoring(tmp_path: Path, **chosen: str) -> dict[str, Any]:
    """Run ``scoring score`` with the ``chosen`` environment variables; what it saw."""
    plugin = plugin_source(MEAN_CLASS, PROCESS_CLASS, register={"mean": "ProcessMean"})
    config = write_project(tmp_path, plugin, ["a", "b"], "  - {name: only, scorer: mean}\n")
    (tmp_path / "in.csv").write_text("id,a,b\nx,0.2,0.4\n")
    env = {k: v for k, v in os.environ.items() if k not in (*_CHOICES, "OMP_NUM_THREADS")}
    args = ("score", "in.csv", "-o", "out.csv", "--config", str(config))
    done = run_process(tmp_path, *args, env={**env, **chosen})
    assert done.returncode == 0, done.stderr
    assert "Unsupported backend" not in done.stderr
    seen: dict[str, Any] = json.loads((tmp_path / "process.json").read_text())
    return seen


@pytest.mark.parametrize("chosen", [None, "system"])
def test_the_command_runs_arrow_on_jemalloc_unless_the_user_chose_a_pool(
    tmp_path: Path, chosen: str | None
) -> None:
    import pyarrow as pa

    seen = seen_while_scoring(tmp_path, **({"ARROW_DEFAULT_MEMORY_POOL": chosen} if chosen else {}))
    if chosen:
        assert seen["pool"] == chosen
        assert seen["variable"] == chosen  # the user's choice is left as it is
    elif process.pyarrow_has_jemalloc():
        assert seen["pool"] == "jemalloc"
        assert seen["variable"] is None  # not handed down to child processes
    else:  # a build without jemalloc keeps its own default
        assert seen["pool"] == pa.default_memory_pool().backend_name
    assert seen["gc"] is True  # paused while starting, running while scoring


def _threaded_openblas_on_two_cpus() -> bool:
    import numpy  # noqa: F401 - loads the BLAS threadpoolctl inspects
    import threadpoolctl

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    blas = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
    return (cpus or 1) >= 2 and any(p["internal_api"] == "openblas" for p in blas)


@pytest.mark.skipif(
    not _threaded_openblas_on_two_cpus(),
    reason="numpy's BLAS here is not OpenBLAS (MKL, Accelerate), or one CPU: 1 thread anyway",
)
@pytest.mark.parametrize(
    ("chosen", "threads"),
    [
        ({}, 1),
        ({"OPENBLAS_NUM_THREADS": "2"}, 2),
        ({"GOTO_NUM_THREADS": "2"}, 2),
        ({"OMP_NUM_THREADS": "2"}, 2),
        ({"OPENBLAS_NUM_THREADS": ""}, 1),  # empty is no choice (OpenBLAS skips it too)
    ],
    ids=str,
)
def test_the_command_gives_numpy_one_blas_thread_unless_the_user_chose(
    tmp_path: Path, chosen: dict[str, str], threads: int
) -> None:
    seen = seen_while_scoring(tmp_path, **chosen)
    assert seen["blas_threads"] == [threads]
    # given back as the user had it, not handed down to child processes
    assert seen["blas_variable"] == chosen.get("OPENBLAS_NUM_THREADS")


# Runs the command as its only child and prints that child's peak resident memory in MB.
# Holds sys.argv[1] MB first: a child's ru_maxrss starts from its parent's peak on Linux.
_CHILD_PEAK = """
import resource, subprocess, sys
held = bytearray(int(sys.argv[1]) << 20)
held[:: 4096] = b"x" * len(held[:: 4096])
subprocess.run(sys.argv[2:], check=True)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(peak / (2**20 if sys.platform == "darwin" else 2**10))
"""


def test_the_summary_reports_the_peak_memory_of_the_command_alone(tmp_path: Path) -> None:
    config = write_project(
        tmp_path,
        plugin_source(MEAN_CLASS, register={"mean": "Mean"}),
        ["a", "b"],
        "  - {name: only, scorer: mean}\n",
    )
    (tmp_path / "in.csv").write_text("id,a,b\nx,0.2,0.4\ny,0.6,0.8\n")
    command = [sys.executable, "-m", "scoring_core", "score", "in.csv", "-o", "out.csv"]

    def run(held_mb: int) -> tuple[float, float]:
        """(the summary's figure, the child's peak as the system measured it) in MB"""
        done = subprocess.run(
            [sys.executable, "-c", _CHILD_PEAK, str(held_mb), *command, "--config", str(config)],
            cwd=tmp_path,
            env={**os.environ, "SCORING_LOAD_PLUGINS": ""},
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        line = r"^memory +([\d,]+) MB  peak resident, the whole process"
        reported = re.search(line, done.stderr, re.MULTILINE)
        assert reported, done.stderr
        return float(reported.group(1).replace(",", "")), float(done.stdout.split()[-1])

    reported, measured = run(0)
    assert measured > 20  # an interpreter with numpy and pyarrow loaded
    # The summary is printed before the interpreter exits, which can take a few MB more.
    assert measured - 8 <= reported <= measured + 1
    # Started by a process holding 600 MB, the command still reports its own memory.
    reported_big, _ = run(600)
    assert reported_big <= reported + 10
