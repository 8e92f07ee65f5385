"""Reading JSON Lines in chunks: one JSON object per line; blank lines are not rows. A file
holding one JSON array (``[{...}, {...}]``) is read too: each item is a row, streamed.

Each chunk of lines is parsed by pyarrow (fast, straight to Arrow). A chunk pyarrow
refuses (a line that is not JSON, a column whose type changes, nested values) is parsed
again line by line in Python, so a bad line rejects that line only. The columns are the
keys of the first lines; a key first seen later is reported in ``notes``, not kept.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from itertools import islice
from typing import IO, Any

import numpy as np

from scoring_core.errors import DataFileError
from scoring_core.io.readers import TEXT_SHOWN, Chunk, StreamReader, close_input

__all__ = ["JsonLinesReader"]

_FIRST_LINES = 1_000  # read to learn the columns


class JsonLinesReader(StreamReader):
    def __init__(self, name: str, stream: IO[bytes], path: str | None = None) -> None:
        self._stream = stream
        self._lines: Iterator[bytes] = stream
        self._next_row = 1
        self._first = list(islice(stream, _FIRST_LINES))
        if _starts_an_array(self._first):  # a JSON array of objects: its items are the rows
            self._lines = _array_items(name, _Rejoined(self._first, stream))
            self._first = list(islice(self._lines, _FIRST_LINES))
        objects, _, broken = _parse_lines(self._first, 1)
        if not objects and not broken:
            raise DataFileError(f"{name} is empty: no JSON lines to read", file=name)
        keys: dict[str, None] = {}
        for obj in objects:
            keys.update(dict.fromkeys(obj))
        super().__init__(name, list(keys), None)
        self._known = set(keys)
        self._watch(path, stream)

    def chunks(
        self, columns: Sequence[str], chunk_rows: int, numeric: Sequence[str] = ()
    ) -> Iterator[Chunk]:
        wanted = [c for c in self.columns if c in set(columns)]
        lines = self._first + list(islice(self._lines, max(chunk_rows - len(self._first), 0)))
        self._first = []
        while lines:
            self.check_unchanged()
            yield self._chunk(lines, wanted)
            lines = list(islice(self._lines, chunk_rows))
        self.check_unchanged()

    def _chunk(self, lines: list[bytes], wanted: list[str]) -> Chunk:
        first = self._next_row
        table = _arrow_table(lines)
        if table is not None:
            self._next_row += table.num_rows
            self._note_new_keys(table.column_names, first)
            rows = np.arange(first, self._next_row, dtype=np.int64)
            return Chunk(_select(table, wanted), rows)
        objects, numbers, broken = _parse_lines(lines, first)
        self._next_row = first + len(objects) + len(broken)
        for obj, row in zip(objects, numbers, strict=True):
            if not obj.keys() <= self._known:
                self._note_new_keys(list(obj), row)
        return Chunk(_python_table(objects, wanted), np.array(numbers, dtype=np.int64), broken)

    def _note_new_keys(self, keys: Sequence[str], row: int) -> None:
        for key in keys:
            if key not in self._known:
                self._known.add(key)
                self.notes.append(
                    f"key {key!r} first appears at or after row {row}, after the columns were "
                    "fixed from the first rows; it is not in the output"
                )

    def close(self) -> None:
        close_input(self._stream)


def _starts_an_array(lines: list[bytes]) -> bool:
    for line in lines:
        text = line.lstrip(b"\xef\xbb\xbf \t\r\n")
        if text:
            return text.startswith(b"[")
    return False


class _Rejoined(io.RawIOBase):
    """The lines already read, then the rest of ``stream``, as one binary file again."""

    def __init__(self, lines: list[bytes], stream: IO[bytes]) -> None:
        super().__init__()
        self._head = b"".join(lines)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(view))
        view[: len(data)] = data
        return len(data)


def _array_items(name: str, source: _Rejoined) -> Iterator[bytes]:
    """Each item of the JSON array in ``source`` as a line of JSON, streamed (ijson), so
    the array is never held whole."""
    import ijson

    try:
        for item in ijson.items(source, "item", use_float=True):
            yield json.dumps(item, ensure_ascii=False).encode() + b"\n"
    except ijson.JSONError as exc:
        raise DataFileError(
            f"cannot read {name}: it holds a JSON array that is not valid JSON ({exc}); "
            "fix the file, or write it as JSON Lines (one object per line)",
            file=name,
        ) from None


def _arrow_table(lines: list[bytes]) -> Any:
    """The lines parsed by pyarrow, or None when it refuses them or nests values."""
    import pyarrow as pa
    import pyarrow.json as pj

    data = b"".join(lines)
    try:
        table = pj.read_json(
            io.BytesIO(data),
            read_options=pj.ReadOptions(use_threads=False, block_size=max(len(data), 1 << 20)),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if table.num_rows != sum(1 for line in lines if line.strip()):
        return None  # be safe: every non-blank line must be a row
    if any(pa.types.is_nested(field.type) for field in table.schema):
        return None
    return table


def _select(table: Any, wanted: list[str]) -> Any:
    import pyarrow as pa

    columns = [
        table.column(name) if name in table.column_names else pa.nulls(table.num_rows)
        for name in wanted
    ]
    return pa.Table.from_arrays(columns, names=wanted)


def _parse_lines(
    lines: list[bytes], first_row: int
) -> tuple[list[dict[str, Any]], list[int], list[tuple[int, str]]]:
    objects: list[dict[str, Any]] = []
    rows: list[int] = []
    broken: list[tuple[int, str]] = []
    row = first_row
    for line in lines:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:  # includes UnicodeDecodeError
            text = line.decode("utf-8", "replace").strip()[:TEXT_SHOWN]
            broken.append((row, f"is not valid JSON ({exc}): {text!r}"))
        else:
            if isinstance(obj, dict):
                objects.append(obj)
                rows.append(row)
            else:
                broken.append((row, f"is a JSON {type(obj).__name__}, not an object"))
        row += 1
    return objects, rows, broken


def _python_table(objects: list[dict[str, Any]], names: Sequence[str]) -> Any:
    import pyarrow as pa

    arrays = []
    for name in names:
        values = [obj.get(name) for obj in objects]
        nested = any(isinstance(v, dict | list) for v in values)
        kinds = {type(v) for v in values if v is not None}
        try:
            if nested:
                raise TypeError("nested values are kept as JSON text")
            if bool in kinds and len(kinds) > 1:  # pa.array reads [0.5, true] as [0.5, 1.0]
                raise TypeError("booleans beside other values are kept as JSON text")
            arrays.append(pa.array(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):  # as text
            texts = [v if v is None or isinstance(v, str) else json.dumps(v) for v in values]
            arrays.append(pa.array(texts, pa.string()))
    return pa.Table.from_arrays(arrays, names=list(names))
