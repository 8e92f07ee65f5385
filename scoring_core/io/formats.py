"""File formats, their detection, and checking where an output may be written."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from scoring_core.errors import DataFileError

__all__ = [
    "FORMATS",
    "STDIO",
    "DataFileError",
    "check_target",
    "display_name",
    "format_of",
    "require_pyarrow",
]

FORMATS = ("csv", "jsonl", "parquet")
STDIO = "-"
ALIASES = {"json": "jsonl", "ndjson": "jsonl", "pq": "parquet"}
_EXTENSIONS = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def require_pyarrow() -> None:
    """Fail with the reinstall command when pyarrow (a dependency) cannot be imported."""
    try:
        import pyarrow  # noqa: F401
    except ImportError as exc:
        raise DataFileError(
            "reading and writing CSV, JSON Lines and Parquet files needs pyarrow, which is "
            "missing from this environment although scoring-core depends on it "
            f"({type(exc).__name__}: {exc}); reinstall: "
            "pip install --force-reinstall scoring-core"
        ) from None
    from scoring_core import process

    process.give_back_variables()


def check_target(path: str, *, what: str, source: str) -> None:
    """Refuse, before any work, to write ``what`` to ``path`` where it cannot or must not go.

    A folder, a folder that does not exist, and the input ``source`` itself (a path, or
    standard input redirected from that file), which the run would replace with its
    output, are refused with the reason; so is a path the system cannot look at.
    """
    if path == STDIO:
        return
    try:
        same = _check_target(Path(path), source)
    except DataFileError as exc:
        raise DataFileError(f"cannot write the {what} to {path}: {exc}", file=path) from None
    except (OSError, RuntimeError) as exc:  # no permission to look; a symlink loop
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DataFileError(f"cannot write the {what} to {path}: {reason}", file=path) from None
    if same:
        choose = "; choose it with --rejects" if what == "rejects file" else ""
        raise DataFileError(
            f"cannot write the {what} to {path}: it is the input file, which the run would "
            f"replace; name another file{choose}",
            file=path,
        )


def _check_target(target: Path, source: str) -> bool:
    """Raise DataFileError (the reason alone) for a folder or a missing folder; True when
    ``target`` is the input ``source``."""
    if target.is_dir():
        raise DataFileError("it is a folder; name a file")
    # The file is written next to ``target`` and renamed onto it: its own folder counts
    # (not a symlink's destination).
    folder = Path(os.path.abspath(target)).parent
    if not folder.is_dir():
        raise DataFileError(f"there is no folder {folder}")
    if not target.exists():
        return False
    if not target.is_file():  # a device or a FIFO is written to, never replaced
        return False
    if source != STDIO:
        return target.samefile(source)
    try:  # standard input redirected from the file (`- -o in.csv < in.csv`)
        return os.path.samestat(os.fstat(sys.stdin.fileno()), target.stat())
    except (AttributeError, OSError, ValueError):  # no real standard input
        return False


def display_name(path: str) -> str:
    return "<stdin>" if path == STDIO else path


def format_of(path: str, given: str | None = None) -> str | None:
    """The format of ``path``: ``given`` (or its alias) when set, else from the extension;
    None when neither tells."""
    if given is not None:
        return ALIASES.get(given.lower(), given.lower())
    suffix = Path(path).suffix.lower() if path != STDIO else ""
    return _EXTENSIONS.get(suffix)
