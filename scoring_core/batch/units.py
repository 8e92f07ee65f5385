"""The unit column of ``scoring score --experiment``: one unit id per scored row.

A row whose unit id is empty or missing is rejected like a row with a bad feature (the
rejects file names the unit column), never scored under a made-up unit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from scoring_core.features.schema import PreparedBatch
from scoring_core.io import Chunk, arrow_categories

if TYPE_CHECKING:
    from scoring_core.batch.tables import Reject

__all__ = ["VARIANT_COLUMN", "split_units", "variant_column"]

VARIANT_COLUMN = "variant"


def split_units(
    chunk: Chunk, prepared: PreparedBatch, field: str
) -> tuple[PreparedBatch, list[str], list[Reject]]:
    """The prepared rows that have a unit id, their ids, and a reject for each that has none."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = pc.cast(chunk.table.column(field), pa.string())
    picked = column.take(pa.array(prepared.rows, type=pa.int64())).to_pylist()
    good = np.array([bool(u) for u in picked], dtype=bool)
    rejects: list[Reject] = [
        (int(chunk.rows[position]), int(position), field, "an empty unit id")
        for position in prepared.rows[~good].tolist()
    ]
    if good.all():
        return prepared, picked, rejects
    defaults = prepared.defaults_used
    kept = PreparedBatch(
        X=prepared.X[good],
        rows=prepared.rows[good],
        errors=prepared.errors,
        defaults_used=None
        if defaults is None
        else tuple(d for d, ok in zip(defaults, good.tolist(), strict=True) if ok),
    )
    return kept, [u for u, ok in zip(picked, good.tolist(), strict=True) if ok], rejects


def variant_column(variants: Any) -> Any:
    """The ``variant`` column: the variant's name, empty for a unit outside coverage."""
    names = [str(v) if v is not None else "" for v in variants.tolist()]
    texts = sorted(set(names))
    lookup = {text: i for i, text in enumerate(texts)}
    return arrow_categories(texts, np.array([lookup[n] for n in names], dtype=np.int32))
