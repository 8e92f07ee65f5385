"""Reading CSV, JSON Lines and Parquet files in chunks of rows, so memory stays flat.

Each chunk is a pyarrow Table with the 1-based number of each of its rows (a CSV header is
not a row). Rows that cannot even be parsed (a CSV line with the wrong number of fields,
a line that is not a JSON object) are not dropped: they come in ``Chunk.broken`` with
their row number, for the caller's rejects file.
"""

from __future__ import annotations

import abc
import csv
import io
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from scoring_core.errors import DataFileError
from scoring_core.io.formats import STDIO

__all__ = [
    "TEXT_SHOWN",
    "Chunk",
    "CsvReader",
    "ParquetReader",
    "StreamReader",
    "TableReader",
    "close_input",
]

_CSV_BLOCK_BYTES = 1 << 20  # pyarrow's streaming CSV parser is fastest around 1 MB (measured)
TEXT_SHOWN = 120


@dataclass
class Chunk:
    """Rows read from a file: the parsed ones in ``table``, the unparseable ones in ``broken``.

    ``rows[i]`` is the row number of ``table`` row ``i``; ``broken`` holds
    ``(row number, what is wrong)`` for each row that could not be parsed.
    """

    table: Any  # pyarrow.Table
    rows: npt.NDArray[np.int64]
    broken: list[tuple[int, str]] = field(default_factory=list)


