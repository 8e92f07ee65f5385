"""Row files for the command line: CSV, JSON Lines and Parquet, read and written in chunks.

pyarrow (the optional extra ``files``) is imported inside the functions that need it.
"""

from scoring_core.table_io.formats import (
    FORMATS,
    STDIO,
    DataFileError,
    check_target,
    display_name,
    file_format,
    require_pyarrow,
)
from scoring_core.table_io.numbers import column_numbers, feature_matrix
from scoring_core.table_io.pipeline import WriteBehind, map_in_order, read_ahead
from scoring_core.table_io.readers import Chunk, TableReader, open_reader
from scoring_core.table_io.writers import (
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
    "WriteBehind",
    "arrow_categories",
    "arrow_integers",
    "arrow_numbers",
    "arrow_strings",
    "check_target",
    "column_numbers",
    "display_name",
    "feature_matrix",
    "file_format",
    "map_in_order",
    "open_reader",
    "read_ahead",
    "require_pyarrow",
]
