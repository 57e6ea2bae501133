"""Whole-array versions of the stages, for data that fits in memory.

:func:`predict_array` tiles, predicts and stitches an in-memory array (stages
2-4; training validation uses it); :func:`vectorize` polygonises and
post-processes a whole class raster (stages 6-6b). Both give what the streaming
run gives on the same data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from rasterio.windows import Window

from geounet.config import VectorizeConfig
from geounet.io.padding import reflect_pad
from geounet.pipeline.postprocess import finish_polygons
from geounet.pipeline.predictors import batched
from geounet.pipeline.shapes import raw_polygons
from geounet.pipeline.stitch import stitch_to_array
from geounet.pipeline.tiling import plan_tiles


def predict_array(
    predictor: Callable[[np.ndarray], np.ndarray],
    scaled: np.ndarray,
    channels: int,
    tile_size_px: int,
    overlap_px: int,
    batch_size: int = 4,
    align_px: int = 1,
    context_px: int = 0,
) -> np.ndarray:
    """Tile, predict and stitch an in-memory scaled array (stages 2-4).

    Args:
        predictor: A predictor (see :mod:`geounet.pipeline.predictors`):
            ``(b, c, t, t)`` float32 -> ``(b, k, t, t)`` float32 probabilities.
        scaled: ``(c, h, w)`` float32 input, already scaled.
        channels: Output channels ``k`` of the model.
        tile_size_px: Tile size in pixels.
        overlap_px: Overlap in pixels.
        batch_size: Tiles per forward pass.
        align_px: Tile offsets are multiples of this (the model's pad multiple).
        context_px: The model's context, which sets the blending margin.

    Returns:
        ``(k, h, w)`` float32 probabilities.

    Raises:
        TilingError: for an invalid tile size/overlap pair.
    """
    _, h, w = scaled.shape
    plan = plan_tiles(w, h, tile_size_px, overlap_px, align_px, context_px)
    t = plan.tile_size_px

    def crop(win: Window) -> np.ndarray:
        r0, c0 = int(win.row_off), int(win.col_off)
        x = scaled[:, r0 : r0 + t, c0 : c0 + t]
        if x.shape[1:] != (t, t):  # past the edge: reflected, as the pipeline's reader does
            x = reflect_pad(x, t - x.shape[1], t - x.shape[2])
        return x

    def tiles() -> Iterator[tuple[Window, np.ndarray]]:
        for group in batched(plan.windows, batch_size):
            probs = predictor(np.stack([crop(wi) for wi in group]))
            yield from zip(group, probs, strict=True)

    return stitch_to_array(plan, channels, tiles())[0]


def vectorize(
    classes: np.ndarray,
    transform: Any,
    crs: Any,
    class_names: list[str],
    probs: np.ndarray | None = None,
    config: VectorizeConfig | None = None,
    mask: np.ndarray | None = None,
    background: int | None = 0,
) -> Any:
    """Class raster to a GeoDataFrame of finished polygons (``geounet.vectorize``).

    Args:
        classes: ``(h, w)`` uint8 class ids (0 = background,
            255 = nodata).
        transform: Affine transform of the raster.
        crs: CRS of the raster (any rasterio/pyproj CRS).
        class_names: Name per class id.
        probs: Optional ``(k, h, w)`` float probabilities for the ``score``
            column (NaN scores without it).
        config: Area filter, simplification, connectivity, footprint options.
        mask: Optional ``(h, w)`` bool restricting where polygons are made
            (default: class != ``background`` and != 255).
        background: Class id left out of the polygons, or ``None`` (every
            class is a product, as in land cover).

    Returns:
        GeoDataFrame in ``crs`` with columns ``class_id`` (int32),
        ``class_name`` (str), ``area_m2`` (float, square metres), ``score``
        (float in [0, 1]) and Polygon/MultiPolygon ``geometry``.
    """
    config = config or VectorizeConfig()
    raw = raw_polygons(classes, transform, crs, class_names, probs, config.connectivity, mask,
                       background)
    return finish_polygons(raw, config, transform)
