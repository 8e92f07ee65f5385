"""Building a variant's chain: its config as it is, or with steps pinned to model
versions (``versions: {neural: canary}``), the way to canary a new model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from scoring_core.config.yaml import format_path, load_yaml_file
from scoring_core.engine import Engine
from scoring_core.errors import ConfigError
from scoring_core.experiments.config import ExperimentConfig, VariantConfig

__all__ = ["variant_engine"]


def variant_engine(
    experiment: ExperimentConfig, variant: VariantConfig, plugins: Sequence[Any]
) -> Engine:
    """The variant's chain; with ``versions:``, its config with those steps pinned to
    those model versions, named ``<chain>.<variant>`` (two variants of one config are two
    chains, with their own metrics and provenance). The pinned steps are required: a
    version that cannot load stops the experiment from starting."""
    if not variant.versions:
        return Engine.from_yaml(variant.config, plugins=plugins)
    from scoring_core.models import with_step_version

    data = load_yaml_file(variant.config).data
    if not isinstance(data, dict):
        return Engine.from_yaml(variant.config, plugins=plugins)  # its own error
    for step, version in variant.versions:
        try:
            data = with_step_version(data, step, version)
        except ConfigError as exc:
            at = variant.versions_at or ()
            raise ConfigError(
                f"variant {variant.name!r}: {exc.message} in {variant.config}",
                key_path=format_path((*at, step)),
                file=experiment.file,
                line=experiment.source.line_of((*at, step)) if experiment.source else None,
            ) from None
    # The variant exists to serve those versions: one that cannot load is an experiment
    # that would compare the fallback, so the engine refuses to start instead.
    required = list(data.get("require") or [])
    data["require"] = required + [step for step, _ in variant.versions if step not in required]
    base = str(data.get("name") or variant.config.stem)
    data["name"] = f"{base}.{variant.name}"
    return Engine.from_config(data, base_dir=variant.config.parent, plugins=plugins)
