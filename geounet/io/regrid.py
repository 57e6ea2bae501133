"""Ground resolution: a scene's grid at the model's GSD, read through rasterio, and back.

A model learns objects at one ground sample distance (``gsd_m`` in its
metadata): a building 20 px wide at 0.5 m is 33 px wide at 0.3 m and 12 px at
0.8 m, and a U-Net trained on one rarely finds the others. When the scene's GSD
differs from the model's by more than a tolerance, geounet reads the scene
through a rasterio :class:`~rasterio.vrt.WarpedVRT` on a grid of the model's GSD
(:class:`ModelGrid`: the scene's CRS and origin, its transform scaled), so
every stage runs there, and brings the rasters back to the scene's own grid
strip by strip (:func:`strips_on_grid`). Memory stays flat: GDAL's warper
reads what each window needs.

Resampling, by direction:

* scene -> model grid, scene finer than the model (a reduction): ``average``,
  each model pixel the mean of the scene pixels it covers, as a coarser sensor
  would see it (bilinear, cubic or nearest alias fine texture into the model's
  input);
* scene -> model grid, scene coarser (an enlargement): ``nearest``. Every
  interpolating kernel is a low-pass filter, and a U-Net trained on sharp
  imagery loses its edges in the blur: on a 0.8 m copy of the Atlanta chip the
  bundled 0.5 m model's footprint F1 was 0.07 with bilinear, 0.21 cubic, 0.37
  Lanczos and 0.72 nearest (0.70 on the chip itself; docs/guide.md). Nearest
  keeps each pixel's values and contrast, in blocks of at most two model
  pixels per scene pixel for enlargements up to 2x;
* model grid -> scene, classes: ``nearest`` in both directions, so the class
  raster is the polygons' raster (each scene pixel takes the class of the
  model pixel under its centre);
* model grid -> scene, probabilities: ``bilinear`` onto a finer scene grid,
  ``average`` onto a coarser one (the mean probability over the scene pixel).

Validity travels with the pixels: the warped datasets carry an alpha band
(``add_alpha``) that GDAL's warper fills from the source's mask (nodata value,
alpha band or internal mask), so a model pixel is nodata only where every scene
pixel under it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp, Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

STRIP_ROWS = 256
"""Rows of the scene grid warped back per step (the output rasters' block height)."""


@dataclass(frozen=True)
class Grid:
    """A pixel grid.

    Attributes:
        width: Columns.
        height: Rows.
        crs: ``rasterio.crs.CRS``.
        transform: ``affine.Affine``, pixel -> CRS coordinates.
    """

    width: int
    height: int
    crs: Any
    transform: Affine


@dataclass(frozen=True)
class ModelGrid:
    """The grid a scene is read on so that the model sees its own GSD.

    Attributes:
        grid: The model-GSD grid: the scene's CRS and origin, the transform
            scaled so that a pixel is ``model_gsd_m`` on the ground in x and y.
        scene: The scene's own grid.
        scene_gsd_m: The scene's GSD, metres (mean of x and y).
        model_gsd_m: The model's GSD, metres.
        resampling: How the scene is read onto ``grid``: ``"average"`` when the
            scene is finer than the model, ``"nearest"`` when it is coarser.
    """

    grid: Grid
    scene: Grid
    scene_gsd_m: float
    model_gsd_m: float
    resampling: str

    @property
    def factor(self) -> float:
        """Model GSD over scene GSD: above 1 the scene is reduced, below 1 enlarged."""
        return self.model_gsd_m / self.scene_gsd_m

    def back_resampling(self, kind: str) -> str:
        """Resampling of an output raster on its way back to the scene's grid.

        Args:
            kind: ``"classes"`` or ``"probabilities"``.

        Returns:
            ``"nearest"`` for classes; for probabilities ``"bilinear"`` onto a
            finer scene grid, ``"average"`` onto a coarser one.
        """
        if kind == "classes":
            return "nearest"
        return "bilinear" if self.factor > 1 else "average"


def model_grid(scene: Grid, pixel_m: tuple[float, float], model_gsd_m: float | None,
               tolerance: float) -> ModelGrid | None:
    """The model-GSD grid of a scene, or ``None`` when the GSDs agree.

    Args:
        scene: The scene's grid.
        pixel_m: ``(x, y)`` ground size of a scene pixel in metres
            (:meth:`geounet.io.read.Scene.pixel_size_m`; geographic CRSs
            measured on the ground).
        model_gsd_m: The model's GSD in metres, or ``None`` (never resampled).
        tolerance: Largest ``|scene_gsd / model_gsd - 1|`` left alone.

    Returns:
        A :class:`ModelGrid` covering the whole scene (its last row and
        column may reach past the scene's edge, as nodata), or ``None``.
    """
    if not model_gsd_m:
        return None
    gsd = 0.5 * (pixel_m[0] + pixel_m[1])
    if abs(gsd / model_gsd_m - 1) <= tolerance:
        return None
    fx, fy = model_gsd_m / pixel_m[0], model_gsd_m / pixel_m[1]
    width = max(1, math.ceil(scene.width / fx - 1e-6))
    height = max(1, math.ceil(scene.height / fy - 1e-6))
    grid = Grid(width, height, scene.crs, scene.transform * Affine.scale(fx, fy))
    return ModelGrid(grid, scene, gsd, model_gsd_m,
                     "average" if model_gsd_m > gsd else "nearest")


def warped(dataset: Any, target: Grid, resampling: str) -> WarpedVRT:
    """A dataset seen on another grid of the same CRS (a rasterio ``WarpedVRT``).

    Args:
        dataset: An open rasterio dataset.
        target: The grid to see it on.
        resampling: A ``rasterio.enums.Resampling`` name.

    Returns:
        The open ``WarpedVRT``; its last band is an alpha band (the source's
        validity, warped): the source's own alpha band when it has one (GDAL's
        warper carries it), else one added.
    """
    add_alpha = ColorInterp.alpha not in dataset.colorinterp
    return WarpedVRT(dataset, crs=target.crs, transform=target.transform, width=target.width,
                     height=target.height, resampling=Resampling[resampling],
                     add_alpha=add_alpha)


def strips_on_grid(path: Any, target: Grid, resampling: str,
                   rows: int = STRIP_ROWS) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Read a raster on another grid of its CRS, strip by strip.

    Args:
        path: A raster file (a model-grid output of this run).
        target: The grid to read it on (the scene's).
        resampling: A ``rasterio.enums.Resampling`` name.
        rows: Rows per strip.

    Yields:
        ``(row_off, data, valid)``: ``(count, n, width)`` values in the file's
        dtype (0 where invalid) and ``(n, width)`` bool validity.
    """
    with rasterio.open(path) as src, warped(src, target, resampling) as vrt:
        bands = list(range(1, src.count + 1))
        for row_off in range(0, target.height, rows):
            window = Window(0, row_off, target.width, min(rows, target.height - row_off))
            both = vrt.read([*bands, vrt.count], window=window)  # one warp: bands and alpha
            data, valid = both[:-1], both[-1] > 0
            if np.issubdtype(data.dtype, np.floating):
                valid &= np.all(np.isfinite(data), axis=0)
            data[:, ~valid] = 0
            yield row_off, data, valid
