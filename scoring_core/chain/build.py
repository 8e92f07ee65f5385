"""Building a chain's steps from its configuration: features, scorers, options, contexts.

Everything here runs once, when the engine is built; a problem is a
:class:`~scoring_core.ConfigError` naming the key and its line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from scoring_core.chain.step import Step
from scoring_core.config.schema import EngineConfig, FeatureSpec
from scoring_core.config.validate import load_feature_file, validate_options
from scoring_core.config.yaml import KeyPath, LoadedYaml, format_path
from scoring_core.errors import ConfigError
from scoring_core.plugins import PluginHost, unknown_scorer_error
from scoring_core.scorer import ScorerContext

__all__ = ["ChainSource", "build_steps", "refuse_without_required", "resolve_features"]


@dataclass(frozen=True)
class ChainSource:
    """A validated configuration, the document it came from, and its folder."""

    config: EngineConfig
    source: LoadedYaml
    base_dir: Path

    @property
    def config_file(self) -> str | None:
        return self.source.file

    def error(self, message: str, path: KeyPath) -> ConfigError:
        """A ConfigError about the key at ``path``, with its file and line when known."""
        return ConfigError(
            message,
            key_path=format_path(path),
            file=self.config_file,
            line=self.source.line_of(path),
        )


def resolve_features(where: ChainSource) -> list[FeatureSpec]:
    """The features: inline in the config, or read from the feature file it names."""
    features = where.config.features
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
        )
        steps.append(
            Step(
                step_config,
                registration,
                context,
                required=step_config.name in required,
                clock=clock,
                chain_deadline=config.deadline_ms is not None,
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
