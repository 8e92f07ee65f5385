"""Metrics in Prometheus text format, in a file: what a batch job hands to a node
exporter's textfile collector or a Pushgateway (``scoring score --metrics FILE``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scoring_core.engine import Engine
    from scoring_core.experiments.experiment import Experiment

__all__ = ["write_textfile", "written_at_exit"]


def write_textfile(path: str | Path, *sources: Engine | Experiment) -> None:
    """Write the metrics of ``sources`` (engines, and experiments with all their chains) to
    ``path`` in Prometheus text format, atomically (prometheus_client's
    ``write_to_textfile``: a temporary file beside it, then a rename)."""
    from scoring_core.engine import Engine
    from scoring_core.metrics import collector

    registry = collector.CollectorRegistry(auto_describe=True)
    for source in sources:
        if isinstance(source, Engine):
            collector.register(source, registry)
        else:
            from scoring_core.metrics.experiments import register_experiment

            register_experiment(source, registry)
    collector.write_to_textfile(str(path), registry)


@contextlib.contextmanager
def written_at_exit(source: Engine | Experiment, path: str | Path | None) -> Iterator[None]:
    """Write the metrics of ``source`` (an engine, or an experiment with all its chains) to
    ``path`` when the block ends, even when it raises an error (a failed job's counts
    matter most), but not on Ctrl-C; nothing when ``path`` is None. An experiment's
    exposure log and shadow finish first, so their counts are final.

    prometheus_client is imported on entering, so a missing ``serve`` extra stops the
    job before it scores anything.
    """
    if path is None:
        yield
        return
    from scoring_core.metrics import collector  # noqa: F401  (MissingExtraError now)

    def write() -> None:
        finish = getattr(source, "finish_background", None)
        if finish is not None:
            finish()
        write_textfile(path, source)

    try:
        yield
    except Exception as exc:
        try:
            write()
        except Exception as error:
            exc.add_note(f"also, the metrics could not be written to {path}: {error}")
        raise
    write()
