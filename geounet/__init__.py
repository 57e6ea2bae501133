"""geounet: U-Net segmentation of large GeoTIFFs into building footprints and land-use polygons.

The public API is the one the CLI calls. Importing ``geounet`` is cheap: torch,
rasterio and geopandas load only when a function below is first used.

Example:
    >>> import geounet
    >>> result = geounet.predict("scene.tif", "footprints.geojson")  # doctest: +SKIP

See ``docs/api.md``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from geounet.errors import GeounetError

__version__ = "0.1.0"

_LAZY = {
    "predict": "geounet.pipeline",
    "predict_scene": "geounet.pipeline",
    "predict_scenes": "geounet.pipeline",
    "export_onnx": "geounet.export",
    "PredictResult": "geounet.pipeline",
    "load_model": "geounet.models.modelfile",
    "save_model": "geounet.models.modelfile",
    "ModelMetadata": "geounet.models.modelfile",
    "vectorize": "geounet.polygons",
    "train": "geounet.training",
    "TrainConfig": "geounet.training",
    "evaluate": "geounet.metrics",
    "TilingConfig": "geounet.config",
    "PredictConfig": "geounet.config",
    "VectorizeConfig": "geounet.config",
    "OutputConfig": "geounet.config",
}

__all__ = ["GeounetError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'geounet' has no attribute {name!r}")
