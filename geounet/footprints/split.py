"""Split footprints of touching buildings that were merged into one polygon.

The classic marker-controlled watershed on the distance transform of the
building mask (Beucher & Lantuéjoul 1979, "Use of watersheds in contour
detection"; Soille, *Morphological Image Analysis*, 2nd ed. 2003, ch. 9),
as used to separate touching buildings in the SpaceNet challenges. For each
polygon large enough to hold two buildings (:mod:`geounet.footprints.watershed`):

1. rasterise it (``rasterio.features.rasterize``, pixel-centre rule) onto
   the scene grid ``transform`` in a window around its bounds padded by
   2 px (polygons made of that grid's pixel edges give back exactly their
   pixels);
2. Euclidean distance transform of the mask
   (``scipy.ndimage.distance_transform_edt``), in metres on the ground
   (the pixel's size in metres as ``sampling``, so non-square pixels of a
   geographic grid are handled; this equals the EDT in pixels times the
   pixel size);
3. markers = the regional maxima of that distance that stand out by at
   least ``h_m`` above the saddle joining them to any higher ground: the
   h-maxima transform (reconstruction by dilation of ``edt - h_m`` under
   ``edt``, as ``skimage.morphology.h_maxima`` computes it), each dome of
   it one marker (Soille's extended maxima, 8-connected components
   labelled by ``scipy.ndimage.label``; ``h_maxima``'s own output, the
   dome's top pixels, falls apart into many markers along the pixelated
   ridge of one long building). Markers closer than
   ``min_separation_m`` to each other are merged into one;
4. unless a connected part of the mask holds 2 or more markers, the
   polygon comes back unchanged (the same geometry object). Otherwise
   other parts (of a MultiPolygon) get one marker each, and
   ``skimage.segmentation.watershed(-edt, markers, mask=mask)`` labels
   the pixels; labels of fewer than
   ``min_piece_px`` pixels are dropped and their pixels, like every
   pixel outside the mask, go to the nearest remaining label; if fewer
   than 2 labels remain the polygon comes back unchanged;
5. each label is polygonised (``rasterio.features.shapes`` with the
   window's transform) and intersected with the source polygon, then made
   valid. The pieces therefore tile the source polygon exactly: their union
   is the input polygon, holes included, even for polygons not drawn on
   the grid.

Defaults, for building footprints at 0.3-1 m ground sampling distance:
``h_m = 1`` m (2-3 px at 0.3-0.5 m, 1 px at 1 m): a building must be at
least 2 m wider (twice ``h_m``) than the neck that joins it to another one,
which ignores the sub-pixel ridges of pixel staircases; ``min_separation_m
= 2`` m: two buildings' centres are further apart than that;
``min_area_m2 = 2 * pi * h_m**2``: a smaller polygon cannot hold two discs of
radius ``h_m``, so it is skipped without rasterising. Known limit of the
method: buildings that touch along their full width (row houses sharing a
wall) have no neck, hence one marker, and are not split.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
from affine import Affine, TransformNotInvertibleError

from geounet.errors import InvalidOptionError
from geounet.footprints.checks import (
    assemble,
    assemble_per_row,
    check_frame,
    check_number,
    empty_like,
    prepare,
    require_libraries,
)
from geounet.footprints.watershed import WatershedOptions, split_polygon
from geounet.geometry import metric_geometries, pixel_steps_m

log = logging.getLogger(__name__)

DEFAULT_H_M = 1.0
"""Default marker dynamic of :func:`split_touching`, metres (2-3 px at 0.3-0.5 m GSD)."""

DEFAULT_MIN_SEPARATION_M = 2.0
"""Default minimum distance between two buildings' markers, metres."""


