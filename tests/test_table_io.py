"""The pyarrow arrays ``scoring score`` builds for its output columns, and its writer."""

from __future__ import annotations

import io
import types
from typing import Any

import numpy as np
import pytest

from scoring_core.io import TableWriter, arrow_categories

NAMES = ["neural", "formula", "on_exhausted", "règle", ""]


@pytest.mark.parametrize(
    "picks",
    [
        [0, 1, 2, 3, 4, 1, 0, 3],  # every text, mixed
        [0] * 1000,  # no row fell back
        [3, 3, 3],  # one text, not the first
        [4, 4],  # the empty text
        [2],
        [],
    ],
)
def test_each_row_gets_the_text_its_index_picks(picks: list[int]) -> None:
    array = arrow_categories(NAMES, np.array(picks, dtype=np.int64))
    array.validate(full=True)
    assert array.to_pylist() == [NAMES[i] for i in picks]
    assert array.dictionary.to_pylist() == NAMES


class ShortWrites(io.RawIOBase):
    """Standard output's buffer as a full disk or a slow pipe can make it: each write
    takes at most 1,000 bytes and says so in its count, without an error."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        taken = bytes(memoryview(data))[:1000]
        self.data += taken
        return len(taken)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_the_writer_writes_everything_when_a_write_falls_short(
    fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow as pa

    table = pa.table({"id": [f"row-{i}" for i in range(5_000)], "score": np.linspace(0, 1, 5_000)})
    sink = ShortWrites()
    monkeypatch.setattr("sys.stdout", types.SimpleNamespace(buffer=sink))
    writer = TableWriter("-", fmt, table.schema)
    writer.write(table)
    writer.close(keep=True)
    assert len(sink.data) > 50_000
    if fmt == "parquet":
        import pyarrow.parquet as pq

        assert pq.read_table(pa.BufferReader(bytes(sink.data))).equals(table)
    else:
        lines = bytes(sink.data).decode().splitlines()
        assert len(lines) == 5_000 + (fmt == "csv")  # the CSV header
        assert '"row-4999"' in lines[-1]
