"""Rows: checking input against the features and turning it into float32 arrays."""

from scoring_core.features.schema import FeatureSchema, PreparedBatch

__all__ = ["FeatureSchema", "PreparedBatch"]
