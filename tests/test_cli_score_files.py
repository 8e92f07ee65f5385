"""`scoring score` and `scoring compare` against what files and the system do to a run:
inputs changed under it, full disks and file-size limits, devices and FIFOs as outputs,
signals, quoted line breaks, column types that change, empty inputs, JSON arrays.

Each test runs the real command (a process of its own where a signal, a resource limit, a
terminal or a mount is involved) on real files.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from cli_helpers import plugin_source, run_cli, write_project
from test_cli_score import FEATURES, LOCAL_PLUGIN, clean_rows, read, rows_table

EXIT_ENVIRONMENT = 74
POSIX = pytest.mark.skipif(sys.platform == "win32", reason="POSIX files, signals and limits")


@pytest.fixture(autouse=True)
def _no_installed_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORING_LOAD_PLUGINS", "")


def project(folder: Path, plugin: str = LOCAL_PLUGIN, scorer: str = "mean") -> Path:
    return write_project(folder, plugin, FEATURES, f"  - {{name: only, scorer: {scorer}}}\n")


def command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "scoring_core", *args, "--config", str(config)]


def run(
    folder: Path,
    args: Sequence[str],
    *,
    preexec_fn: Callable[[], None] | None = None,
    **kwargs: object,
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SCORING_LOAD_PLUGINS": ""}
    kwargs.setdefault("stdout", subprocess.PIPE)
    return subprocess.run(
        list(args),
        cwd=folder,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
        preexec_fn=preexec_fn,
        **kwargs,  # type: ignore[arg-type]
    )


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def csv_text(n: int, bad: dict[int, str] | None = None, prefix: str = "id") -> str:
    """``n`` rows of ids and features; ``bad`` puts a text in feature ``a`` of those rows."""
    ids, X = clean_rows(n)
    lines = ["id," + ",".join(FEATURES)]
    for i, (row_id, values) in enumerate(zip(ids, X, strict=True), start=1):
        cells = [str(v) for v in values]
        if bad and i in bad:
            cells[0] = bad[i]
        lines.append(f"{prefix}{row_id[2:]}," + ",".join(cells))
    return "\n".join(lines) + "\n"


# -- #20.2: one open file per input; a file that changes under the run is refused ---------------

SWAPPING_CLASS = """
class Swapping:
    calls = 0

    def __init__(self, ctx):
        pass

    def score(self, X):
        import os

        Swapping.calls += 1
        if Swapping.calls == 1:  # another writer replaces the input while it is read
            os.replace("other.csv", "in.csv")
        return X.mean(axis=1)
"""

REWRITING_CLASS = """
class Rewriting:
    calls = 0

    def __init__(self, ctx):
        pass

    def score(self, X):
        Rewriting.calls += 1
        if Rewriting.calls == 1:  # another writer appends to the input in place
            with open("in.csv", "a") as f:
                f.write("late,0.1,0.1,0.1,0.1,0.1\\n")
        return X.mean(axis=1)
