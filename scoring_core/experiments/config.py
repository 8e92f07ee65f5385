"""The experiment file: its keys, checked with the key path and line of every mistake.

Nothing is guessed or equalised: weights that do not sum to 1, a weight for a variant
that does not exist, a negative weight, an empty unit field or seed are
:class:`~scoring_core.errors.ConfigError`\\ s naming the key and the file's line
(docs/experiments.md lists every key).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scoring_core.config.yaml import KeyPath, LoadedYaml, format_path, load_yaml_file
from scoring_core.errors import ConfigError, did_you_mean
from scoring_core.experiments.assignment import HASH_VERSIONS

__all__ = [
    "DEFAULT_REMEMBER_UNITS",
    "ExperimentConfig",
    "ShadowConfig",
    "VariantConfig",
    "is_experiment_file",
    "load_experiment_file",
    "parse_experiment",
]

#: How many units the exposure log remembers as already exposed (per process).
DEFAULT_REMEMBER_UNITS = 1_000_000
WEIGHT_TOLERANCE = 1e-6
TOP_LEVEL_KEYS = (
    "experiment",
    "unit",
    "seed",
    "hash_version",
    "coverage",
    "variants",
    "weights",
    "shadow",
    "exposures",
    "remember_units",
    "plugins",
)
VARIANT_KEYS = ("name", "config", "weight", "versions")
SHADOW_KEYS = ("config", "percent", "log")


@dataclass(frozen=True)
class VariantConfig:
    """One variant. ``versions`` pins steps of its chain to a model version or label
    (``{neural: canary}``): two variants of one config can serve two versions of a step."""

    name: str
    config: Path
    weight: float
    versions: tuple[tuple[str, int | str], ...] = ()
    versions_at: KeyPath | None = None


@dataclass(frozen=True)
class ShadowConfig:
    config: Path
    percent: float
    log: Path | None


@dataclass(frozen=True)
class ExperimentConfig:
    """A checked experiment file; paths are resolved against its folder."""

    key: str
    unit: str
    seed: str
    hash_version: int
    coverage: float
    variants: tuple[VariantConfig, ...]
    shadow: ShadowConfig | None
    exposures: Path | None
    remember_units: int
    plugins: tuple[str, ...]
    file: str | None
    base_dir: Path
    source: LoadedYaml | None = None

    @property
    def weights(self) -> dict[str, float]:
        return {v.name: v.weight for v in self.variants}


class _Checker:
    def __init__(self, source: LoadedYaml) -> None:
        self.source = source

    def fail(self, path: KeyPath, message: str) -> ConfigError:
        return ConfigError(
            message,
            key_path=format_path(path) or None,
            file=self.source.file,
            line=self.source.line_of(path),
        )

    def mapping(self, value: Any, path: KeyPath, keys: tuple[str, ...]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(path, f"must be a mapping, not {type(value).__name__}")
        for key in value:
            if key not in keys:
                hint = did_you_mean(str(key), keys)
                raise self.fail((*path, key), f"unknown key{hint}")
        return value

    def text(self, value: Any, path: KeyPath) -> str:
        if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
            raise self.fail(path, "must be a non-empty string")
        return str(value)

    def number(self, value: Any, path: KeyPath, low: float, high: float) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(path, f"must be a number, not {value!r}")
        number = float(value)
        if not math.isfinite(number) or not low <= number <= high:
            raise self.fail(path, f"must be between {low:g} and {high:g}, not {value!r}")
        return number


def parse_experiment(source: LoadedYaml, base_dir: Path) -> ExperimentConfig:
    """Check ``source`` (a loaded experiment file) and resolve its paths."""
    check = _Checker(source)
    data = check.mapping(source.data if source.data is not None else {}, (), TOP_LEVEL_KEYS)
    for needed in ("experiment", "unit", "variants"):
        if needed not in data:
            raise check.fail((), f"the key {needed!r} is missing (docs/experiments.md)")
    key = check.text(data["experiment"], ("experiment",))
    unit = check.text(data["unit"], ("unit",))
    seed = check.text(data["seed"], ("seed",)) if "seed" in data else key
    version = data.get("hash_version", 2)
    if isinstance(version, bool) or version not in HASH_VERSIONS:
        raise check.fail(("hash_version",), f"must be 1 or 2 (GrowthBook's), not {version!r}")
    coverage = check.number(data.get("coverage", 1.0), ("coverage",), 0.0, 1.0)
    variants = _variants(check, data, base_dir)
    shadow = None
    if data.get("shadow") is not None:
        raw = check.mapping(data["shadow"], ("shadow",), SHADOW_KEYS)
        if "config" not in raw:
            raise check.fail(("shadow",), "the key 'config' is missing (the shadow chain's YAML)")
        log = raw.get("log")
        shadow = ShadowConfig(
            config=base_dir / check.text(raw["config"], ("shadow", "config")),
            percent=check.number(raw.get("percent", 100), ("shadow", "percent"), 0.0, 100.0),
            log=None if log is None else base_dir / check.text(log, ("shadow", "log")),
        )
    exposures = data.get("exposures")
    remember = data.get("remember_units", DEFAULT_REMEMBER_UNITS)
    if isinstance(remember, bool) or not isinstance(remember, int) or remember < 1:
        raise check.fail(("remember_units",), f"must be a whole number >= 1, not {remember!r}")
    plugins = data.get("plugins") or []
    if not isinstance(plugins, list):
        raise check.fail(("plugins",), "must be a list of plugin modules")
    return ExperimentConfig(
        key=key,
        unit=unit,
        seed=seed,
        hash_version=int(version),
        coverage=coverage,
        variants=variants,
        shadow=shadow,
        exposures=None if exposures is None else base_dir / check.text(exposures, ("exposures",)),
        remember_units=remember,
        plugins=tuple(check.text(p, ("plugins", i)) for i, p in enumerate(plugins)),
        file=source.file,
        base_dir=base_dir,
        source=source,
    )


def _variants(
    check: _Checker, data: Mapping[str, Any], base_dir: Path
) -> tuple[VariantConfig, ...]:
    raw = data["variants"]
    if not isinstance(raw, list) or len(raw) < 2:
        count = len(raw) if isinstance(raw, list) else 0
        raise check.fail(
            ("variants",),
            f"needs a list of at least 2 variants (the first is the control), got {count}",
        )
    top_weights = data.get("weights")
    if top_weights is not None and (
        not isinstance(top_weights, list) or len(top_weights) != len(raw)
    ):
        given = len(top_weights) if isinstance(top_weights, list) else "no list of"
        raise check.fail(
            ("weights",), f"needs one weight per variant: {len(raw)} variants, {given} weights"
        )
    variants: list[VariantConfig] = []
    for index, item in enumerate(raw):
        path: KeyPath = ("variants", index)
        entry = check.mapping(item, path, VARIANT_KEYS)
        for needed in ("name", "config"):
            if needed not in entry:
                raise check.fail(path, f"the key {needed!r} is missing")
        name = check.text(entry["name"], (*path, "name"))
        if any(v.name == name for v in variants):
            raise check.fail((*path, "name"), f"a second variant named {name!r}; names are unique")
        if top_weights is not None and "weight" in entry:
            raise check.fail((*path, "weight"), "weights are given twice: here and in `weights:`")
        if top_weights is not None:
            weight_path: KeyPath = ("weights", index)
            weight_value = top_weights[index]
        elif "weight" in entry:
            weight_path, weight_value = (*path, "weight"), entry["weight"]
        else:
            raise check.fail(path, "the key 'weight' is missing; weights are never guessed")
        if (
            isinstance(weight_value, int | float)
            and not isinstance(weight_value, bool)
            and weight_value < 0
        ):
            raise check.fail(weight_path, f"a weight cannot be negative, got {weight_value!r}")
        weight = check.number(weight_value, weight_path, 0.0, 1.0)
        config = base_dir / check.text(entry["config"], (*path, "config"))
        versions = _versions(check, entry.get("versions"), (*path, "versions"))
        variants.append(
            VariantConfig(name, config, weight, versions, (*path, "versions") if versions else None)
        )
    total = sum(v.weight for v in variants)
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        listed = " + ".join(f"{v.weight:g}" for v in variants)
        where: KeyPath = ("weights",) if top_weights is not None else ("variants",)
        raise check.fail(
            where,
            f"the weights must sum to 1, they sum to {total:g} ({listed}); nothing is equalised",
        )
    return tuple(variants)


def _versions(check: _Checker, raw: Any, path: KeyPath) -> tuple[tuple[str, int | str], ...]:
    """``versions: {STEP: VERSION}``: a version number, a label or ``latest`` per step."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping) or not raw:
        raise check.fail(path, "must map step names to versions, e.g. {neural: canary}")
    pinned: list[tuple[str, int | str]] = []
    for step, version in raw.items():
        at: KeyPath = (*path, str(step))
        if isinstance(version, bool) or not isinstance(version, int | str) or version == "":
            raise check.fail(at, "must be a version number, a label or latest")
        pinned.append((check.text(step, at), version))
    return tuple(pinned)


def is_experiment_file(path: str | Path) -> bool:
    """Whether the YAML file at ``path`` is an experiment (a top-level ``experiment:``
    key) rather than a chain config. ConfigError when it cannot be read."""
    data = load_yaml_file(path).data
    return isinstance(data, dict) and "experiment" in data


def load_experiment_file(path: str | Path) -> ExperimentConfig:
    """Read and check an experiment file."""
    source = load_yaml_file(path)
    return parse_experiment(source, Path(path).resolve().parent)
