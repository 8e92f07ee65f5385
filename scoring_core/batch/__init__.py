"""Chunked scoring of tables, shared by ``scoring score`` and the distributed adapters.

No command line here: :func:`~scoring_core.batch.run.score_table` reads chunks, scores
them through the chain on worker threads and writes the output and rejects in order.
"""

from scoring_core.batch.run import Counts, Progress, score_table
from scoring_core.batch.tables import (
    REJECT_COLUMNS,
    SCORE_COLUMNS,
    OutputFiles,
    check_columns,
    checked_rows,
    default_rejects_path,
    empty_output,
    open_input,
    output_table,
)

__all__ = [
    "REJECT_COLUMNS",
    "SCORE_COLUMNS",
    "Counts",
    "OutputFiles",
    "Progress",
    "check_columns",
    "checked_rows",
    "default_rejects_path",
    "empty_output",
    "open_input",
    "output_table",
    "score_table",
]