"""


@POSIX
@pytest.mark.parametrize(
    ("cls", "scorer", "what"),
    [
        (SWAPPING_CLASS, "swapping", "was replaced or removed at its path"),
        (REWRITING_CLASS, "rewriting", "was written to (8,778,429 -> 8,778,454 bytes)"),
    ],
)
def test_an_input_changed_during_the_run_is_refused_and_nothing_is_written(
    tmp_path: Path, cls: str, scorer: str, what: str
) -> None:
    plugin = plugin_source(cls, register={scorer: cls.split()[1].rstrip(":")})
    config = project(tmp_path, plugin, scorer)
    # 8 MB, read a few chunks ahead of the scoring; a bad cell near the end sends the
    # reader back to read the rows again (it used to open the path again)
    (tmp_path / "in.csv").write_text(csv_text(200_000, bad={190_000: "abc"}))
    (tmp_path / "other.csv").write_text(csv_text(200_000, prefix="new"))
    done = run(tmp_path, command(config, "score", "in.csv", "-o", "out.csv", "--workers", "1"))
    assert done.returncode == 2, done.stderr
    assert f"error: in.csv {what} while it was being read" in done.stderr
    assert "no output is written" in done.stderr
    assert not (tmp_path / "out.csv").exists()
    assert not any(n.startswith(".out") for n in names(tmp_path))


def test_the_careful_second_pass_reads_the_same_open_file(tmp_path: Path) -> None:
    config = project(tmp_path)
    (tmp_path / "in.csv").write_text(csv_text(20_000, bad={18_000: "abc"}))
    done = run(tmp_path, command(config, "score", "in.csv", "-o", "out.csv"))
    assert done.returncode == 0, done.stderr
    assert len(read(tmp_path / "out.csv")) == 19_999
    assert [r["row"] for r in read(tmp_path / "out.rejects.csv")] == [18_000]


# -- #20.3 and #20.11: full disks, file-size limits; committed together or not at all -----------


def file_size_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def many_rejects(folder: Path, n: int = 20_000) -> None:
    """``in.parquet``: ``n`` rows with random text ids, all but 10 of them out of range."""
    rng = np.random.default_rng(1)
    ids = [rng.bytes(24).hex() for _ in range(n)]
    X = rng.uniform(0, 0.8, size=(n, len(FEATURES)))
    X[10:, 2] = 5.0  # outside [0, 1]
    pq.write_table(rows_table(ids, X), folder / "in.parquet")


@POSIX
def test_a_rejects_file_over_the_size_limit_commits_neither_file(tmp_path: Path) -> None:
    config = project(tmp_path)
    many_rejects(tmp_path)
    (tmp_path / "out.parquet").write_bytes(b"the previous run's output")
    (tmp_path / "out.rejects.parquet").write_bytes(b"the previous run's rejects")
    args = command(config, "score", "in.parquet", "-o", "out.parquet")
    # the output (10 rows) fits; the rejects (about 1 MB, written as the run ends) do not
    done = run(tmp_path, args, preexec_fn=file_size_limit(256 * 1024))
    assert done.returncode == EXIT_ENVIRONMENT, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "error: cannot write out.rejects.parquet: File too large"
    )
    assert "Traceback" not in done.stderr
    assert (tmp_path / "out.parquet").read_bytes() == b"the previous run's output"
    assert (tmp_path / "out.rejects.parquet").read_bytes() == b"the previous run's rejects"
    assert names(tmp_path) == [
        "in.parquet",
        "myplugin.py",
        "out.parquet",
        "out.rejects.parquet",
        "scoring.yaml",
    ]


def mount_tmpfs(folder: Path, options: str) -> list[str]:
    """The command prefix running its command with a tmpfs at ``folder`` (a mount namespace
    of its own); skips the test where that is not allowed."""
    unshare = shutil.which("unshare")
    if unshare is None or sys.platform != "linux":
        pytest.skip("needs unshare(1) on Linux")
    folder.mkdir(exist_ok=True)
    probe = subprocess.run(
        [unshare, "-m", "sh", "-c", f"mount -t tmpfs -o {options} none {folder}"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {probe.stderr.decode().strip()}")
    return [
        unshare,
        "-m",
        "sh",
        "-c",
        f'mount -t tmpfs -o {options} none {folder} && exec "$@"',
        "sh",
    ]


@POSIX
def test_a_full_disk_exits_74_naming_the_file_and_leaves_nothing(tmp_path: Path) -> None:
    config = project(tmp_path)
    ids, X = clean_rows(50_000)
    pq.write_table(rows_table(ids, X), tmp_path / "in.parquet")
    small = tmp_path / "small"
    prefix = mount_tmpfs(small, "size=256k")
    out = small / "out.csv"
    script = f"{sys.executable} -m scoring_core score in.parquet -o {out} --config {config}" + (
        f" ; echo rc=$? ; ls -A {small}"
    )
    done = run(tmp_path, [*prefix, "sh", "-c", script])
    assert f"error: cannot write {out}: No space left on device" in done.stderr, done.stderr
    assert "rc=74" in done.stdout
    assert done.stdout.strip().endswith("rc=74")  # nothing left in the small filesystem


@POSIX
def test_compare_plot_on_a_read_only_filesystem_exits_74_naming_the_file(
    tmp_path: Path,
) -> None:
    pytest.importorskip("matplotlib")
    config = project(tmp_path)
    pq.write_table(rows_table(*clean_rows(50)), tmp_path / "in.parquet")
    ro = tmp_path / "ro"
    prefix = mount_tmpfs(ro, "ro,size=64k")
    args = command(config, "compare", "in.parquet", "--plot", str(ro / "plot.png"))
    done = run(tmp_path, [*prefix, *args])
    assert done.returncode == EXIT_ENVIRONMENT, done.stderr
    assert f"error: cannot write the plot to {ro / 'plot.png'}: Read-only file system" in (
        done.stderr
    )


def test_compare_threshold_nan_is_a_usage_error(tmp_path: Path) -> None:
    config = project(tmp_path)
    pq.write_table(rows_table(*clean_rows(5)), tmp_path / "in.parquet")
    result = run_cli(
        "compare", str(tmp_path / "in.parquet"), "--threshold", "nan", "--config", str(config)
    )
    assert result.exit_code == 2
    assert "Invalid value for '--threshold': nan is not a finite number" in result.output


def test_a_parquet_file_with_a_duplicated_column_exits_2_naming_it(tmp_path: Path) -> None:
    config = project(tmp_path)
    ids, X = clean_rows(3)
    table = rows_table(ids, X)
    table = pa.Table.from_arrays([*table.columns, table.column("a")], [*table.column_names, "a"])
    pq.write_table(table, tmp_path / "in.parquet")
    result = run_cli(
        "score",
        str(tmp_path / "in.parquet"),
        "-o",
        str(tmp_path / "o.csv"),
        "--config",
        str(config),
    )
    assert result.exit_code == 2, result.output
    assert "column 'a' appears more than once in the Parquet file" in result.output
    assert "unexpected" not in result.output


@POSIX
@pytest.mark.parametrize("closed", ["stdout", "stderr"])
def test_a_closed_standard_output_or_error_exits_74(tmp_path: Path, closed: str) -> None:
    config = project(tmp_path)
    pq.write_table(rows_table(*clean_rows(5)), tmp_path / "in.parquet")
    args = command(config, "score", "in.parquet", "--output-format", "csv")
    fd = 1 if closed == "stdout" else 2
    script = f'exec "$@" {fd}>&-'
    done = run(tmp_path, ["sh", "-c", script, "sh", *args])
    assert done.returncode == EXIT_ENVIRONMENT, done.stderr
    if closed == "stdout":
        assert done.stderr.strip() == (
            "error: cannot write the output to standard output: it is closed; pass -o FILE, "
            "or give the command a standard output"
        )


# -- #20.4: devices, FIFOs and the terminal are written directly ----------------------------------

BROKEN_CSV = "id,a,b,c,d,e\nr1,0.1,0.2,0.3,0.4,0.5\nr2,abc,0.2,0.3,0.4,0.5\n"


@POSIX
def test_an_output_symlinked_to_dev_null_stays_a_symlink_and_gets_no_rejects_file(
    tmp_path: Path,
) -> None:
    config = project(tmp_path)
    (tmp_path / "in.csv").write_text(BROKEN_CSV)
    (tmp_path / "out.csv").symlink_to("/dev/null")
    done = run(tmp_path, command(config, "score", "in.csv", "-o", "out.csv"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.csv").is_symlink()
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert names(tmp_path) == ["in.csv", "myplugin.py", "out.csv", "scoring.yaml"]
    assert "rejected             1  not written: the output is a stream; pass --rejects FILE" in (
        done.stderr
    )


@POSIX
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_fifo_and_proc_self_fd_1_are_written_in_place(tmp_path: Path, fmt: str) -> None:
    config = project(tmp_path)
    pq.write_table(rows_table(*clean_rows(100)), tmp_path / "in.parquet")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    args = command(config, "score", "in.parquet", "-o", "pipe", "--output-format", fmt)
    done = run(tmp_path, args)
    reader.join(timeout=30)
    assert done.returncode == 0, done.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert (
        len(
            pq.read_table(pa.BufferReader(received[0]))
            if fmt == "parquet"
            else pcsv.read_csv(pa.BufferReader(received[0]))
        )
        == 100
    )
    if sys.platform == "linux":
        (tmp_path / "stdout").symlink_to("/proc/self/fd/1")
        done = run(
            tmp_path,
            command(config, "score", "in.parquet", "-o", "stdout", "--output-format", "csv"),
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith('"id","score","scorer","fallback_reason"')
        assert (tmp_path / "stdout").is_symlink()
    assert names(tmp_path) == sorted(
        ["in.parquet", "myplugin.py", "pipe", "scoring.yaml"]
        + (["stdout"] if sys.platform == "linux" else [])
    )


@POSIX
def test_parquet_is_refused_to_a_terminal_unless_o_dash_is_given(tmp_path: Path) -> None:
    import pty

    config = project(tmp_path)
    pq.write_table(rows_table(*clean_rows(5)), tmp_path / "in.parquet")
    for extra, code in (((), 2), (("-o", "-"), 0)):
        leader, follower = pty.openpty()
        done = run(tmp_path, command(config, "score", "in.parquet", *extra), stdout=follower)
        os.close(follower)
        os.close(leader)
        assert done.returncode == code, done.stderr
        if code == 2:
            assert "refusing to write Parquet, a binary format, to the terminal" in done.stderr


# -- #20.5: a column whose type changes later never stops the run -------------------------------


@pytest.mark.parametrize("out", ["out.jsonl", "out.csv", "out.parquet"])
def test_a_kept_json_column_whose_type_changes_after_the_first_chunk_is_widened(
    tmp_path: Path, out: str
) -> None:
    config = project(tmp_path)
    row = {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4, "e": 0.5}
    ids: list[object] = [*range(1, 1_501), 0.5, "x-7"]  # the first chunk holds 1,000 lines
    lines = [json.dumps({"id": i, **row}) + "\n" for i in ids]
    (tmp_path / "in.jsonl").write_text("".join(lines))
    result = run_cli(
        "score",
        str(tmp_path / "in.jsonl"),
        "-o",
        str(tmp_path / out),
        "--chunk-rows",
        "1000",
        "--config",
        str(config),
    )
    assert result.exit_code == 0, result.output
    written = [str(r["id"]) for r in read(tmp_path / out)]
    assert written[:2] == ["1", "2"]
    assert written[-3:] == ["1500", "0.5", "x-7"]
    assert len(written) == 1_502


@pytest.mark.parametrize("out", ["out.csv", "out.parquet"])
def test_keep_all_with_a_bad_feature_cell_after_the_first_chunk_writes_every_row(
    tmp_path: Path, out: str
) -> None:
    config = project(tmp_path)
    # the bad cell is in pyarrow's third read block: two chunks were read as numbers
    (tmp_path / "in.csv").write_text(csv_text(60_000, bad={50_000: "abc"}))
    result = run_cli(
        "score",
        str(tmp_path / "in.csv"),
        "-o",
        str(tmp_path / out),
        "--keep",
        "all",
        "--config",
        str(config),
    )
    assert result.exit_code == 0, result.output
    assert len(read(tmp_path / out)) == 59_999
    rejects = read(tmp_path / out.replace("out", "out.rejects"))
    assert [(r["row"], r["column"], str(r["a"])) for r in rejects] == [(50_000, "a", "abc")]


# -- #20.8: SIGTERM and SIGHUP clean up; stale temporary files of dead runs are removed ----------

SIGNALLING_CLASS = """
class Signalling:
    calls = 0

    def __init__(self, ctx):
        pass

    def score(self, X):
        import os, signal, time

        Signalling.calls += 1
        if Signalling.calls == 2:  # the first chunk is being written: its files exist
            time.sleep(0.5)
            os.kill(os.getpid(), getattr(signal, os.environ["SEND_SIGNAL"]))
        return X.mean(axis=1)
