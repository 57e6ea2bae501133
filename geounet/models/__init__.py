"""Models: the architecture registry, the architectures and the model file format.

Importing this package does not import torch; building or loading a model does.
"""

from geounet.models.metadata import ModelMetadata
from geounet.models.modelfile import load_model, read_metadata, resolve_model_path, save_model
from geounet.models.registry import (
    DEFAULT_MODEL,
    ENTRY_POINT_GROUP,
    architectures,
    build_model,
    bundled_models,
)

__all__ = [
    "DEFAULT_MODEL",
    "ENTRY_POINT_GROUP",
    "ModelMetadata",
    "architectures",
    "build_model",
    "bundled_models",
    "load_model",
    "read_metadata",
    "resolve_model_path",
    "save_model",
]
