"""The Python face of geounet: the functions ``geounet.predict`` & co. are.

Thin wrappers over the engine (:mod:`geounet.pipeline`) that also take a Dask
``client``: with one, the tiles of a scene are predicted on the cluster
(:class:`geounet.distributed.DaskTileSource`) or each scene is one task
(:func:`geounet.distributed.predict_scenes`); the result is the same as a local
run. The CLI, ``rio geounet`` and the QGIS script call these too.
"""

from __future__ import annotations

from typing import Any

from geounet import distributed
from geounet.pipeline import run, scenes
from geounet.pipeline.run import PredictResult
from geounet.pipeline.sources import TileSource

__all__ = ["PredictResult", "predict", "predict_scene", "predict_scenes"]


def predict_scene(scene_path: Any, output: Any = None, *, client: Any = None,
                  source: TileSource | None = None, **kwargs: Any) -> PredictResult:
    """Segment a scene and turn the result into polygons.

    Args:
        scene_path: Any raster rasterio opens, with a CRS.
        output: Vector file, or ``None`` to only return the GeoDataFrame.
        client: A ``distributed.Client``: tiles are read and predicted on its
            workers in blocks of tile rows and stitched here in plan order.
        source: Another tile source (``client`` makes a Dask one).
        **kwargs: The options of :func:`geounet.pipeline.run.predict_scene`
            (``model``, ``bands``, ``tiling``, ``predict``, ``vectorize``,
            ``outputs``, ``threshold``, ``prob_out``, ``mask_out``,
            ``progress``, ``keep_footprints``, ``keep_arrays``).

    Returns:
        A :class:`~geounet.pipeline.run.PredictResult`.

    Raises:
        GeounetError: any of its subclasses for bad input; nothing is left
            under the output names when it is raised.
    """
    if client is not None:
        source = distributed.DaskTileSource(client)
    return run.predict_scene(scene_path, output, source=source, **kwargs)


predict = predict_scene
"""``geounet.predict``: the same function as :func:`predict_scene`."""


def predict_scenes(scene_args: Any, out_dir: Any, fmt: str = "geojson", *, client: Any = None,
                   **kwargs: Any) -> list[PredictResult]:
    """Segment many scenes with one loaded model.

    Args:
        scene_args: Scene paths, folders or glob patterns.
        out_dir: Existing folder for the vector outputs ``<stem>.<fmt>``.
        fmt: ``geojson``, ``gpkg``, ``fgb`` or ``parquet``.
        client: A ``distributed.Client``: each scene becomes one task on its
            workers (paths must be reachable from them).
        **kwargs: The options of :func:`geounet.pipeline.scenes.predict_scenes`.

    Returns:
        One :class:`~geounet.pipeline.run.PredictResult` per scene, in order.

    Raises:
        OutputNotWritableError: if a folder does not exist.
        GeounetError: the first scene's error stops the run.
    """
    if client is not None:
        return distributed.predict_scenes(client, scene_args, out_dir, fmt, **kwargs)
    return scenes.predict_scenes(scene_args, out_dir, fmt, **kwargs)
