"""The files ``scoring models annotate`` reads: the feature names and the self-test rows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from scoring_core.errors import ConfigError, DataFileError, did_you_mean

__all__ = ["MAX_SELF_TEST_ROWS", "read_feature_names", "read_rows"]

MAX_SELF_TEST_ROWS = 1_000  # the rows travel inside the model file, as JSON
_YAML_SUFFIXES = (".yaml", ".yml")


def read_feature_names(path: Path) -> list[str]:
    """The names in a feature file: a YAML list of names or of ``{name, min, max}`` (what
    ``features:`` takes), or a text file with one name per line (``#`` starts a comment)."""
    from scoring_core.config.validate import load_feature_file
    from scoring_core.config.yaml import load_yaml_file

    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise ConfigError(f"the feature file {str(path)!r} {what}", file=str(path))
    if path.suffix.lower() in _YAML_SUFFIXES:
        data = load_yaml_file(path).data
        if isinstance(data, list) and data and all(isinstance(item, str) for item in data):
            names = [item.strip() for item in data]
        else:
            names = [feature.name for feature in load_feature_file(path)]
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the feature file: {exc}", file=str(path)) from None
        names = [line.split("#", 1)[0].strip() for line in text.splitlines()]
        names = [name for name in names if name]
    if not names or not all(names):
        raise ConfigError(
            "the feature file lists no feature names; write one name per line (or a YAML "
            "list of names)",
            file=str(path),
        )
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ConfigError(f"feature {name!r} is listed twice", file=str(path))
        seen.add(name)
    return names


def read_rows(rows_file: str, names: Sequence[str]) -> npt.NDArray[np.float32]:
    """The feature columns of ``rows_file``, by name, as float32 rows (every value a number)."""
    from scoring_core.io import column_numbers, format_of, open_reader, require_pyarrow

    require_pyarrow()
    fmt = format_of(rows_file, None)
    if fmt is None:
        raise DataFileError(
            f"cannot tell the format of the self-test rows {rows_file!r} from its extension; "
            "use .csv, .jsonl or .parquet",
            file=rows_file,
        )
    reader = open_reader(rows_file, fmt)
    try:
        missing = [name for name in names if name not in reader.columns]
        if missing:
            raise DataFileError(
                f"{reader.name} has no column {missing[0]!r}"
                f"{did_you_mean(missing[0], reader.columns)}: the self-test rows need every "
                f"feature as a column, by name ({len(missing)} missing)",
                file=rows_file,
                column=missing[0],
            )
        parts = []
        for chunk in reader.chunks(list(names), 4_096, numeric=list(names)):
            if chunk.broken:
                row, problem = chunk.broken[0]
                raise DataFileError(f"{reader.name}: row {row}: {problem}", file=rows_file)
            columns = []
            for name in names:
                with np.errstate(invalid="ignore"):
                    values, _, _ = column_numbers(chunk.table.column(name), name)
                values = np.asarray(values, dtype=np.float64)
                bad = np.flatnonzero(~np.isfinite(values))
                if bad.size:
                    raise DataFileError(
                        f"{reader.name}: row {int(chunk.rows[bad[0]])}: column {name!r} is not "
                        "a finite number; every self-test value must be one",
                        file=rows_file,
                        column=name,
                    )
                columns.append(values)
            parts.append(np.column_stack(columns).astype(np.float32))
            if sum(p.shape[0] for p in parts) > MAX_SELF_TEST_ROWS:
                raise DataFileError(
                    f"{reader.name} has more than {MAX_SELF_TEST_ROWS} rows; the self-test "
                    "travels inside the model file: pick a few rows (10 to 100 is plenty)",
                    file=rows_file,
                )
    finally:
        reader.close()
    if not parts or not sum(p.shape[0] for p in parts):
        raise DataFileError(f"{rows_file} has no rows for the self-test", file=rows_file)
    return np.ascontiguousarray(np.concatenate(parts))
