"""Ground resolution of a run: whether the scene is read at the model's GSD, and arrays back.

:func:`choose_grid` is the decision (``--resample auto|off``,
:class:`~geounet.config.ResampleConfig`), logged at ``-v``: the scene's GSD,
the model's, their ratio and what is done. With a model-GSD grid the whole run
(tile plan, stitching, classes, sieve, polygons) happens on that grid; the
polygons are georeferenced, so they, their ``area_m2`` and every tolerance in
metres are right as they are. The rasters come back to the scene's grid in
:class:`geounet.pipeline.sinks.BackToScene`, the ``keep_arrays`` arrays in
:func:`arrays_to_scene`. Grid and resampling choices: :mod:`geounet.io.regrid`.
"""

from __future__ import annotations

import logging

import numpy as np
from rasterio.enums import Resampling
from rasterio.warp import reproject
from rasterio.windows import Window

from geounet.config import ResampleConfig
from geounet.constants import CLASS_NODATA
from geounet.io.read import Scene
from geounet.io.regrid import ModelGrid, model_grid
from geounet.models.metadata import ModelMetadata

log = logging.getLogger(__name__)


def choose_grid(scene: Scene, meta: ModelMetadata, config: ResampleConfig) -> ModelGrid | None:
    """The model-GSD grid to read ``scene`` on, or ``None`` to read it as it is.

    Args:
        scene: The open scene, on its own grid.
        meta: The model's metadata (``gsd_m``; ``None`` or 0: unknown).
        config: Mode, tolerance and output grid.

    Returns:
        The :class:`~geounet.io.regrid.ModelGrid` when ``config.mode`` is
        ``auto`` and the GSDs differ by more than ``config.tolerance``, else
        ``None`` (with ``off``, a warning says the GSDs differ).
    """
    if not meta.gsd_m:
        log.info("ground resolution: model %s has no gsd_m, so the scene is read at its own "
                 "GSD (%.4g m), not resampled", meta.name, scene.gsd_m())
        return None
    grid = model_grid(scene.native_grid(), scene.pixel_size_m(), meta.gsd_m, config.tolerance)
    gsd = scene.gsd_m()
    factor = meta.gsd_m / gsd
    if grid is None:
        log.info("ground resolution: scene %.4g m, model %.4g m, factor %.4g: within %.4g %%, "
                 "not resampled", gsd, meta.gsd_m, factor, 100 * config.tolerance)
        return None
    if config.mode == "off":
        log.warning("scene GSD %.4g m differs from the model's %.4g m (factor %.4g) and "
                    "resampling is off: predicting at the scene's GSD, results may suffer "
                    "(leave out --resample off to read it at the model's GSD)",
                    gsd, meta.gsd_m, factor)
        return None
    log.info("ground resolution: scene %.4g m, model %.4g m, factor %.4g: reading %dx%d px "
             "as %dx%d px on the model's grid (%s); rasters on the %s grid", gsd, meta.gsd_m,
             factor, scene.width, scene.height, grid.grid.width, grid.grid.height,
             grid.resampling, config.output_grid)
    return grid


def arrays_to_scene(probs: np.ndarray, classes: np.ndarray, grid: ModelGrid,
                    scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """The ``keep_arrays`` arrays of a resampled run, on the scene's own grid.

    Resampled as the rasters are (:meth:`~geounet.io.regrid.ModelGrid.back_resampling`),
    with ``rasterio.warp.reproject``; nodata where the scene is nodata.

    Args:
        probs: ``(k, h, w)`` float32 on the model grid, NaN = nodata.
        classes: ``(h, w)`` uint8 on the model grid, 255 = nodata.
        grid: The run's model grid.
        scene: The run's scene.

    Returns:
        ``(probs, classes)``: ``(k, H, W)`` float32 and ``(H, W)`` uint8 on the
        scene's grid.
    """
    own = grid.scene
    common = {"src_transform": grid.grid.transform, "src_crs": own.crs,
              "dst_transform": own.transform, "dst_crs": own.crs}
    out_p = np.full((probs.shape[0], own.height, own.width), np.nan, np.float32)
    reproject(probs, out_p, src_nodata=np.nan, dst_nodata=np.nan,
              resampling=Resampling[grid.back_resampling("probabilities")], **common)
    out_c = np.full((own.height, own.width), CLASS_NODATA, np.uint8)
    reproject(classes, out_c, src_nodata=CLASS_NODATA, dst_nodata=CLASS_NODATA,
              resampling=Resampling.nearest, **common)
    valid = scene.native_valid(Window(0, 0, own.width, own.height))
    out_p[:, ~valid] = np.nan
    out_c[~valid] = CLASS_NODATA
    return out_p, out_c
