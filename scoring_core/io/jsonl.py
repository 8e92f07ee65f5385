"""Reading JSON Lines in chunks: one JSON object per line; blank lines are not rows.

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
    def __init__(self, name: str, stream: IO[bytes]) -> None:
        self._stream = stream
        self._next_row = 1
        self._first = list(islice(stream, _FIRST_LINES))
        objects, _, broken = _parse_lines(self._first, 1)
        if not objects and not broken:
            raise DataFileError(f"{name} is empty: no JSON lines to read", file=name)
        keys: dict[str, None] = {}
        for obj in objects:
            keys.update(dict.fromkeys(obj))
        super().__init__(name, list(keys), None)
        self._known = set(keys)

    def chunks(
        self, columns: Sequence[str], chunk_rows: int, numeric: Sequence[str] = ()
    ) -> Iterator[Chunk]:
        wanted = [c for c in self.columns if c in set(columns)]
        lines = self._first + list(islice(self._stream, max(chunk_rows - len(self._first), 0)))
        self._first = []
        while lines:
            yield self._chunk(lines, wanted)
            lines = list(islice(self._stream, chunk_rows))

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