"""


@POSIX
@pytest.mark.parametrize(("name", "code"), [("SIGTERM", 143), ("SIGHUP", 129), ("SIGKILL", -9)])
def test_a_stopping_signal_removes_the_files_being_written(
    tmp_path: Path, name: str, code: int
) -> None:
    plugin = plugin_source(SIGNALLING_CLASS, register={"signalling": "Signalling"})
    config = project(tmp_path, plugin, "signalling")
    pq.write_table(rows_table(*clean_rows(50)), tmp_path / "in.parquet")
    args = command(config, "score", "in.parquet", "-o", "out.parquet", "--workers", "1")
    args += ["--chunk-rows", "10"]
    env = {**os.environ, "SCORING_LOAD_PLUGINS": "", "SEND_SIGNAL": name}
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == code, done.stderr
    left = [n for n in names(tmp_path) if n.startswith(".out.parquet.")]
    if name == "SIGKILL":  # nothing can clean up after SIGKILL: the next run does
        assert len(left) == 1
        config = project(tmp_path)
        again = run(tmp_path, command(config, "score", "in.parquet", "-o", "out.parquet"))
        assert again.returncode == 0, again.stderr
    else:
        assert f"stopped by {name}: files it was writing are removed" in done.stderr
        assert "Traceback" not in done.stderr
    assert names(tmp_path) == sorted(
        ["in.parquet", "myplugin.py", "scoring.yaml"]
        + (["out.parquet", "out.rejects.parquet"] if name == "SIGKILL" else [])
    )


def test_temporary_files_of_live_processes_and_other_names_are_left_alone(tmp_path: Path) -> None:
    from scoring_core.io.targets import remove_stale_temps, temp_path

    target = tmp_path / "out.csv"
    mine = temp_path(target)
    mine.write_text("being written")
    other = tmp_path / ".out.csv.someone-else.tmp"
    other.write_text("not ours")
    assert remove_stale_temps(target) == []
    assert mine.exists()
    assert other.exists()


# -- #20.9: quoted line breaks in cells, wherever the read blocks fall --------------------------


def multiline_csv(n: int, bad: int | None = None) -> str:
    lines = ["id,note," + ",".join(FEATURES)]
    for i in range(1, n + 1):
        a = "abc" if i == bad else "0.5"
        lines.append(f'r{i},"line one of {i}\nline two, ""quoted""",{a},0.1,0.2,0.3,0.4')
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("bad", [None, 30_000])
def test_quoted_line_breaks_across_read_blocks_are_read_whole(
    tmp_path: Path, bad: int | None
) -> None:
    config = project(tmp_path)
    (tmp_path / "in.csv").write_text(multiline_csv(40_000, bad))  # about 2.4 MB: 3 blocks
    result = run_cli(
        "score", str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv"), "--config", str(config)
    )
    assert result.exit_code == 0, result.output
    options = pcsv.ParseOptions(newlines_in_values=True)
    rows = pcsv.read_csv(tmp_path / "out.csv", parse_options=options).to_pylist()
    assert len(rows) == 40_000 - (bad is not None)
    assert rows[-1]["note"] == 'line one of 40000\nline two, "quoted"'
    if bad:
        assert [r["row"] for r in read(tmp_path / "out.rejects.csv")] == [bad]
    # standard input too (it cannot be read twice)
    data = (tmp_path / "in.csv").read_bytes()
    piped = run_cli("score", "-", "--format", "csv", "--config", str(config), stdin=data)
    assert piped.exit_code == 0, piped.output


