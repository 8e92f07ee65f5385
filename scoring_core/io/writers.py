"""Writing tables chunk by chunk: CSV, JSON Lines, Parquet; to a file or to a stream."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from scoring_core.errors import OutputError
from scoring_core.io.formats import STDIO
from scoring_core.io.targets import (
    STDOUT_NAME,
    is_stream,
    open_stream,
    remove_stale_temps,
    temp_path,
)

__all__ = [
    "TableWriter",
    "arrow_categories",
    "arrow_integers",
    "arrow_numbers",
    "arrow_strings",
]


# Parquet row groups. The command hands over chunks of --chunk-rows (16k by default)
# rows; a row group each was small for readers and cost the writer 10-30% more time
# than gathering them (measured). A row group is written once 128k rows, 16 MB (wide
# kept columns) or 64 tables (small chunks) are waiting, whichever comes first.
PARQUET_ROW_GROUP_ROWS = 131_072
PARQUET_ROW_GROUP_BYTES = 16 << 20
_PARQUET_ROW_GROUP_TABLES = 64


class TableWriter:
    """Writes tables of one schema to ``path`` (``-``: stdout) in ``fmt``.

    A regular file is written under a temporary name beside it; :meth:`finish` writes the
    last bytes (the Parquet footer) and :meth:`commit` renames it into place, so a failed
    run never leaves a half-written file that looks like a result, and two files can be
    finished first and committed together. Standard output, a device (``/dev/null``, a
    terminal), a FIFO and symlinks to them are written directly, never replaced; Parquet
    for them goes through a temporary file, copied out at :meth:`commit` (a reader needs
    the footer, and a failed run must not end with a valid-looking file).

    A column whose type changes after the first rows (JSON ids ``1`` then ``0.5``) is
    widened so every row fits: to the type holding both (int64 and float64: float64), or
    to text. A Parquet file written so far is then rewritten with the wider type.
    Parquet row groups gather tables up to ``PARQUET_ROW_GROUP_ROWS`` rows.
    ``dictionary_columns`` are dictionary-encoded in Parquet (others are not: trying it on
    an id column costs three times the writing time, measured).

    The system's refusals (a full disk, the file-size limit) are :class:`OutputError`
    naming ``path``.
    """

    def __init__(
        self, path: str, fmt: str, schema: Any, *, dictionary_columns: Sequence[str] = ()
    ) -> None:
        import pyarrow as pa

        self.path = path
        self.name = STDOUT_NAME if path == STDIO else path
        self.fmt = fmt
        # A column with no value yet (JSON nulls) is written as text, so later values fit.
        self.schema = pa.schema(
            [f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in schema]
        )
        self.rows = 0
        self._dictionary = [c for c in dictionary_columns if c in self.schema.names]
        self._temp: Path | None = None
        self._stream = is_stream(path)
        self._finished = False
        if self._stream and fmt != "parquet":
            self._sink: WholeWrites = WholeWrites(open_stream(path))
        else:
            target = Path(tempfile.gettempdir(), "scoring.parquet") if self._stream else Path(path)
            remove_stale_temps(target)
            self._target = target
            self._temp = temp_path(target)
            self._sink = self._open_temp(self._temp)
        self._writer: Any = None
        # Parquet tables are gathered into row groups of PARQUET_ROW_GROUP_ROWS rows
        self._row_groups = fmt == "parquet"
        self._pending: list[Any] = []
        self._pending_rows = self._pending_bytes = 0
        with self._system_errors():
            self._writer = self._new_writer(self._sink, self.schema, header=True)

    def _open_temp(self, temp: Path) -> WholeWrites:
        try:
            return WholeWrites(open(temp, "wb"))
        except OSError as exc:
            raise OutputError.of(exc, self.name) from None

    def _new_writer(self, sink: Any, schema: Any, *, header: bool) -> Any:
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        if self.fmt == "parquet":
            return pq.ParquetWriter(sink, schema, use_dictionary=self._dictionary)
        if self.fmt == "csv":
            options = pcsv.WriteOptions(quoting_style="needed", include_header=header)
            return pcsv.CSVWriter(sink, schema, write_options=options)
        return None  # JSON Lines: no schema in the file

    @contextlib.contextmanager
    def _system_errors(self) -> Iterator[None]:
        try:
            yield
        except OutputError:
            raise
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError.of(exc, self.name) from None

    def write(self, table: Any) -> None:
        if table.schema != self.schema and self.fmt != "jsonl":  # JSON Lines: no schema
            table = self._fit(table)
        with self._system_errors():
            if self._row_groups:
                self._pending.append(table)
                self._pending_rows += table.num_rows
                self._pending_bytes += table.nbytes
                if (
                    self._pending_rows >= PARQUET_ROW_GROUP_ROWS
                    or self._pending_bytes >= PARQUET_ROW_GROUP_BYTES
                    or len(self._pending) >= _PARQUET_ROW_GROUP_TABLES
                ):
                    self._write_row_group()
            elif self._writer is not None:
                self._writer.write_table(table)
            elif table.num_rows:
                self._sink.write(json_lines(table))
        self.rows += table.num_rows

    def _fit(self, table: Any) -> Any:
        """``table`` in the file's schema, widening the file's when it cannot take it."""
        import pyarrow as pa

        try:
            return table.cast(self.schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
            pass
        wider = pa.schema(
            [_wider(old, new) for old, new in zip(self.schema, table.schema, strict=True)]
        )
        with self._system_errors():
            self._widen(wider)
        return table.cast(self.schema)

    def _widen(self, wider: Any) -> None:
        """Make ``wider`` the file's schema: text formats carry on (a CSV header has no
        types), a Parquet file is rewritten with the wider columns."""
        self._pending = [table.cast(wider) for table in self._pending]
        if self.fmt == "csv":
            self._writer.close()  # flushes; the sink stays open
            self._writer = self._new_writer(self._sink, wider, header=False)
        elif self.fmt == "parquet":
            import pyarrow.parquet as pq

            assert self._temp is not None
            self._writer.close()
            self._sink.close()
            old, self._temp = self._temp, temp_path(self._target)
            self._sink = self._open_temp(self._temp)
            self._writer = self._new_writer(self._sink, wider, header=True)
            try:
                with pq.ParquetFile(old) as written:
                    for group in range(written.num_row_groups):
                        self._writer.write_table(written.read_row_group(group).cast(wider))
            finally:
                old.unlink(missing_ok=True)
        self.schema = wider

    def _write_row_group(self) -> None:
        import pyarrow as pa

        if self._pending:
            self._writer.write_table(pa.concat_tables(self._pending))  # no copy: chunked
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0

    def finish(self) -> None:
        """Write what is left (the last row group, the footer) and close the file, so that
        :meth:`commit` has only to move it into place. On failure (a full disk) the file is
        removed and the error raised."""
        try:
            with self._system_errors():
                if self._row_groups:
                    self._write_row_group()
                if self._writer is not None:
                    self._writer.close()
                if self._temp is not None or self.path != STDIO:
                    self._sink.close()
                else:
                    self._sink.flush()
        except BaseException:
            self.discard()
            raise
        self._finished = True

    def commit(self) -> None:
        """Move the finished file into place (for a stream: copy a Parquet file out)."""
        if not self._finished:
            self.finish()
        if self._temp is None:
            return
        try:
            with self._system_errors():
                if not self._stream:
                    os.replace(self._temp, self.path)
                    return
                out = WholeWrites(open_stream(self.path))
                with open(self._temp, "rb") as finished_file:
                    while block := finished_file.read(1 << 20):
                        out.write(block)
                out.flush()
                if self.path != STDIO:
                    out.close()
        finally:
            self._temp.unlink(missing_ok=True)

    def discard(self) -> None:
        """Close without keeping anything: the temporary file is removed."""
        with contextlib.suppress(Exception):
            if self._writer is not None:
                self._writer.close()
        with contextlib.suppress(Exception):
            if self._temp is not None or self.path != STDIO:
                self._sink.close()
            else:
                self._sink.flush()
        if self._temp is not None:
            self._temp.unlink(missing_ok=True)

    def close(self, *, keep: bool) -> None:
        """Finish and commit the file (``keep``), or discard it."""
        if keep:
            self.commit()
        else:
            self.discard()


def _wider(old: Any, new: Any) -> Any:
    """The field holding the values of both ``old`` and ``new``: a common type, or text."""
    import pyarrow as pa

    if old.type == new.type:
        return old
    if pa.types.is_null(new.type):
        return old
    try:
        merged = pa.unify_schemas(
            [pa.schema([old]), pa.schema([new.with_name(old.name)])], promote_options="permissive"
        )
        kind = merged.field(0).type
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        kind = pa.string()
    if pa.types.is_dictionary(kind) or pa.types.is_nested(kind):
        kind = pa.string()
    return old.with_type(kind)


class WholeWrites:
    """A binary file whose ``write`` writes all it is given, or raises.

    ``io.BufferedWriter.write`` returns a short count, without an error, when the file
    fails part-way through a large write (a full disk; a reader that closed the pipe),
    and pyarrow's writers do not look at the count: the end of the output would be lost
    without a word. Here the rest is written again, which raises the real error.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        total = len(view)
        while view:
            written = self._raw.write(view)
            if not written:
                raise OSError(errno.EIO, "the file took no more bytes")
            view = view[written:]
        return total

    def flush(self) -> None:
        self._raw.flush()

    def close(self) -> None:
        self._raw.close()

    @property
    def closed(self) -> bool:
        return self._raw.closed


