"""Opening an input: the reader for its format, on one open file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

from scoring_core.errors import DataFileError
from scoring_core.io.formats import STDIO, display_name
from scoring_core.io.jsonl import JsonLinesReader
from scoring_core.io.readers import CsvReader, ParquetReader, TableReader, close_input

__all__ = ["open_reader"]


def open_reader(path: str, fmt: str) -> TableReader:
    """Open ``path`` (``-``: standard input) in ``fmt`` for chunked reading."""
    name = display_name(path)
    if path != STDIO and not Path(path).is_file():
        problem = "is a folder" if Path(path).is_dir() else "does not exist"
        raise DataFileError(f"input file {path!r} {problem}", file=path)
    if fmt == "parquet":
        return ParquetReader(name, path)
    try:
        stream: IO[bytes] = sys.stdin.buffer if path == STDIO else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise DataFileError(f"cannot open {name}: {exc.strerror or exc}", file=path) from None
    try:
        if fmt == "jsonl":
            return JsonLinesReader(name, stream, None if path == STDIO else path)
        return CsvReader(name, stream, None if path == STDIO else path)
    except BaseException:
        close_input(stream)
        raise
