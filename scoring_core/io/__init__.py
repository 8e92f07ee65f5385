"""Row files: CSV, JSON Lines and Parquet, read and written in chunks.

pyarrow, a dependency, is imported inside the functions that need it, so that
``import scoring_core`` stays fast.
"""

from scoring_core.features.numbers import column_numbers, feature_matrix
from scoring_core.io.formats import (
    FORMATS,
    STDIO,
    DataFileError,
    check_target,
    display_name,
    format_of,
    require_pyarrow,
)
from scoring_core.io.readers import Chunk, TableReader
from scoring_core.io.sources import open_reader
from scoring_core.io.targets import is_stream, open_stream
from scoring_core.io.writers import (
    TableWriter,
    arrow_categories,
    arrow_integers,
    arrow_numbers,
    arrow_strings,
)

__all__ = [
    "FORMATS",
    "STDIO",
    "Chunk",
    "DataFileError",
    "TableReader",
    "TableWriter",
    "arrow_categories",
    "arrow_integers",
    "arrow_numbers",
    "arrow_strings",
    "check_target",
    "column_numbers",
    "display_name",
    "feature_matrix",
    "format_of",
    "is_stream",
    "open_reader",
    "open_stream",
    "require_pyarrow",
]
