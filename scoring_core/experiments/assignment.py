"""GrowthBook's assignment: FNV-1a 32-bit hashes, bucket ranges and choosing a variant.

Written from GrowthBook's published algorithm (growthbook-python ``growthbook/core.py``:
``fnv1a32``, ``gbhash``, ``getBucketRanges``, ``chooseVariation``), so that a GrowthBook
SDK given the same key, seed, weights, coverage and hash version puts every unit in the
same variant. ``tests/test_experiment_assignment.py`` checks it against GrowthBook's own
test vectors and against the ``growthbook`` package on 10,000 units per setting.

- v1: ``fnv1a32(unit + seed) % 1000 / 1000`` (the unit comes first);
- v2: ``fnv1a32(str(fnv1a32(seed + unit))) % 10000 / 10000``.

FNV-1a runs over the string's code points (``ord`` of each character), as GrowthBook's
SDKs do, not over its UTF-8 bytes. For ASCII strings (where the two agree) the C
implementation of the ``fnv-hash-fast`` package is used when it is installed (extra
``experiments``): about 0.6 us per new unit here instead of about 4 us in pure Python.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = [
    "HASH_VERSIONS",
    "Assigner",
    "bucket_ranges",
    "choose_variant",
    "fnv1a32",
    "gb_hash",
]

HASH_VERSIONS = (1, 2)
_OFFSET = 0x811C9DC5
_PRIME = 0x01000193
_MASK = 0xFFFFFFFF

_fast_fnv: Callable[[bytes], int] | None
try:  # the C implementation, when the `experiments` extra is installed
    from fnv_hash_fast import fnv1a_32 as _fast_fnv
except ImportError:  # pragma: no cover - the tests install it, and test the fallback too
    _fast_fnv = None


def _fnv_from(state: int, text: str) -> int:
    for code in map(ord, text):
        state = ((state ^ code) * _PRIME) & _MASK
    return state


def fnv1a32(text: str) -> int:
    """The 32-bit FNV-1a hash of ``text``'s code points."""
    return _fnv_from(_OFFSET, text)


def gb_hash(seed: str, unit: str, version: int) -> float:
    """GrowthBook's bucket of ``unit`` under ``seed``: a float in [0, 1)."""
    if version == 2:
        return fnv1a32(str(fnv1a32(seed + unit))) % 10000 / 10000
    if version == 1:
        return fnv1a32(unit + seed) % 1000 / 1000
    raise ValueError(f"hash_version is 1 or 2, not {version!r}")


def bucket_ranges(weights: Sequence[float], coverage: float) -> list[tuple[float, float]]:
    """One ``[start, end)`` range per variant: variant ``i`` starts at the sum of the
    weights before it and covers ``coverage * weights[i]`` of it (GrowthBook's
    ``getBucketRanges`` for weights that are already valid)."""
    ranges = []
    cumulative = 0.0
    for weight in weights:
        start = cumulative
        cumulative += weight
        ranges.append((start, start + coverage * weight))
    return ranges


def choose_variant(bucket: float, ranges: Sequence[tuple[float, float]]) -> int:
    """The index of the range holding ``bucket`` (start inclusive, end exclusive), or -1."""
    for index, (start, end) in enumerate(ranges):
        if start <= bucket < end:
            return index
    return -1


class Assigner:
    """Assignment for one experiment: ``assign(unit) -> (variant index or -1, bucket)``.

    The FNV state after the seed is computed once for v2, where the seed comes first, so
    a call hashes only the unit's characters and the (at most 10) digits of the first hash.
    """

    __slots__ = ("_fast", "_ranges", "_seed", "_seed_state", "version")

    def __init__(
        self,
        seed: str,
        weights: Sequence[float],
        coverage: float,
        version: int,
        *,
        fast: bool = True,
    ) -> None:
        if version not in HASH_VERSIONS:
            raise ValueError(f"hash_version is 1 or 2, not {version!r}")
        self._fast = _fast_fnv if fast and seed.isascii() else None
        self._seed = seed
        self._seed_state = _fnv_from(_OFFSET, seed)
        self._ranges = tuple(bucket_ranges(weights, coverage))
        self.version = version

    @property
    def ranges(self) -> tuple[tuple[float, float], ...]:
        return self._ranges

    def bucket(self, unit: str) -> float:
        fast = self._fast
        if fast is not None and unit.isascii():
            if self.version == 2:
                return fast(str(fast((self._seed + unit).encode())).encode()) % 10000 / 10000
            return fast((unit + self._seed).encode()) % 1000 / 1000
        if self.version == 2:
            first = _fnv_from(self._seed_state, unit)
            return _fnv_from(_OFFSET, str(first)) % 10000 / 10000
        return _fnv_from(_OFFSET, unit + self._seed) % 1000 / 1000

    def assign(self, unit: str) -> tuple[int, float]:
        """``(index of the unit's variant, or -1 outside coverage, the unit's bucket)``."""
        bucket = self.bucket(unit)
        for index, (start, end) in enumerate(self._ranges):
            if start <= bucket < end:
                return index, bucket
        return -1, bucket
