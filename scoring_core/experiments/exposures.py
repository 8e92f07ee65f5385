"""The exposure log: one record per first exposure of a unit, written off the scoring path.

The scoring thread only appends a tuple to a deque (atomic in CPython, no lock); one
background thread turns the tuples into records, appends them to the JSON Lines file and
hands them to the ``scoring_exposures`` hook, at least once a second (sooner when many
are waiting), and once more on :meth:`ExposureLog.close`. So nothing logged is lost on a
clean close, and a crash loses at most the last second.

Dedup scope and memory: a unit is logged the first time this process (this
:class:`~scoring_core.experiments.Experiment`) sees it. The units seen are remembered in a
dict, up to ``remember_units`` of them (default 1,000,000, about 100 MB); when it is full
it is emptied and starts again, so a unit seen before may be logged once more. The report
keeps each unit's first record, so a repeat never counts twice.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _escape
from pathlib import Path
from typing import Any

__all__ = ["EXPOSURE_FIELDS", "ExposureLog", "provenance_record"]

logger = logging.getLogger("scoring_core")

#: The fields of every exposure record, in the order they are written.
EXPOSURE_FIELDS = (
    "ts",
    "experiment",
    "unit",
    "variant",
    "hash_version",
    "bucket",
    "weights",
    "scorer",
    "chain",
    "provenance",
)
FLUSH_S = 1.0
MAX_WAITING = 100_000  # records waiting for the writer; past it, new ones are dropped (counted)
_WAKE_AT = 10_000


def provenance_record(provenance: Any) -> Any:
    """A score's provenance (``r.provenance``, a :class:`~scoring_core.Provenance`) as
    JSON-ready data; other shapes (a mapping, a dataclass) are accepted from plugins."""
    if provenance is None:
        return None
    if hasattr(provenance, "as_dict"):
        return provenance.as_dict()
    if is_dataclass(provenance) and not isinstance(provenance, type):
        return asdict(provenance)
    if isinstance(provenance, Mapping):
        return dict(provenance)
    return str(provenance)


def _json_text(text: str) -> str:
    """``text`` as the inside of a JSON string (json's own C escaper)."""
    return str(_escape(text))[1:-1]


def timestamp(seconds: float) -> str:
    """ISO 8601 UTC with milliseconds: ``2026-12-03T13:49:45.123Z``."""
    text = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


class ExposureLog:
    """Writes exposure records of one experiment in a background thread.

    :param path: the JSON Lines file (appended to), or None for none.
    :param send: called on the writer thread with each batch of records (the hook).
    """

    def __init__(
        self,
        *,
        experiment: str,
        hash_version: int,
        variants: Sequence[str],
        weights: Mapping[str, float],
        chains: Sequence[str],
        path: Path | None,
        send: Callable[[list[dict[str, Any]]], None] | None = None,
        flush_s: float = FLUSH_S,
    ) -> None:
        self.experiment = experiment
        self.path = path
        self._variants = tuple(variants)
        self._chains = tuple(chains)
        self.hash_version = hash_version
        self._weights = dict(weights)
        self._send = send
        self._head = f'"experiment": {json.dumps(experiment)}'
        self._middle = f'"hash_version": {hash_version}'
        self._weights_json = f'"weights": {json.dumps(self._weights)}'
        self._variant_json = [json.dumps(v) for v in self._variants]
        self._chain_json = [json.dumps(c) for c in self._chains]
        self._step_json: dict[str, str] = {}
        self._second = -1
        self._second_text = ""
        self._flush_s = flush_s
        self._waiting: deque[tuple[float, str, int, float, str, Any]] = deque()
        self._drop_lock = threading.Lock()  # taken only when a record is dropped
        self.dropped = 0  # records dropped because the writer fell MAX_WAITING behind
        self.written = [0] * len(self._variants)  # per variant, by the writer thread only
        self.errors = 0
        self._wake = threading.Event()
        self._stopping = False
        self._file: Any = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")
        self._thread = threading.Thread(
            target=self._run, name=f"scoring-exposures-{experiment}", daemon=True
        )
        self._thread.start()

    # -- the scoring thread ---------------------------------------------------------------

    def add(
        self, seconds: float, unit: str, variant: int, bucket: float, scorer: str, origin: Any
    ) -> None:
        """Queue one first exposure: the step that served it and the score's provenance
        (``r.provenance``; turned into a record by the writer)."""
        waiting = self._waiting
        if len(waiting) >= MAX_WAITING:
            with self._drop_lock:
                self.dropped += 1
            return
        waiting.append((seconds, unit, variant, bucket, scorer, origin))
        if len(waiting) >= _WAKE_AT:
            self._wake.set()

    # -- the writer thread ----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._flush_s)
            self._wake.clear()
            self._write_waiting()
        self._write_waiting()

    def _record(self, item: tuple[float, str, int, float, str, Any]) -> dict[str, Any]:
        seconds, unit, variant, bucket, scorer, origin = item
        return {
            "ts": timestamp(seconds),
            "experiment": self.experiment,
            "unit": unit,
            "variant": self._variants[variant],
            "hash_version": self.hash_version,
            "bucket": bucket,
            "weights": self._weights,
            "scorer": scorer,
            "chain": self._chains[variant],
            "provenance": provenance_record(origin),
        }

    def _line(self, item: tuple[float, str, int, float, str, Any]) -> str:
        """The record's JSON line, from JSON pieces made once per experiment, per second
        and per step: json.dumps of a dict cost ~16 us a record on the writer thread,
        which competes with scoring threads for the GIL (benchmarks/bench_experiment.py)."""
        seconds, unit, variant, bucket, scorer, origin = item
        whole = int(seconds)
        if whole != self._second:
            self._second = whole
            self._second_text = timestamp(whole)[:-5]  # "2026-12-03T13:49:45"
        step = self._step_json.get(scorer)
        if step is None:
            step = self._step_json[scorer] = json.dumps(scorer)
        provenance = "null" if origin is None else json.dumps(provenance_record(origin))
        millis = int((seconds - whole) * 1000)
        return (
            f'{{"ts": "{self._second_text}.{millis:03d}Z", {self._head}, "unit": '
            f'"{_json_text(unit)}", "variant": {self._variant_json[variant]}, {self._middle}, '
            f'"bucket": {bucket!r}, {self._weights_json}, "scorer": {step}, '
            f'"chain": {self._chain_json[variant]}, "provenance": {provenance}}}\n'
        )

    def _write_waiting(self) -> None:
        waiting = self._waiting
        items = []
        while waiting:
            item = waiting.popleft()
            items.append(item)
            self.written[item[2]] += 1
        if not items:
            return
        if self._file is not None:
            try:
                self._file.write("".join(map(self._line, items)))
                self._file.flush()
            except OSError as exc:
                self.errors += 1
                logger.error("experiment %s: exposures not written: %s", self.experiment, exc)
        if self._send is not None:
            try:
                self._send([self._record(item) for item in items])
            except Exception as exc:
                self.errors += 1
                logger.error("experiment %s: exposure hook failed: %s", self.experiment, exc)

    def flush(self) -> None:
        """Write what is waiting now (on the caller's thread; the writer may race it)."""
        self._wake.set()

    def close(self, wait_s: float = 10.0) -> None:
        """Write every record still waiting, then close the file. Idempotent."""
        if self._stopping:
            return
        self._stopping = True
        self._wake.set()
        self._thread.join(wait_s)
        if self._file is not None:
            self._file.close()

    def counts(self) -> dict[str, Any]:
        return {
            "written": dict(zip(self._variants, self.written, strict=True)),
            "waiting": len(self._waiting),
            "dropped": self.dropped,
            "errors": self.errors,
            "file": None if self.path is None else str(self.path),
        }
