"""``scoring score 'in/*.parquet' -o out/ --dask ADDRESS|local[:N]``: the same run on Dask.

Each input file is one task, scored on a worker by the code of a local run
(:func:`scoring_core.batch.score_table`) with that worker's engine; the output folder
gets one Parquet part per input file and the rejects folder (``out.rejects/`` by
default) one per input file with rejected rows. Both are committed only when every task
succeeded (a task whose worker died is run again by Dask). The summary is a local run's,
added up over the job, then the workers' own counts and any step unavailable on one.
"""

from __future__ import annotations

import glob
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

__all__ = ["input_files", "score_on_dask"]

# the options of a local run that a Dask job cannot honour: refused, never ignored
_LOCAL_ONLY = {
    "metrics_path": "--metrics",
    "provenance": "--provenance",
    "fail_on_empty": "--fail-on-empty",
}


def input_files(pattern: str) -> list[str]:
    """The Parquet files of ``pattern``: a glob, a folder (its ``*.parquet``) or a file."""
    if os.path.isdir(pattern):
        found = sorted(glob.glob(os.path.join(pattern, "*.parquet")))
    else:
        found = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
    if not found:
        raise click.UsageError(f"no files match {pattern!r}")
    for name in found:
        if not os.path.isfile(name):
            raise click.UsageError(f"no such file: {name!r}")
        if Path(name).suffix.lower() not in (".parquet", ".pq"):
            raise click.UsageError(
                f"--dask reads Parquet files, and {name!r} is not one (.parquet); "
                "convert it, or score it without --dask"
            )
    return found


def _client(address: str) -> tuple[Any, str]:
    try:
        import scoring_core.dask as scoring_dask
    except ImportError as exc:
        raise click.ClickException(str(exc)) from None
    if logging.getLogger().getEffectiveLevel() >= logging.WARNING:  # no -v: Dask's INFO is noise
        logging.getLogger("distributed").setLevel(logging.WARNING)
    kind, _, count = address.partition(":")
    if kind == "local":
        try:
            workers = int(count) if count else (os.cpu_count() or 1)
        except ValueError:
            raise click.BadParameter(
                f"expected local or local:N, got {address!r}", param_hint="--dask"
            ) from None
        if workers < 1:
            raise click.BadParameter("local:N needs N >= 1", param_hint="--dask")
        return scoring_dask.local_client(workers), f"a local cluster of {workers} worker(s)"
    from distributed import Client

    client = Client(address, timeout="30s")  # type: ignore[no-untyped-call]
    return client, f"the cluster at {address}"


def score_on_dask(
    address: str,
    *,
    input_path: str,
    output: str | None,
    config: Path,
    keep: str | None,
    rejects_path: str | None,
    fail_on_reject: bool,
    allow_unavailable: bool,
    chunk_rows: int,
    progress: bool | None = None,
    **_local_only: Any,
) -> int:
    """Run the job on Dask, print the summary on stderr, return the exit code."""
    if output is None or output == "-":
        raise click.UsageError("--dask writes a folder of Parquet parts: give -o FOLDER")
    for name, option in _LOCAL_ONLY.items():
        if _local_only.get(name):
            raise click.UsageError(
                f"{option} is not available with --dask (its workers do not report it); "
                f"score without --dask to use {option}"
            )
    from scoring_core.batch import open_input
    from scoring_core.cli.exit_codes import EXIT_OK, EXIT_PROBLEM, EXIT_STEP_UNAVAILABLE
    from scoring_core.cli.files import kept_columns
    from scoring_core.cli.report import (
        FilesDone,
        MissingStep,
        ProgressBar,
        counts_lines,
        unavailable_at_start,
        unavailable_lines,
        warn_unavailable,
    )
    from scoring_core.engine import Engine
    from scoring_core.errors import ChainExhaustedError
    from scoring_core.io import STDIO

    if output == STDIO:
        raise click.UsageError("with --dask, -o names an output folder (one part per input)")
    formats = {name: _local_only.get(name) for name in ("fmt", "input_format", "output_format")}
    for name, given in formats.items():
        if given is not None and given.lower() not in ("parquet", "pq"):
            option = "--format" if name == "fmt" else f"--{name.replace('_', '-')}"
            raise click.UsageError(f"--dask reads and writes Parquet only, not {option} {given}")
    inputs = input_files(input_path)
    started = time.perf_counter()
    with Engine.from_yaml(config) as engine:
        with open_input(inputs[0], "parquet") as reader:
            kept = kept_columns(reader, engine, keep) if keep is not None else None
        missing = unavailable_at_start(engine)
        warn_unavailable(engine)
        optional = {s["name"]: bool(s.get("optional")) for s in engine.diagnostics()["steps"]}
    client, where = _client(address)
    try:
        import scoring_core.dask as scoring_dask

        scoring_dask.start_engines(config, client=client)
        loaded = time.perf_counter()
        files = FilesDone(len(inputs))
        show = progress if progress is not None else sys.stderr.isatty()
        bar = ProgressBar(show, files, f"{len(inputs)} file(s)")

        def file_done(done: int, rows: int) -> None:
            files.done = done
            bar.update(rows)

        try:
            counts, summary, folders = scoring_dask.score_files(
                client,
                config,
                inputs,
                output,
                rejects=rejects_path,
                kept=kept,
                chunk_rows=chunk_rows,
                progress=file_done,
            )
        except ChainExhaustedError as exc:
            click.echo(f"error: {exc}; no output was written", err=True)
            return EXIT_PROBLEM
        finally:
            bar.close()
        done = time.perf_counter()
    finally:
        cluster = getattr(client, "cluster", None) if address.startswith("local") else None
        client.close()
        if cluster is not None:
            cluster.close()
    broken_here = {step.name for step in missing}
    on_workers: dict[str, list[str]] = {}
    for item in summary.unavailable:
        if item.step not in broken_here:
            on_workers.setdefault(item.step, []).append(f"{item.worker}: {item.reason}")
    worker_lines = []
    for name, where_why in on_workers.items():
        which = "optional step" if optional.get(name) else "step"
        worker_lines.append(
            f"{which} {name!r} was unavailable on {len(where_why)} of {len(summary.workers)} "
            f"worker(s) ({'; '.join(where_why)}); their rows went to the next step."
        )
        missing.append(MissingStep(name, where_why[0], optional.get(name, False)))
    rejects = str(folders.rejects) if counts.rejected else None
    notes = [f"{len(inputs)} input file(s) scored on {where}; output parts in {folders.output}"]
    lines = [
        *unavailable_lines(
            [step for step in missing if step.name not in on_workers],
            counts,
            allowed=allow_unavailable,
        ),
        *worker_lines,
        *counts_lines(
            counts,
            (done - loaded, loaded - started),
            rejects,
            notes,
            loading="start the cluster and load the chain on every worker",
        ),
        *summary.lines(),
    ]
    for line in lines:
        click.echo(line, err=True)
    if fail_on_reject and counts.rejected:
        click.echo(f"{counts.rejected:,} row(s) rejected (--fail-on-reject)", err=True)
        return EXIT_PROBLEM
    if not allow_unavailable and any(not step.optional for step in missing):
        return EXIT_STEP_UNAVAILABLE
    return EXIT_OK