# -- #14.7, #14.14, #14.16 -------------------------------------------------------------------------


def test_a_json_file_holding_an_array_is_read_as_rows(tmp_path: Path) -> None:
    config = project(tmp_path)
    rows = [{"id": f"r{i}", "a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4, "e": 0.5} for i in range(3)]
    (tmp_path / "in.json").write_text(json.dumps(rows, indent=2)[:-1] + ", 7]")
    result = run_cli(
        "score", str(tmp_path / "in.json"), "-o", str(tmp_path / "out.csv"), "--config", str(config)
    )
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in read(tmp_path / "out.csv")] == ["r0", "r1", "r2"]
    assert [(r["row"], r["error"]) for r in read(tmp_path / "out.rejects.csv")] == [
        (4, "the row is a JSON int, not an object")
    ]


@pytest.mark.parametrize("out", ["out.csv", "out.parquet", "out.jsonl"])
def test_a_header_only_csv_writes_an_empty_output_and_exits_0(tmp_path: Path, out: str) -> None:
    config = project(tmp_path)
    (tmp_path / "in.csv").write_text("id,a,b,c,d,e\n")
    args = ["score", str(tmp_path / "in.csv"), "-o", str(tmp_path / out), "--config", str(config)]
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    assert "rows in              0" in result.stderr
    if out != "out.jsonl":
        written = (
            pq.read_table(tmp_path / out)
            if out.endswith("parquet")
            else pcsv.read_csv(tmp_path / out)
        )
        assert written.column_names == ["id", "score", "scorer", "fallback_reason"]
        assert written.num_rows == 0
    assert (tmp_path / out).exists()
    strict = run_cli(*args, "--fail-on-empty")
    assert strict.exit_code == 1
    assert f"{tmp_path / 'in.csv'} has no rows (--fail-on-empty)" in strict.stderr


def test_a_run_to_stdout_leaves_no_rejects_file_to_go_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = project(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = run_cli(
        "score", "-", "--format", "csv", "--config", str(config), stdin=BROKEN_CSV.encode()
    )
    assert result.exit_code == 0, result.output
    assert "not written: the output is a stream; pass --rejects FILE" in result.stderr
    assert not (tmp_path / "rejects.csv").exists()
    kept = run_cli(
        "score",
        "-",
        "--format",
        "csv",
        "--rejects",
        "bad.csv",
        "--config",
        str(config),
        stdin=BROKEN_CSV.encode(),
    )
    assert kept.exit_code == 0
    assert [r["row"] for r in read(tmp_path / "bad.csv")] == [2]
    clean = "\n".join(BROKEN_CSV.splitlines()[:2]) + "\n"
    again = run_cli(
        "score",
        "-",
        "--format",
        "csv",
        "--rejects",
        "bad.csv",
        "--config",
        str(config),
        stdin=clean.encode(),
    )
    assert again.exit_code == 0
    assert read(tmp_path / "bad.csv") == []  # rewritten, header only: nothing stale
