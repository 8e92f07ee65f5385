"""What a user of the `scoring` command sees (issue 14): close errors after the normal
report, progress without a terminal, one config at a time, what really happens when a
step is unavailable, the fallbacks count, compare's rejects and one-step chains, the cut
in float32, options after the command, help that is not cut short."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from cli_helpers import MEAN_CLASS, plugin_source, run_cli, run_process, write_project

from scoring_core.batch.tables import open_input
from scoring_core.cli.report import ProgressBar

BROKEN_CLASS = """
class Broken:
    def __init__(self, ctx):
        raise FileNotFoundError("models/missing.onnx does not exist")
"""
BAD_CLOSE_CLASS = """
class BadClose:
    def __init__(self, ctx):
        pass

    def score(self, X):
        return X.mean(axis=1)

    def close(self):
        raise RuntimeError("the disk went away")
"""
# NaN, so the row falls back, when the first feature is above 0.5.
HALF_CLASS = """
class Half:
    def __init__(self, ctx):
        pass

    def score(self, X):
        out = X.mean(axis=1).astype(np.float64)
        out[X[:, 0] > 0.5] = np.nan
        return out
"""
CLOSED_HOOK = """

@scoring_core.hookimpl
def scoring_engine_closed(engine):
    raise ValueError("could not flush the audit log")
