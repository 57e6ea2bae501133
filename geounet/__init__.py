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

__version__ = "0.2.0"

_LAZY = {
    "predict": "geounet.api",
    "predict_scene": "geounet.api",
    "predict_scenes": "geounet.api",
    "PredictResult": "geounet.pipeline.run",
    "SceneRun": "geounet.pipeline.run",
    "export_onnx": "geounet.export",
    "load_model": "geounet.models.modelfile",
    "save_model": "geounet.models.modelfile",
    "ModelMetadata": "geounet.models.metadata",
    "vectorize": "geounet.pipeline.arrays",
    "train": "geounet.training",
    "TrainConfig": "geounet.training",
    "evaluate": "geounet.evaluation",
    "TilingConfig": "geounet.config",
    "PredictConfig": "geounet.config",
    "VectorizeConfig": "geounet.config",
    "OutputConfig": "geounet.config",
    "RunOptions": "geounet.config",
}

__all__ = ["GeounetError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'geounet' has no attribute {name!r}")
