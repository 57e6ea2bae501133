"""geounet: U-Net segmentation of large GeoTIFFs into building footprints and land-use polygons.

The public API is the one the CLI calls. Importing ``geounet`` is cheap: torch,
rasterio and geopandas load only when a function below is first used.

Example:
    >>> import geounet
    >>> result = geounet.predict_scene("scene.tif", "footprints.geojson")  # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from geounet.errors import GeounetError

__version__ = "0.1.0"

_LAZY = {
    "predict_scene": "geounet.pipeline",
    "PredictResult": "geounet.pipeline",
    "load_model": "geounet.models.modelfile",
    "save_model": "geounet.models.modelfile",
    "ModelMetadata": "geounet.models.modelfile",
    "vectorize": "geounet.vectorize",
    "train": "geounet.train",
    "TrainConfig": "geounet.train",
    "evaluate": "geounet.evaluate",
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