class TableReader(abc.ABC):
    """An open input file; :meth:`chunks` reads it once, front to back."""

    def __init__(self, name: str, columns: Sequence[str], total_rows: int | None) -> None:
        self.name = name
        self.columns = tuple(columns)
        self.total_rows = total_rows  # None when only reading tells
        self.notes: list[str] = []  # what the summary should mention
        self._watched: tuple[str, int, os.stat_result] | None = None

    def _watch(self, path: str | None, stream: Any) -> None:
        """Remember what the open file ``stream`` of ``path`` is, to notice a change."""
        if path is not None and path != STDIO:
            descriptor = stream.fileno()
            self._watched = (path, descriptor, os.fstat(descriptor))

    def check_unchanged(self) -> None:
        """Raise DataFileError when the input changed since it was opened: written to
        (its size or times moved), or replaced or removed at its path. A run reads each
        input through one open file, and refuses one that changes under it, rather than
        score a mix of two files."""
        if self._watched is None:
            return
        path, descriptor, before = self._watched
        now = os.fstat(descriptor)
        try:
            replaced = not os.path.samestat(os.stat(path), now)
        except OSError:
            replaced = True
        what = "was replaced or removed at its path" if replaced else ""
        if (now.st_size, now.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            grew = f" ({before.st_size:,} -> {now.st_size:,} bytes)"
            what = "was written to" + (grew if now.st_size != before.st_size else "")
        if what:
            raise DataFileError(
                f"{self.name} {what} while it was being read; the run is stopped and no "
                "output is written. Score a copy that nothing writes to, or wait until the "
                "writer has finished",
                file=self.name,
            )

    @abc.abstractmethod
    def chunks(
        self, columns: Sequence[str], chunk_rows: int, numeric: Sequence[str] = ()
    ) -> Iterator[Chunk]:
        """Chunks of about ``chunk_rows`` rows holding ``columns`` (those present);
        ``numeric`` names the columns meant to hold numbers (a hint for text formats)."""

    def empty_table(self, columns: Sequence[str], numeric: Sequence[str] = ()) -> Any:
        """A table without rows holding ``columns``, typed as :meth:`chunks` would type
        them: float64 for the ``numeric`` ones, text for the others."""
        import pyarrow as pa

        fields = [pa.field(c, pa.float64() if c in numeric else pa.string()) for c in columns]
        return pa.schema(fields).empty_table()

    def progress(self, rows_done: int) -> tuple[int, int | None]:
        """How far reading is, as ``(done, total)``: rows when the file says how many it
        has (Parquet), else bytes of a regular file; ``total`` is None when unknown."""
        return rows_done, self.total_rows

    def close(self) -> None:  # noqa: B027 - a reader with nothing to release keeps this
        """Release the file (readers that hold one override this)."""


class StreamReader(TableReader):
    """A reader of a byte stream; progress is the stream's position in a regular file."""

    _stream: IO[bytes]

    def progress(self, rows_done: int) -> tuple[int, int | None]:
        try:
            descriptor = self._stream.fileno()
            size = os.fstat(descriptor).st_size
            position = os.lseek(descriptor, 0, os.SEEK_CUR)  # no lock: the reader may be busy
        except (OSError, ValueError, io.UnsupportedOperation):
            return rows_done, None
        return (position, size) if size > 0 else (rows_done, None)


def close_input(stream: IO[bytes]) -> None:
    if stream is not sys.stdin.buffer:
        stream.close()


def _arrow_error(name: str, exc: Exception, where: str = "") -> DataFileError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DataFileError(f"cannot read {name}{where}: {text}", file=name)


class CsvReader(StreamReader):
    """CSV with a header line. Columns other than the numeric ones are read as text, exactly
    as written (ids such as ``007`` survive).

    The numeric columns are first parsed as float64 by pyarrow while it reads (fast). The
    first cell that does not parse (``abc``, `` 0.5``), or a row with the wrong number of
    fields, makes pyarrow fail a whole block; the reader then starts again from the last
    chunk it delivered, reading those columns as text to be checked cell by cell (slower,
    but one bad cell rejects one row). A quoted cell holding a line break that straddles
    pyarrow's read blocks makes it start again the same way, with pyarrow's chunking for
    such cells on. Both read again through the same open file (never the path), and a file
    that changed meanwhile is refused. Standard input cannot be read twice: it is always
    read the careful way, with quoted line breaks allowed.
    """

    def __init__(self, name: str, stream: IO[bytes], path: str | None) -> None:
        header = stream.readline()
        if not header.strip():
            kind = "is empty (0 bytes)" if not header else "starts with an empty line"
            raise DataFileError(f"{name} {kind}; expected a CSV header line", file=name)
        try:
            text = header.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DataFileError(
                f"{name}: the header line is not UTF-8 ({exc})", file=name
            ) from None
        if "\r" in text.rstrip("\r\n"):
            raise DataFileError(
                f"{name}: the header line has a carriage return (\\r) before its end, so the "
                "file mixes line endings; convert it to one kind (\\n or \\r\\n)",
                file=name,
            )
        try:
            names = next(csv.reader([text]))
        except csv.Error as exc:
            raise DataFileError(f"{name}: cannot read the header line ({exc})", file=name) from None
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise DataFileError(
                f"{name}: column {duplicates[0]!r} appears more than once in the header",
                file=name,
                column=duplicates[0],
            )
        super().__init__(name, names, None)
        self._stream = stream
        self._path = path
        self._data_start = len(header)  # where the rows begin, to read them again
        # Quoted line breaks in cells need pyarrow's slower chunking (about 20% slower,
        # measured): on for standard input (it cannot be read again), otherwise turned on
        # when pyarrow finds a cell spanning two of its blocks.
        self._newlines_in_values = path is None
        self._watch(path, stream)

    def chunks(
        self, columns: Sequence[str], chunk_rows: int, numeric: Sequence[str] = ()
    ) -> Iterator[Chunk]:
        numbering = _RowNumbering()
        fast = self._path is not None and bool(numeric)
        while True:
            try:
                yield from self._read(columns, chunk_rows, numeric if fast else (), numbering)
                self.check_unchanged()
                return
            except _ReadAgainError as again:
                if again.multiline:
                    self._newlines_in_values = True
                else:
                    fast = False
                numbering.pending.clear()  # found again when those rows are read again
                # the same open file, from its first row: never the path again
                self.check_unchanged()
                self._stream.seek(self._data_start)

    def _read(
        self,
        columns: Sequence[str],
        chunk_rows: int,
        numeric: Sequence[str],
        numbering: _RowNumbering,
    ) -> Iterator[Chunk]:
        import pyarrow as pa
        import pyarrow.csv as pcsv

        def read_again(exc: Exception) -> _ReadAgainError | None:
            if "out of sync with chunker" in str(exc) and not self._newlines_in_values:
                return _ReadAgainError(multiline=True)  # in case a cut was not foreseen
            return _ReadAgainError(multiline=False) if numeric else None

        def invalid_row(row: Any) -> str:
            if numeric:  # pyarrow then fails the block: read again, carefully
                return "error"
            text = row.text if len(row.text) <= TEXT_SHOWN else row.text[:TEXT_SHOWN] + "..."
            why = f"has {row.actual_columns} fields, expected {row.expected_columns}: {text!r}"
            numbering.pending.append((int(row.number), why))
            return "skip"

        types = {c: pa.float64() if c in numeric else pa.string() for c in self.columns}
        source: Any = self._stream
        if not self._newlines_in_values:
            source = _QuotedLineBreaks(self._stream)
        try:
            reader = pcsv.open_csv(
                source,
                read_options=pcsv.ReadOptions(
                    column_names=list(self.columns),
                    skip_rows_after_names=numbering.next_row - 1,  # rows already delivered
                    use_threads=False,  # with threads, pyarrow cannot number malformed rows
                    block_size=_CSV_BLOCK_BYTES,
                ),
                parse_options=pcsv.ParseOptions(
                    invalid_row_handler=invalid_row, newlines_in_values=self._newlines_in_values
                ),
                convert_options=pcsv.ConvertOptions(
                    column_types=types,
                    include_columns=[c for c in self.columns if c in set(columns)],
                    strings_can_be_null=False,
                    null_values=[""],  # only an empty cell is missing; "NaN" is NaN
                ),
            )
        except _QuotedLineBreakError:
            raise _ReadAgainError(multiline=True) from None
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc):  # a header and nothing else
                return
            again = read_again(exc)
            if again is not None:
                raise again from None
            raise _arrow_error(self.name, exc) from None
        pending: list[Any] = []
        pending_rows = 0
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except _QuotedLineBreakError:
                raise _ReadAgainError(multiline=True) from None
            except (pa.ArrowInvalid, OSError) as exc:
                again = read_again(exc) if isinstance(exc, pa.ArrowInvalid) else None
                if again is not None:
                    raise again from None
                raise _arrow_error(self.name, exc, f" after row {numbering.next_row - 1}") from None
            pending.append(batch)
            pending_rows += batch.num_rows
            if pending_rows >= chunk_rows:
                self.check_unchanged()
                yield numbering.chunk(pa.Table.from_batches(pending), last=False)
                pending, pending_rows = [], 0
        if pending or numbering.pending:
            table = pa.Table.from_batches(pending, schema=reader.schema)
            yield numbering.chunk(table, last=True)

    def close(self) -> None:
        close_input(self._stream)


