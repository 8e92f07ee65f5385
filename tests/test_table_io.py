"""The pyarrow arrays ``scoring score`` builds for its output columns."""

from __future__ import annotations

import numpy as np
import pytest

from scoring_core.table_io import arrow_categories

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
