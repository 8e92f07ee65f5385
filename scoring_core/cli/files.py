"""The file options of ``scoring score`` and ``scoring compare``: the formats, and
``--keep``, turned into what :mod:`scoring_core.batch` takes, or a usage error."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

import click

from scoring_core.batch.tables import SCORE_COLUMNS
from scoring_core.errors import did_you_mean
from scoring_core.io import FORMATS, STDIO, TableReader, check_target, format_of

if TYPE_CHECKING:
    from scoring_core.engine import Engine

__all__ = ["check_metrics_target", "file_format", "kept_columns"]


def file_format(path: str, given: str | None, *, role: str) -> str:
    """The format of ``path``: ``given`` (or its alias) when set, else from the extension."""
    found = format_of(path, given)
    if found is not None:
        return found
    what = f"standard {'input' if role == 'input' else 'output'}" if path == STDIO else repr(path)
    raise click.UsageError(
        f"cannot tell the {role} format of {what} from its extension; pass --{role}-format "
        f"(or --format): one of {', '.join(FORMATS)}"
    )


def check_metrics_target(
    metrics_path: str | None, *, source: str, others: Mapping[str, str | None]
) -> None:
    """Refuse ``--metrics FILE`` before any work where writing it would lose a file: a
    folder, the input, or another file of the run (``others``: what it is -> its path)."""
    if metrics_path is None:
        return
    check_target(metrics_path, what="metrics file", source=source)
    for what, other in others.items():
        if other is None or other == STDIO:
            continue
        same = os.path.abspath(metrics_path) == os.path.abspath(other)
        if not same and os.path.exists(metrics_path) and os.path.exists(other):
            same = os.path.samefile(metrics_path, other)  # a link, another spelling
        if same:
            raise click.UsageError(
                f"--metrics {metrics_path} is also the {what}, which the metrics would "
                "replace: name another file"
            )


def kept_columns(reader: TableReader, engine: Engine, keep: str | None) -> tuple[str, ...]:
    """The input columns copied to the output and the rejects file, from ``--keep``."""
    choice = (keep or "").strip()
    if keep is None:
        kept = tuple(c for c in reader.columns if c not in engine.feature_names)
    elif choice.lower() == "all":
        kept = reader.columns
    elif choice.lower() in ("none", ""):
        kept = ()
    else:
        kept = tuple(dict.fromkeys(c.strip() for c in choice.split(",") if c.strip()))
        for name in kept:
            if name not in reader.columns:
                raise click.BadParameter(
                    f"{reader.name} has no column {name!r}{did_you_mean(name, reader.columns)}",
                    param_hint="--keep",
                )
    clash = [c for c in kept if c in SCORE_COLUMNS]
    if clash:
        raise click.BadParameter(
            f"the input column {clash[0]!r} would clash with the output column of that name; "
            "choose the columns to keep, e.g. --keep id (or --keep none)",
            param_hint="--keep",
        )
    return kept