def split_touching(
    gdf: gpd.GeoDataFrame,
    transform: Any,
    min_separation_m: float = DEFAULT_MIN_SEPARATION_M,
    h_m: float = DEFAULT_H_M,
    min_area_m2: float | None = None,
    min_piece_px: int = 2,
) -> gpd.GeoDataFrame:
    """Split footprints of touching buildings that were merged into one polygon.

    Marker-controlled watershed on the distance transform of each polygon's
    mask (Beucher & Lantuéjoul 1979; Soille 2003, ch. 9), as in the SpaceNet
    challenges; the five steps and the defaults are described in
    :mod:`geounet.footprints.split`. A polygon holding one building comes
    back unchanged (the same geometry object); the pieces of a split one tile
    it exactly.

    Args:
        gdf: Footprints (Polygon/MultiPolygon) in any CRS, in the CRS of
            ``transform``.
        transform: ``affine.Affine`` of the scene's pixel grid (pixel -> CRS
            units), the grid the footprints were vectorised on.
        min_separation_m: Markers closer than this many metres are one
            building (0 = never merge).
        h_m: Minimum dynamic (height above the saddle) of a distance-transform
            maximum to be a building's marker, metres; > 0.
        min_area_m2: Polygons smaller than this many square metres are not
            examined (default ``2 * pi * h_m**2``).
        min_piece_px: Watershed labels smaller than this many pixels are merged
            into their neighbours rather than made pieces (default 2: single
            pixels).

    Returns:
        A new GeoDataFrame in the input CRS: a split polygon is replaced, in
        place, by one row per piece (parent's ``class_id``, ``class_name``,
        ``score``..., ``area_m2`` of the piece); other rows unchanged.

    Raises:
        InvalidOptionError: for a non-positive ``h_m``, negative
            ``min_separation_m``, ``min_area_m2`` or ``min_piece_px``, a
            non-invertible ``transform``, or a ``gdf`` that is not a
            GeoDataFrame.
        MissingDependencyError: without scipy and scikit-image
            (``geounet[footprints]``).
        MissingCRSError: if ``gdf`` has no CRS.
    """
    check_frame(gdf, "split_touching")
    options, min_area = _check_options(h_m, min_separation_m, min_area_m2, min_piece_px)
    require_libraries("split_touching")
    transform, inverse = _invertible(transform)
    gdf, changed = prepare(gdf)
    if gdf.empty:
        return empty_like(gdf)

    metric, factor = metric_geometries(gdf)
    area = metric.area.to_numpy() * factor**2
    candidates = np.flatnonzero(area >= min_area)
    if len(candidates) == 0:
        return assemble_per_row(gdf, list(gdf.geometry.to_numpy()), changed)
    geoms = gdf.geometry.to_numpy()
    px_m = pixel_steps_m(gdf, geoms[candidates], transform, factor)   # (n, 2): row, col metres
    src, out_geoms, out_changed, n_split = _split_rows(
        geoms, changed, candidates, px_m, transform, inverse, options)
    log.info("split_touching: %d of %d polygons split into %d pieces", n_split, len(gdf),
             len(out_geoms) - (len(gdf) - n_split))
    return assemble(gdf, src, out_geoms, out_changed)


def _check_options(h_m: Any, min_separation_m: Any, min_area_m2: Any,
                   min_piece_px: Any) -> tuple[WatershedOptions, float]:
    """Checked options of :func:`split_touching` and its ``min_area_m2`` (m2)."""
    h = check_number("h_m", h_m, "metres", "pass e.g. h_m=1.0", positive=True,
                     allow_inf=False)
    min_sep = check_number("min_separation_m", min_separation_m, "metres",
                           "pass 0 to never merge markers", allow_inf=False)
    min_area = (2 * math.pi * h**2 if min_area_m2 is None else check_number(
        "min_area_m2", min_area_m2, "square metres", "pass 0 to examine every polygon"))
    min_piece = int(check_number("min_piece_px", min_piece_px, "pixels",
                                 "pass e.g. 2", allow_inf=False))
    return WatershedOptions(h, min_sep, min_piece), min_area


def _invertible(transform: Any) -> tuple[Affine, Affine]:
    """``(transform, ~transform)`` as ``Affine``; InvalidOptionError when not invertible."""
    try:
        transform = Affine(*tuple(transform)[:6])
        inverse = ~transform
    except (TypeError, ValueError, ZeroDivisionError, TransformNotInvertibleError):
        raise InvalidOptionError(
            f"transform {transform!r} is not an invertible affine transform: expected the "
            "scene's pixel -> CRS transform (rasterio dataset.transform)") from None
    return transform, inverse


def _split_rows(geoms: np.ndarray, changed: np.ndarray, candidates: np.ndarray,
                px_m: np.ndarray, transform: Affine, inverse: Affine,
                options: WatershedOptions) -> tuple[list[int], list[Any], list[bool], int]:
    """Split every candidate polygon; others (and unsplit ones) are kept as they are.

    Returns:
        ``(src, geoms, changed, n_split)``: per output row its source row,
        geometry and changed flag, and the number of polygons split.
    """
    src: list[int] = []
    out_geoms: list[Any] = []
    out_changed: list[bool] = []
    n_split = 0
    cand_pos = {int(i): k for k, i in enumerate(candidates)}
    with rasterio.Env():  # one GDAL environment for all the rasterize/shapes calls
        for i, geom in enumerate(geoms):
            pieces = None
            if i in cand_pos:
                pieces = split_polygon(geom, transform, inverse, px_m[cand_pos[i]], options)
            if pieces is None:
                src.append(i)
                out_geoms.append(geom)
                out_changed.append(bool(changed[i]))
            else:
                n_split += 1
                src.extend([i] * len(pieces))
                out_geoms.extend(pieces)
                out_changed.extend([True] * len(pieces))
    return src, out_geoms, out_changed, n_split
