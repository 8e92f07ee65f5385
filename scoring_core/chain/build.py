"""Building a chain's steps from its configuration: features, scorers, options, contexts.

Everything here runs once, when the engine is built; a problem is a
:class:`~scoring_core.ConfigError` naming the key and its line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scoring_core.chain.step import Step
from scoring_core.config.schema import (
    EngineConfig,
    FeatureSpec,
    KeyPathError,
    check_unique_features,
)
from scoring_core.config.validate import load_feature_file, validate_options
from scoring_core.config.yaml import KeyPath, LoadedYaml, format_path
from scoring_core.errors import ConfigError, exception_text
from scoring_core.plugins import PluginHost, unknown_scorer_error
from scoring_core.scorer import ScorerContext, SuppliesFeatureNames

__all__ = [
    "ChainSource",
    "build_steps",
    "features_from_steps",
    "refuse_misconfigured",
    "refuse_without_required",
    "resolve_features",
    "row_dtype",
]


@dataclass(frozen=True)
class ChainSource:
    """A validated configuration, the document it came from, and its folder."""

    config: EngineConfig
    source: LoadedYaml
    base_dir: Path

    @property
    def config_file(self) -> str | None:
        return self.source.file

    @property
    def chain_name(self) -> str:
        """The YAML's ``name:``, else the config file's stem, else ``default``."""
        if self.config.name:
            return self.config.name
        return Path(self.source.file).stem if self.source.file else "default"

    @property
    def config_sha256(self) -> str:
        """The sha256 of the config file's bytes; for a mapping, of its canonical JSON."""
        if self.source.sha256 is not None:
            return self.source.sha256
        text = json.dumps(_canonical(self.source.data), separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def error(self, message: str, path: KeyPath) -> ConfigError:
        """A ConfigError about the key at ``path``, with its file and line when known."""
        return ConfigError(
            message,
            key_path=format_path(path),
            file=self.config_file,
            line=self.source.line_of(path),
        )


def _canonical(value: Any) -> Any:
    """``value`` with every mapping's keys made text and sorted (keys of mixed types too)."""
    if isinstance(value, Mapping):
        items = sorted(((str(k), _canonical(v)) for k, v in value.items()), key=lambda kv: kv[0])
        return dict(items)
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def resolve_features(where: ChainSource) -> list[FeatureSpec] | None:
    """The features: inline in the config, or read from the feature file it names; None
    when ``features:`` is left out (see :func:`features_from_steps`)."""
    features = where.config.features
    if features is None:
        return None
    if not isinstance(features, str):
        return list(features)
    path = Path(features)
    path = path if path.is_absolute() else where.base_dir / path
    if not path.is_file():
        what = "is not a regular file" if path.exists() else "does not exist"
        folder = "the configuration file's folder" if where.config_file else "base_dir"
        raise where.error(
            f"the feature file {str(path)!r} {what}; a relative path resolves against "
            f"{folder} ({where.base_dir})",
            ("features",),
        )
    return load_feature_file(path)


def features_from_steps(where: ChainSource, host: PluginHost) -> list[FeatureSpec]:
    """The features named by the first step whose scorer reads them from what it loads
    (:class:`~scoring_core.SuppliesFeatureNames`: an ONNX model's metadata or per-feature
    inputs), for a config without ``features:``. Ranges are left open."""
    tried: list[str] = []
    for index, step_config in enumerate(where.config.chain):
        registration = host.scorers.get(step_config.scorer)
        if registration is None or not isinstance(registration.factory, SuppliesFeatureNames):
            continue
        options = validate_options(
            registration.options,
            step_config.options,
            context={"feature_names": (), "base_dir": where.base_dir},
            source=where.source,
            prefix=("chain", index, "options"),
        )
        try:
            names = registration.factory.feature_names(options, where.base_dir)
        except Exception as exc:
            tried.append(f"step {step_config.name!r} could not read them: {exception_text(exc)}")
            continue
        if names:
            specs = [FeatureSpec(name=str(name)) for name in names]
            try:
                check_unique_features(specs)
            except KeyPathError as exc:
                raise where.error(
                    f"the model of step {step_config.name!r} names its features with a "
                    f"repeat: {exc}",
                    ("chain", index, "options"),
                ) from None
            return specs
        tried.append(f"step {step_config.name!r}'s model does not name its features")
    detail = f" ({'; '.join(tried)})" if tried else " (no step's scorer can read them)"
    raise where.error(
        "`features:` is left out, so the features must come from a model that names them"
        f"{detail}. List the features under `features:` (a list of names is enough), or "
        "name them in the model with `scoring models annotate`.",
        (),
    )


def row_dtype(steps: Sequence[Step]) -> np.dtype[Any]:
    """float64 when a loaded step's scorer takes float64 rows, else float32."""
    wide = any(s.slot is not None and s.slot.dtype == np.float64 for s in steps)
    return np.dtype(np.float64 if wide else np.float32)


def refuse_misconfigured(where: ChainSource, steps: Sequence[Step]) -> None:
    """Raise the ConfigError a step's scorer raised at load: its options cannot work with
    what it loaded (an ONNX model with several outputs and no ``output:``, say)."""
    for index, step in enumerate(steps):
        error = step.config_error
        if error is not None:
            message = error.message if isinstance(error, ConfigError) else str(error)
            raise where.error(
                f"step {step.name!r}: {message}", ("chain", index, "options")
            ) from error


def build_steps(
    where: ChainSource,
    host: PluginHost,
    feature_names: tuple[str, ...],
    *,
    clock: Callable[[], float] = time.monotonic,
) -> list[Step]:
    """One :class:`Step` per chain entry, its scorer found and its options validated
    (nothing is loaded yet)."""
    config = where.config
    steps = []
    required = set(config.require)
    chain, config_sha256 = where.chain_name, where.config_sha256
    context_data = {"feature_names": feature_names, "base_dir": where.base_dir}
    for index, step_config in enumerate(config.chain):
        registration = host.scorers.get(step_config.scorer)
        if registration is None:
            path = ("chain", index, "scorer")
            raise unknown_scorer_error(
                step_config.scorer,
                host,
                key_path=format_path(path),
                file=where.config_file,
                line=where.source.line_of(path),
            )
        options = validate_options(
            registration.options,
            step_config.options,
            context=context_data,
            source=where.source,
            prefix=("chain", index, "options"),
        )
        context = ScorerContext(
            name=step_config.name,
            scorer=step_config.scorer,
            options=options,
            feature_names=feature_names,
            base_dir=where.base_dir,
            output_range=config.output_range,
            logger=logging.getLogger(f"scoring_core.step.{step_config.name}"),
            timeout_s=None if step_config.timeout_ms is None else step_config.timeout_ms / 1e3,
            load_timeout_s=step_config.load_timeout_s,
        )
        steps.append(
            Step(
                step_config,
                registration,
                context,
                required=step_config.name in required,
                clock=clock,
                chain_deadline=config.deadline_ms is not None,
                chain=chain,
                config_sha256=config_sha256,
            )
        )
    return steps


def refuse_without_required(where: ChainSource, steps: Sequence[Step]) -> None:
    """Raise a ConfigError when a step listed under ``require:`` could not load."""
    missing = [s for s in steps if s.required and s.slot is None]
    if not missing:
        return
    reasons = "; ".join(f"step {s.name!r}: {s.reason}" for s in missing)
    index = where.config.require.index(missing[0].name)
    raise where.error(
        f"the engine refuses to start: required step(s) could not load ({reasons}); fix "
        "them, or remove them from `require:` to start on the fallback",
        ("require", index),
    )