class _QuotedLineBreakError(Exception):
    """The bytes just read hold a line break inside a quoted cell."""


class _QuotedLineBreaks(io.RawIOBase):
    """``stream``, read by pyarrow block by block, raising :class:`_QuotedLineBreakError`
    before pyarrow parses a block it would cut inside a quoted cell.

    Without ``newlines_in_values``, pyarrow parses quoted line breaks inside a block
    correctly, but cuts each block it reads at its last line break: when that one is
    inside quotes, the row is split (an error, or a silently misread next block). A line
    break is inside quotes when an odd number of quote characters precede it (a quote in
    a quoted cell is doubled, RFC 4180, so it does not change the count). A block without
    quotes costs one ``memchr``, one with quotes about 0.35 ms per MB (numpy counts).
    """

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__()
        self._stream = stream
        self._odd = 0  # 1 while the bytes read so far hold an odd number of quotes

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._check(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)

    def _check(self, data: bytes) -> None:
        cut = max(data.rfind(b"\n"), data.rfind(b"\r"))  # where pyarrow cuts this block
        if b'"' not in data:
            if self._odd and cut >= 0:
                raise _QuotedLineBreakError()
            return
        quotes = np.frombuffer(data, dtype=np.uint8) == ord('"')
        before = int(np.count_nonzero(quotes[:cut])) if cut > 0 else 0
        if cut >= 0 and (self._odd + before) & 1:
            raise _QuotedLineBreakError()
        self._odd = (self._odd + before + int(np.count_nonzero(quotes[max(cut, 0) :]))) & 1