"""
PLUGIN = plugin_source(
    MEAN_CLASS,
    BROKEN_CLASS,
    BAD_CLOSE_CLASS,
    HALF_CLASS,
    register={"mean": "Mean", "broken": "Broken", "bad_close": "BadClose", "half": "Half"},
)
FEATURES = ("a", "b")
EXIT_CLOSE_FAILED = 4  # scoring_core.cli.exit_codes, as documented in docs/cli.md


@pytest.fixture(autouse=True)
def _no_installed_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORING_LOAD_PLUGINS", "")


def project(folder: Path, chain: str, *, plugin: str = PLUGIN, extra: str = "") -> Path:
    return write_project(folder, plugin, FEATURES, chain, extra=extra)


def rows(folder: Path, text: str = "id,a,b\n1,0.2,0.4\n2,0.6,0.8\n3,0.9,0.1\n") -> Path:
    path = folder / "in.csv"
    path.write_text(text)
    return path


# -- 1: a close() or a scoring_engine_closed hook that raises -----------------------------------


def test_check_prints_its_table_then_names_the_step_that_failed_to_close(tmp_path: Path) -> None:
    project(tmp_path, "  - {name: avg, scorer: bad_close}\n")
    done = run_process(tmp_path, "check")
    assert done.returncode == EXIT_CLOSE_FAILED, done.stderr
    assert "avg  ready" in done.stdout  # the normal report
    lines = done.stderr.splitlines()
    assert "warning: step 'avg' failed to close: RuntimeError: the disk went away" in lines
    assert "Traceback" not in done.stderr
    assert "unexpected error" not in done.stderr
    assert sum("the disk went away" in line for line in lines) == 1  # said once, no log echo


def test_score_prints_its_summary_then_names_the_plugin_hook_that_failed(tmp_path: Path) -> None:
    project(tmp_path, "  - {name: avg, scorer: mean}\n", plugin=PLUGIN + CLOSED_HOOK)
    rows(tmp_path)
    done = run_process(tmp_path, "score", "in.csv", "-o", "out.csv")
    assert done.returncode == EXIT_CLOSE_FAILED, done.stderr
    assert "3 scored + 0 rejected" in done.stderr
    assert (
        "warning: plugin 'myplugin.py' (its scoring_engine_closed hook) failed to close: "
        "ValueError: could not flush the audit log"
    ) in done.stderr.splitlines()
    assert len((tmp_path / "out.csv").read_text().splitlines()) == 4  # the output is whole


def test_a_close_error_keeps_the_commands_own_failure_code(tmp_path: Path) -> None:
    project(tmp_path, "  - {name: model, scorer: broken}\n  - {name: avg, scorer: bad_close}\n")
    done = run_process(tmp_path, "check")
    assert done.returncode == 1  # a step is unavailable: that is what check reports
    assert "warning: step 'avg' failed to close" in done.stderr


def test_compare_reports_a_close_error_after_its_report(tmp_path: Path) -> None:
    project(tmp_path, "  - {name: avg, scorer: bad_close}\n  - {name: mean, scorer: mean}\n")
    rows(tmp_path)
    done = run_process(tmp_path, "compare", "in.csv", "--json")
    assert done.returncode == EXIT_CLOSE_FAILED, done.stderr
    assert json.loads(done.stdout)["rows"]["compared"] == 3
    assert "warning: step 'avg' failed to close" in done.stderr


# -- 3: --progress without a terminal -----------------------------------------------------------


def test_progress_given_explicitly_prints_plain_lines_when_stderr_is_not_a_terminal(
    tmp_path: Path,
) -> None:
    project(tmp_path, "  - {name: avg, scorer: mean}\n")
    rows(tmp_path)
    done = run_process(tmp_path, "score", "in.csv", "-o", "out.csv", "--progress")
    assert done.returncode == 0, done.stderr
    assert re.search(r"^progress: in\.csv: 3 rows, done in [\d.]+ s", done.stderr, re.M)
    assert "\x1b[" not in done.stderr  # plain text, no terminal codes
    quiet = run_process(tmp_path, "score", "in.csv", "-o", "out.csv")
    assert "progress:" not in quiet.stderr  # the default without a terminal: none


def test_plain_progress_prints_a_line_each_period_and_one_at_the_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = [0.0]
    with open_input(str(rows(tmp_path)), "csv") as reader:
        bar = ProgressBar(True, reader, "in.csv", terminal=False, every_s=5, clock=lambda: now[0])
        for rows_done, at in [(1, 1.0), (2, 5.5), (3, 7.0), (3, 11.0)]:
            now[0] = at
            bar.update(rows_done)
        bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "progress: in.csv: 2 rows",  # at 5.5 s
        "progress: in.csv: 3 rows",  # at 11 s
        "progress: in.csv: 3 rows",  # the end
    ]
    assert "% read, about" in lines[0]  # a regular file: how far, and how long to go
    assert "done in 11.0 s" in lines[2]


# -- 4: two configurations ----------------------------------------------------------------------


def test_a_positional_config_and_config_option_together_are_a_usage_error(tmp_path: Path) -> None:
    first = project(tmp_path, "  - {name: avg, scorer: mean}\n")
    second = tmp_path / "other.yaml"
    second.write_text(first.read_text())
    result = run_cli("check", str(first), "--config", str(second))
    assert result.exit_code == 2
    assert "two configurations given" in result.output
    assert "pass one of them" in result.output


# -- 5: what happens when the unavailable step is last or alone --------------------------------


def test_check_says_no_step_can_score_when_the_only_step_is_unavailable(tmp_path: Path) -> None:
    project(tmp_path, "  - {name: model, scorer: broken}\n")
    done = run_process(tmp_path, "check")
    assert done.returncode == 1
    assert "steps after" not in done.stderr
    assert (
        "1 step(s) unavailable: model; no step can score: every row is an error that stops "
        "`scoring score` (on_exhausted: raise)"
    ) in done.stderr


def test_check_says_what_happens_when_the_last_step_is_unavailable(tmp_path: Path) -> None:
    project(
        tmp_path,
        "  - {name: avg, scorer: mean}\n  - {name: model, scorer: broken}\n",
        extra="on_exhausted: {score: 0.5}\n",
    )
    done = run_process(tmp_path, "check")
    assert "steps after" not in done.stderr
    assert (
        "scores will come from 'avg'; no step that can score comes after 'model', so a row "
        "'avg' fails gets the on_exhausted score 0.5"
    ) in done.stderr


def test_score_warns_that_an_unavailable_first_step_hands_its_rows_to_the_next(
    tmp_path: Path,
) -> None:
    project(tmp_path, "  - {name: model, scorer: broken}\n  - {name: avg, scorer: mean}\n")
    rows(tmp_path)
    done = run_process(tmp_path, "score", "in.csv", "-o", "out.csv")
    assert "; scores will come from the steps after it: 'avg'" in done.stderr


# -- 12: the fallbacks count --------------------------------------------------------------------


def test_fallbacks_count_rows_that_fell_back_and_failures_are_per_step(tmp_path: Path) -> None:
    project(
        tmp_path,
        "  - {name: one, scorer: half}\n  - {name: two, scorer: half}\n"
        "  - {name: avg, scorer: mean}\n",
    )
    rows(tmp_path)  # rows 2 and 3 fail both 'one' and 'two'
    done = run_process(tmp_path, "score", "in.csv", "-o", "out.csv")
    assert done.returncode == 0, done.stderr
    summary = {line.split()[0]: line for line in done.stderr.splitlines() if line.strip()}
    assert re.match(r"fallbacks +2  rows not scored by the first step, 'one'", summary["fallbacks"])
    assert re.match(r"failures +4  rows each step failed", summary["failures"])
    assert "step 'one': non_finite 2" in done.stderr
    assert "step 'two': non_finite 2" in done.stderr


# -- 13: compare's rejects and a one-step chain -------------------------------------------------


def test_compare_writes_a_rejects_file_and_says_why_rows_were_rejected(tmp_path: Path) -> None:
    project(tmp_path, "  - {name: avg, scorer: mean}\n  - {name: other, scorer: mean}\n")
    (tmp_path / "data").mkdir()
    rows(tmp_path / "data", "id,a,b\n1,0.2,0.4\n2,x,0.8\n3,2,0.1\n4,7,0.1\n")
    done = run_process(tmp_path, "compare", "data/in.csv")
    assert done.returncode == 0, done.stderr
    assert "3 row(s) rejected, not compared -> data/in.compare-rejects.csv" in done.stderr
    assert re.search(r"^ +2  a: feature 'a' is …, outside \[0.0, 1.0\]", done.stderr, re.M)
    assert re.search(r"^ +1  a: feature 'a' is …, not a number", done.stderr, re.M)
    with (tmp_path / "data" / "in.compare-rejects.csv").open(newline="") as file:
        written = list(csv.DictReader(file))
    assert [(r["row"], r["column"]) for r in written] == [("2", "a"), ("3", "a"), ("4", "a")]
    assert written[0]["error"] == "feature 'a' is 'x', not a number"

    report = json.loads(
        run_process(tmp_path, "compare", "data/in.csv", "--json", "--rejects", "bad.csv").stdout
    )
    assert report["rows"] == {"in": 4, "compared": 1, "rejected": 3}
    assert report["rejects"]["file"] == "bad.csv"
    assert {"column": "a", "reason": "feature 'a' is …, not a number", "rows": 1} in report[
        "rejects"
    ]["reasons"]


def test_compare_writes_a_rejects_file_without_rejected_rows_only_when_named(
    tmp_path: Path,
) -> None:
    project(tmp_path, "  - {name: avg, scorer: mean}\n  - {name: other, scorer: mean}\n")
    rows(tmp_path)
    done = run_process(tmp_path, "compare", "in.csv", "--json")
    assert json.loads(done.stdout)["rejects"] == {"file": None, "reasons": []}
    assert not (tmp_path / "in.compare-rejects.csv").exists()
    assert "rejected, not compared" not in done.stderr
    named = run_process(tmp_path, "compare", "in.csv", "--json", "--rejects", "bad.csv")
    assert json.loads(named.stdout)["rejects"]["file"] == "bad.csv"
    assert (tmp_path / "bad.csv").read_text().splitlines() == ['"row","column","error"']


def test_compare_with_one_step_prints_a_sentence_not_an_empty_pairs_table(tmp_path: Path) -> None:
    project(tmp_path, "  - {name: avg, scorer: mean}\n")
    rows(tmp_path)
    done = run_process(tmp_path, "compare", "in.csv")
    assert done.returncode == 0, done.stderr
    assert "pairs" not in done.stdout
    assert "the chain has one step, 'avg': there is no pair of steps to compare" in done.stdout


# -- 15: the cut in float32 ---------------------------------------------------------------------


def test_a_rules_score_of_0_2_plus_0_5_is_at_the_default_cut_of_0_7(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCORING_LOAD_PLUGINS", "rules")
    chain = (
        "  - name: formula\n    scorer: rules\n    options:\n      terms:\n"
        "        - {feature: a, weight: 1}\n        - {feature: b, weight: 1}\n"
        "  - {name: avg, scorer: mean}\n"
    )
    project(tmp_path, chain)
    rows(tmp_path, "a,b\n0.2,0.5\n0.1,0.5\n")
    config = str(tmp_path / "scoring.yaml")
    done = run_cli("compare", str(tmp_path / "in.csv"), "-c", config, "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    formula = report["steps"][0]
    assert formula["mean"] == pytest.approx(0.65, abs=1e-6)
    assert formula["share_at_or_above_threshold"] == 0.5  # 0.2 + 0.5 counts as 0.7


# -- 16: CLI polish -----------------------------------------------------------------------------


def test_debug_after_the_command_shows_the_traceback(tmp_path: Path) -> None:
    (tmp_path / "scoring.yaml").write_text("features: [\n")
    after = run_process(tmp_path, "check", "--debug")
    assert after.returncode == 2
    assert "Traceback" in after.stderr
    assert "Traceback" not in run_process(tmp_path, "check").stderr


def test_verbose_after_the_command_raises_the_log_level(tmp_path: Path) -> None:
    project(tmp_path, "  - {name: model, scorer: broken}\n  - {name: avg, scorer: mean}\n")
    rows(tmp_path)
    quiet = run_process(tmp_path, "score", "in.csv", "-o", "out.csv")
    loud = run_process(tmp_path, "score", "in.csv", "-o", "out.csv", "-v")
    before = run_process(tmp_path, "-v", "score", "in.csv", "-o", "out.csv")
    assert "INFO " not in quiet.stderr
    assert "INFO " in loud.stderr
    assert "INFO " in before.stderr


def test_help_shows_each_commands_description_uncut() -> None:
    result = run_cli("--help")
    assert result.exit_code == 0
    commands = result.output.split("Commands:")[1]
    assert "..." not in commands
    assert "Load every step of the chain and report its status." in result.output
    assert "Score a file with each step alone and compare the steps." in result.output


def test_models_help_shows_annotates_description_uncut() -> None:
    result = run_cli("models", "--help")
    assert "..." not in result.output.split("Commands:")[1]
    assert "Write feature names (and a self-test) into a model's metadata." in result.output


def test_check_usage_names_its_argument_config() -> None:
    result = run_cli("check", "--help")
    assert "check [OPTIONS] [CONFIG]\n" in result.output
    assert "CONFIG_ARG" not in result.output
