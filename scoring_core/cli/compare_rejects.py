"""The rejected rows of ``scoring compare``: a rejects file like ``scoring score``'s (``row``,
``column``, ``error``), and their reasons counted for the report."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scoring_core.batch.tables import Reject
    from scoring_core.io import TableWriter

__all__ = ["CompareRejects", "default_compare_rejects_path"]

# "feature 'a' is 'x', not a number" and "... is 7.0, outside ..." differ only by the value.
_VALUE = re.compile(r"(?<= is )('(?:[^'\\]|\\.)*'|[-+]?(?:\d[\d.eE+-]*|nan|inf))")
# The reasons a report lists; the rest are counted together.
SHOWN_REASONS = 5


def default_compare_rejects_path(input_path: str) -> str:
    """``data/rows.csv`` -> ``data/rows.compare-rejects.csv``, next to the input (stdin:
    ``compare-rejects.csv`` in this folder); CSV whatever the input's format."""
    if input_path == "-":
        return "compare-rejects.csv"
    path = Path(input_path)
    return str(path.with_name(f"{path.stem}.compare-rejects.csv"))


def _kind(why: str) -> str:
    return _VALUE.sub("…", why, count=1)


class CompareRejects:
    """The rejects file, opened at the first rejected row (or, when ``always``, written even
    with no row: a file named by ``--rejects`` is never left stale); the reasons, counted."""

    def __init__(self, path: str, *, always: bool = False) -> None:
        self.path = path
        self.always = always
        self.rows = 0
        self._writer: TableWriter | None = None
        self._reasons: dict[tuple[str, str], int] = {}

    def add(self, rejects: list[Reject]) -> None:
        if not rejects:
            return
        table = _table(rejects)
        self._open(table.schema).write(table)
        self.rows += len(rejects)
        for reject in rejects:
            key = (reject[2], _kind(reject[3]))
            self._reasons[key] = self._reasons.get(key, 0) + 1

    def _open(self, schema: Any) -> TableWriter:
        from scoring_core.io import TableWriter

        if self._writer is None:
            fmt = "parquet" if self.path.endswith((".parquet", ".pq")) else "csv"
            if self.path.endswith((".jsonl", ".ndjson", ".json")):
                fmt = "jsonl"
            self._writer = TableWriter(self.path, fmt, schema)
        return self._writer

    def close(self, *, keep: bool) -> None:
        if self.always and keep and self._writer is None:
            self._open(_table([]).schema)
        if self._writer is not None:
            self._writer.close(keep=keep)

    @property
    def written(self) -> str | None:
        return self.path if self._writer is not None else None

    def reasons(self) -> list[dict[str, Any]]:
        """The reasons, most rows first: column, reason (the value left out), rows."""
        ranked = sorted(self._reasons.items(), key=lambda item: (-item[1], item[0]))
        return [{"column": c, "reason": why, "rows": n} for (c, why), n in ranked]

    def lines(self) -> list[str]:
        """What the report says of the rejected rows, on stderr."""
        if not self.rows:
            return []
        reasons = self.reasons()
        head = f"{self.rows:,} row(s) rejected, not compared -> {self.path} (row, column, error):"
        lines = [head]
        lines += [
            f"  {r['rows']:>8,}  {r['column'] or '(the row)'}: {r['reason']}"
            for r in reasons[:SHOWN_REASONS]
        ]
        rest = sum(r["rows"] for r in reasons[SHOWN_REASONS:])
        if rest:
            lines.append(f"  {rest:>8,}  other reasons (see {self.path})")
        return lines


def _table(rejects: list[Reject]) -> Any:
    import pyarrow as pa

    from scoring_core.batch.tables import REJECT_COLUMNS

    return pa.table(
        {
            REJECT_COLUMNS[0]: pa.array([r[0] for r in rejects], pa.int64()),
            REJECT_COLUMNS[1]: pa.array([r[2] for r in rejects], pa.string()),
            REJECT_COLUMNS[2]: pa.array([r[3] for r in rejects], pa.string()),
        }
    )