class _ReadAgainError(Exception):
    """Read the rows not yet delivered again: carefully (the fast pass met a cell or a row
    it cannot take), or with quoted line breaks in cells (``multiline``)."""

    def __init__(self, *, multiline: bool) -> None:
        self.multiline = multiline
        super().__init__()


class _RowNumbering:
    """Numbers CSV rows 1, 2, ... giving malformed rows (in ``pending``) their own numbers."""

    def __init__(self) -> None:
        self.next_row = 1
        self.pending: list[tuple[int, str]] = []

    def chunk(self, table: Any, *, last: bool) -> Chunk:
        n = table.num_rows
        known = sorted(self.pending)
        candidates = np.arange(self.next_row, self.next_row + n + len(known), dtype=np.int64)
        if known:
            candidates = candidates[~np.isin(candidates, [row for row, _ in known])]
        rows = candidates[:n]
        end = int(rows[-1]) if n else self.next_row - 1
        broken = known if last else [b for b in known if b[0] < end]
        self.pending = [b for b in known if b not in broken]
        self.next_row = max([end, *(row for row, _ in broken)]) + 1
        return Chunk(table, rows, broken)


class ParquetReader(TableReader):
    """Parquet, one batch at a time. Memory also grows with the file's row-group size:
    pyarrow decodes a row group's column chunks whole."""

    def __init__(self, name: str, path: str) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        source: Any
        if path == STDIO:  # Parquet keeps its index at the end: read the pipe into memory
            source = pa.BufferReader(sys.stdin.buffer.read())
        else:  # one open file for the whole run, watched for changes
            try:
                source = pa.OSFile(path)
            except OSError as exc:
                raise DataFileError(f"cannot open {name}: {exc}", file=path) from None
        self._source = source
        try:
            # No pre-buffering: it holds a whole row group's bytes (measured: more memory,
            # no faster here). A small read buffer per column: 1 MiB each held 40 MB more
            # for a 40-column file.
            self._file = pq.ParquetFile(source, pre_buffer=False, buffer_size=1 << 16)
        except (pa.ArrowInvalid, OSError) as exc:
            source.close()
            raise DataFileError(
                f"cannot read {name} as Parquet: {str(exc).strip()} (is it truncated, or not "
                "a Parquet file? --input-format chooses another format)",
                file=name,
            ) from None
        names = self._file.schema_arrow.names
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            self.close()
            raise DataFileError(
                f"{name}: column {duplicates[0]!r} appears more than once in the Parquet "
                "file, so its values cannot be told apart; write the file with unique "
                "column names",
                file=name,
                column=duplicates[0],
            )
        super().__init__(name, names, self._file.metadata.num_rows)
        if path != STDIO:
            self._watch(path, source)

    def chunks(
        self, columns: Sequence[str], chunk_rows: int, numeric: Sequence[str] = ()
    ) -> Iterator[Chunk]:
        import pyarrow as pa

        wanted = [c for c in self.columns if c in set(columns)]
        next_row = 1
        # One thread: the reader already runs beside the scoring workers, and pyarrow's
        # decoding threads each keep allocator pages (measured: +25 MB, no faster overall).
        batches = self._file.iter_batches(batch_size=chunk_rows, columns=wanted, use_threads=False)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                self.check_unchanged()
                return
            except (pa.ArrowInvalid, OSError) as exc:
                self.check_unchanged()  # a file cut short under the run says so
                raise _arrow_error(self.name, exc, f" after row {next_row - 1}") from None
            self.check_unchanged()
            rows = np.arange(next_row, next_row + batch.num_rows, dtype=np.int64)
            next_row += batch.num_rows
            yield Chunk(pa.Table.from_batches([batch]), rows)

    def empty_table(self, columns: Sequence[str], numeric: Sequence[str] = ()) -> Any:
        schema = self._file.schema_arrow
        return schema.empty_table().select(list(columns))

    def close(self) -> None:
        self._file.close()
        self._source.close()
