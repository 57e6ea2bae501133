"""The pipeline: one module per stage, in the order a scene goes through them.

1. read: :mod:`geounet.io.read` (scene, bands, masks, scaling)
2. tile: :mod:`geounet.pipeline.tiling` (the window plan)
3. predict: :mod:`geounet.pipeline.sources` (tile sources: read + predict on a
   background thread; :mod:`geounet.distributed` adds a Dask one) with
   :mod:`geounet.pipeline.predictors` (torch, onnxruntime, test-time augmentation)
4. stitch: :mod:`geounet.pipeline.stitch` (seam-free blending, one strip in memory)
5. classify: :mod:`geounet.pipeline.classify` (probabilities to class ids, plugin
   hooks) and :mod:`geounet.pipeline.sieve` (minimum mapping unit)
6. vectorise: :mod:`geounet.pipeline.vectorize` (polygons merged across strips)
   and :mod:`geounet.pipeline.postprocess` (holes, splits, areas, simplification)
7. write: :mod:`geounet.pipeline.sinks` (raster and polygon sinks over
   :mod:`geounet.io.rasters`, :mod:`geounet.io.writers`)

:mod:`geounet.pipeline.run` connects them for one scene (:class:`SceneRun`);
:mod:`geounet.pipeline.scenes` runs many scenes; :mod:`geounet.pipeline.arrays`
tiles, predicts and stitches an in-memory array.

Names below load on first use, so importing one stage does not import the others.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "PredictResult": "geounet.pipeline.run",
    "SceneRun": "geounet.pipeline.run",
    "predict_scene": "geounet.pipeline.run",
    "predict_array": "geounet.pipeline.arrays",
    "predict_scenes": "geounet.pipeline.scenes",
    "expand_scenes": "geounet.pipeline.scenes",
    "output_for": "geounet.pipeline.scenes",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'geounet.pipeline' has no attribute {name!r}")
