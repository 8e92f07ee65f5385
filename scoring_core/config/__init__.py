"""The configuration: the YAML loader, the schema, and validation into :class:`EngineConfig`."""

from scoring_core.config.schema import EngineConfig, ExhaustedDefault, FeatureSpec, StepConfig
from scoring_core.config.validate import load_feature_file, parse_config, validate_options
from scoring_core.config.yaml import LoadedYaml, load_yaml_file, load_yaml_text

__all__ = [
    "EngineConfig",
    "ExhaustedDefault",
    "FeatureSpec",
    "LoadedYaml",
    "StepConfig",
    "load_feature_file",
    "load_yaml_file",
    "load_yaml_text",
    "parse_config",
    "validate_options",
]
