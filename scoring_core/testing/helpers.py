"""Registering a scorer for one test and building an engine from a few keywords."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from scoring_core.config.validate import load_feature_file
from scoring_core.engine import Engine
from scoring_core.hookspecs import hookimpl

__all__ = ["engine_for", "feature_list", "read_feature_names", "scorer_plugin"]


class _ScorerPlugin:
    """A plugin object that registers the scorers it was given."""

    def __init__(self, scorers: Mapping[str, tuple[Callable[..., Any], type[Any] | None]]):
        self._scorers = dict(scorers)
        self.__name__ = "test-plugin:" + ",".join(self._scorers)

    @hookimpl
    def scoring_register_scorers(self, register: Any) -> None:
        for name, (factory, options) in self._scorers.items():
            register(name, factory, options=options)


def scorer_plugin(
    name: str, factory: Callable[..., Any], *, options: type[Any] | None = None, **more: Any
) -> Any:
    """A plugin registering ``factory`` as scorer ``name`` (and ``more`` as other scorers).

    Pass the result to ``Engine.from_config(..., plugins=[plugin])``: it lives only as
    long as that engine, so nothing leaks between tests.
    """
    scorers: dict[str, tuple[Callable[..., Any], type[Any] | None]] = {name: (factory, options)}
    for other, value in more.items():
        scorers[other] = value if isinstance(value, tuple) else (value, None)
    return _ScorerPlugin(scorers)


def feature_list(
    count_or_names: int | Sequence[str] = 5, *, low: float = 0.0, high: float = 1.0
) -> list[dict[str, Any]]:
    """Feature entries for a config: ``f0..f{n-1}`` (or the given names) in [low, high]."""
    names = (
        [f"f{i}" for i in range(count_or_names)]
        if isinstance(count_or_names, int)
        else list(count_or_names)
    )
    return [{"name": name, "min": low, "max": high} for name in names]


def read_feature_names(path: str | Path) -> tuple[str, ...]:
    """The feature names of a feature file (the YAML list a config's ``features:`` names)."""
    return tuple(spec.name for spec in load_feature_file(Path(path)))


def engine_for(
    chain: Sequence[Mapping[str, Any]],
    *,
    plugins: Sequence[Any] = (),
    features: int | Sequence[str] | Sequence[Mapping[str, Any]] = 5,
    base_dir: str | Path = ".",
    **config: Any,
) -> Engine:
    """Build an engine from a chain and a few keywords, with test plugins registered."""
    feature_entries: list[dict[str, Any]]
    if isinstance(features, int):
        feature_entries = feature_list(features)
    else:
        feature_entries = [
            {"name": f, "min": 0.0, "max": 1.0} if isinstance(f, str) else dict(f) for f in features
        ]
    mapping = {"features": feature_entries, "chain": [dict(step) for step in chain], **config}
    return Engine.from_config(mapping, base_dir=base_dir, plugins=plugins)
