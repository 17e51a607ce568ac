"""Configuration: pydantic models, YAML loading and cross-field checks."""

from gpu_engine.config.loading import load_config, parse_config
from gpu_engine.config.models import (
    AggregationSpec,
    BatchingConfig,
    EngineConfig,
    FieldSpec,
    SchemaConfig,
    TopKSpec,
    ValidationConfig,
    WindowSpec,
)

__all__ = [
    "AggregationSpec",
    "BatchingConfig",
    "EngineConfig",
    "FieldSpec",
    "SchemaConfig",
    "TopKSpec",
    "ValidationConfig",
    "WindowSpec",
    "load_config",
    "parse_config",
]