def json_lines(table: Any) -> bytes:
    """The rows of ``table`` as JSON Lines (non-finite numbers become null).

    Built column by column with pyarrow compute (30 times faster than ``json.dumps`` per
    row, measured); tables with other types than text, numbers and booleans, or text
    with control characters, go through ``json.dumps``.
    """
    import pyarrow.compute as pc

    n = int(table.num_rows)
    pieces: list[Any] = []
    for index, (name, column) in enumerate(zip(table.column_names, table.columns, strict=True)):
        text = _json_values(column.combine_chunks(), n)
        if text is None:
            return _json_lines_slowly(table)
        prefix = "{" if index == 0 else ", "
        pieces += [_repeated(prefix + json.dumps(name, ensure_ascii=False) + ": ", n), text]
    if not pieces:
        return b"{}\n" * n
    rows = pc.binary_join_element_wise(*pieces, _repeated("}\n", n), _repeated("", n))
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32)
    start, end = int(offsets[rows.offset]), int(offsets[rows.offset + n])
    return bytes(memoryview(rows.buffers()[2])[start:end])  # the rows, back to back


def _json_values(column: Any, n: int) -> Any:
    """JSON texts of a column's values ("null" for nulls), or None for other types."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_dictionary(kind):
        column, kind = column.dictionary_decode(), kind.value_type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if pc.any(pc.match_substring_regex(column, "[\\x00-\\x1f]")).as_py():
            return None
        escaped = pc.replace_substring(pc.replace_substring(column, "\\", "\\\\"), '"', '\\"')
        quote = _repeated('"', n)
        text = pc.binary_join_element_wise(
            quote, escaped.cast(pa.string()), quote, _repeated("", n)
        )
    elif pa.types.is_floating(kind):
        text = pc.if_else(pc.is_finite(column), column.cast(pa.string()), _repeated("null", n))
    elif pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        text = column.cast(pa.string())
    elif pa.types.is_null(kind):
        return _repeated("null", n)
    else:
        return None
    return pc.if_else(pc.is_valid(text), text, _repeated("null", n))


def _repeated(text: str, n: int) -> Any:
    """A pyarrow string array of ``n`` times ``text`` (pa.scalar would import pandas)."""
    import pyarrow as pa

    data = text.encode()
    offsets = np.arange(n + 1, dtype=np.int32) * len(data)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data * n))


def _json_lines_slowly(table: Any) -> bytes:
    lines = [json.dumps(row, ensure_ascii=False, default=str) for row in table.to_pylist()]
    return ("\n".join(lines) + "\n").encode()


# pyarrow.array() imports pandas when it is installed (0.3-0.6 s and 40 MB, measured) even
# for a numpy array; building arrays from their buffers does not.


def arrow_numbers(values: npt.NDArray[np.float64]) -> Any:
    """A float64 pyarrow array over ``values`` (no copy when it is already contiguous)."""
    import pyarrow as pa

    data = np.ascontiguousarray(values, dtype=np.float64)
    return pa.Array.from_buffers(pa.float64(), data.shape[0], [None, pa.py_buffer(data)])


def arrow_integers(values: npt.NDArray[Any], valid: npt.NDArray[np.bool_] | None = None) -> Any:
    """An int64 pyarrow array; null where ``valid`` is False."""
    import pyarrow as pa

    data = np.ascontiguousarray(values, dtype=np.int64)
    bitmap = None
    if valid is not None and not valid.all():
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(pa.int64(), data.shape[0], [bitmap, pa.py_buffer(data)])


def arrow_categories(texts: Sequence[str], picks: npt.ArrayLike) -> Any:
    """A dictionary-encoded pyarrow array whose row ``i`` is ``texts[picks[i]]``.

    Files get the categories as such: Parquet writes the indices as they are (a string
    per row would be hashed back into a dictionary: 30% of the writing time, measured),
    CSV and JSON Lines write the texts, pandas reads a category column.
    """
    import pyarrow as pa

    indices = np.ascontiguousarray(picks, dtype=np.int32)
    codes = pa.Array.from_buffers(pa.int32(), len(indices), [None, pa.py_buffer(indices)])
    return pa.DictionaryArray.from_arrays(codes, arrow_strings(texts))


def _check_text_size(size: int) -> None:
    if size >= 2**31:
        raise ValueError("more than 2 GiB of text in one chunk; use a smaller --chunk-rows")


def arrow_strings(texts: Sequence[str]) -> Any:
    """A pyarrow string array of ``texts``."""
    import pyarrow as pa

    encoded = [text.encode() for text in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    data = b"".join(encoded)
    _check_text_size(int(offsets[-1]))
    return pa.StringArray.from_buffers(
        len(encoded), pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)
    )
