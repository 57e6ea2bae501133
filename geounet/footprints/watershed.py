"""Marker-controlled watershed of one footprint: the steps of :func:`split_polygon`.

:func:`geounet.footprints.split.split_touching` calls :func:`split_polygon`
for every polygon large enough to hold two buildings; the method (Beucher &
Lantuéjoul 1979; Soille, *Morphological Image Analysis*, 2nd ed. 2003, ch. 9)
is described in :mod:`geounet.footprints.split`.

scipy and scikit-image are imported inside the functions, so importing this
module is cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from affine import Affine
from rasterio import features

from geounet.geometry import pixel_to_crs, polygonal

WINDOW_PAD_PX = 2
"""Pixels added on each side of a polygon's bounds to make its raster window."""

EIGHT = np.ones((3, 3), bool)
"""8-connectivity structuring element."""


@dataclass(frozen=True)
class WatershedOptions:
    """Checked options of :func:`geounet.footprints.split.split_touching`.

    Attributes:
        h_m: Minimum dynamic of a distance-transform maximum to be a marker,
            metres (> 0).
        min_separation_m: Markers closer than this are merged, metres (0 =
            never merge).
        min_piece_px: Watershed labels with fewer pixels are merged into
            their neighbours.
    """

    h_m: float
    min_separation_m: float
    min_piece_px: int


def split_polygon(geom: Any, transform: Affine, inverse: Affine, px_m: np.ndarray,
                  options: WatershedOptions) -> list[Any] | None:
    """Pieces of one polygon, or None when it holds fewer than two buildings.

    Args:
        geom: A valid Polygon or MultiPolygon in the CRS of ``transform``.
        transform: The scene grid's pixel -> CRS affine transform.
        inverse: ``~transform`` (CRS -> pixel).
        px_m: ``(2,)`` ground size in metres of one row step and one column
            step of the grid at the polygon.
        options: The watershed's options.

    Returns:
        Two or more valid (Multi)Polygons that tile ``geom`` (steps 1-5 of
        :mod:`geounet.footprints.split`), or None when the polygon stays whole.
    """
    from scipy import ndimage

    mask, col0, row0 = _window_mask(geom, transform, inverse)
    if mask.sum() < 2:
        return None
    sampling = (float(px_m[0]), float(px_m[1]))
    edt = ndimage.distance_transform_edt(mask, sampling=sampling)
    if edt.max() < options.h_m:
        return None
    markers, n = _building_markers(edt, sampling, options.h_m, options.min_separation_m)
    if n < 2:
        return None
    n_markers = _mark_parts(mask, edt, markers, n)
    if n_markers is None:
        return None
    labels = _watershed_labels(edt, markers, mask, n_markers, options.min_piece_px)
    if labels is None:
        return None
    pieces = _pieces(geom, labels, sampling, transform, col0, row0)
    return pieces if len(pieces) >= 2 else None


def _window_mask(geom: Any, transform: Affine, inverse: Affine) -> tuple[np.ndarray, int, int]:
    """Step 1: rasterise ``geom`` (pixel-centre rule) in a padded window of the grid.

    Returns:
        ``(mask, col0, row0)``: the ``(h, w)`` bool mask and the window's
        top-left pixel (column, row) in the scene grid.
    """
    pad = WINDOW_PAD_PX
    x0, y0, x1, y1 = geom.bounds
    corners = np.array([inverse * xy for xy in ((x0, y0), (x0, y1), (x1, y0), (x1, y1))])
    col0 = math.floor(corners[:, 0].min()) - pad
    row0 = math.floor(corners[:, 1].min()) - pad
    width = math.ceil(corners[:, 0].max()) + pad - col0
    height = math.ceil(corners[:, 1].max()) + pad - row0
    mask = features.rasterize([(geom, 1)], out_shape=(height, width), fill=0, dtype="uint8",
                              transform=transform * Affine.translation(col0, row0)) > 0
    return mask, col0, row0


def _building_markers(edt: np.ndarray, sampling: tuple[float, float], h_m: float,
                      min_sep_m: float) -> tuple[np.ndarray, int]:
    """Step 3: extended maxima of ``edt`` (metres), those closer than ``min_sep_m`` merged.

    Returns:
        ``(markers, n)``: ``(h, w)`` int32 labels ``1..n``, 0 elsewhere.
    """
    from scipy import ndimage

    markers, n = extended_maxima(edt, h_m, EIGHT)
    if n >= 2 and min_sep_m > 0:
        # markers closer than min_sep_m: their min_sep_m/2 neighbourhoods overlap
        near = ndimage.distance_transform_edt(markers == 0, sampling=sampling) <= min_sep_m / 2
        groups, _ = ndimage.label(near, structure=EIGHT)
        markers, n = relabel(np.where(markers > 0, groups, 0))
    return markers, n


def _mark_parts(mask: np.ndarray, edt: np.ndarray, markers: np.ndarray, n: int) -> int | None:
    """Step 4: check a connected part holds 2+ markers; give markerless parts one.

    ``markers`` is updated in place: each part without a marker gets a new
    label at its deepest pixel.

    Returns:
        The new number of markers, or None when no part holds two markers.
    """
    from scipy import ndimage

    # only a connected part of the mask with 2+ markers holds touching buildings
    parts, n_parts = ndimage.label(mask, structure=EIGHT)
    per_part = np.zeros((n_parts + 1, n + 1), bool)
    per_part[parts[markers > 0], markers[markers > 0]] = True
    if per_part.sum(axis=1).max() < 2:
        return None
    # other parts (of a MultiPolygon) get a marker of their own at their deepest pixel
    for p in np.flatnonzero(~per_part[1:].any(axis=1)) + 1:
        n += 1
        markers.flat[np.where(parts == p, edt, -1.0).argmax()] = n
    return n


def _watershed_labels(edt: np.ndarray, markers: np.ndarray, mask: np.ndarray, n: int,
                      min_piece_px: int) -> np.ndarray | None:
    """Step 4: watershed of ``-edt`` from ``markers``; labels under ``min_piece_px`` dropped.

    Returns:
        ``(h, w)`` labels ``1..k`` (0 outside the mask and for dropped
        pixels), or None when fewer than 2 labels remain.
    """
    from skimage.segmentation import watershed

    labels = watershed(-edt, markers, mask=mask)
    counts = np.bincount(labels.ravel(), minlength=n + 1)
    small = np.flatnonzero(counts < min_piece_px)
    small = small[small > 0]
    if len(small):
        labels[np.isin(labels, small)] = 0
        labels, n = relabel(labels)
        if n < 2:
            return None
    return labels


def _pieces(geom: Any, labels: np.ndarray, sampling: tuple[float, float], transform: Affine,
            col0: int, row0: int) -> list[Any]:
    """Step 5: polygonise each label and intersect it with ``geom``.

    Returns:
        The non-empty valid polygonal pieces, in label order, in CRS units.
    """
    from scipy import ndimage

    # every pixel of the window goes to its nearest label: a partition of the window
    idx = ndimage.distance_transform_edt(labels == 0, sampling=sampling,
                                         return_distances=False, return_indices=True)
    full = labels[tuple(idx)].astype(np.int32)
    # polygonise in scene pixel coordinates (exact integers), then to CRS units with the
    # scene transform as GDAL does: pixel edges land on the same coordinates as the input's
    regions: dict[int, list] = {}
    for g, v in features.shapes(full, transform=Affine.translation(col0, row0),
                                connectivity=4):
        regions.setdefault(int(v), []).append(shapely.geometry.shape(g))
    pieces = []
    for v in sorted(regions):
        region = pixel_to_crs(shapely.union_all(regions[v]), transform)
        piece = shapely.intersection(geom, region)
        if not piece.is_valid:
            piece = shapely.make_valid(piece)
        piece = polygonal(piece)
        if not piece.is_empty:
            pieces.append(piece)
    return pieces


def extended_maxima(edt: np.ndarray, h: float,
                    structure: np.ndarray) -> tuple[np.ndarray, int]:
    """Labelled extended maxima (Soille's EMAX_h = RMAX(HMAX_h)) of ``edt``.

    ``HMAX_h`` is the morphological reconstruction by dilation of ``edt - h``
    under ``edt`` (what ``skimage.morphology.h_maxima`` computes). Every dome
    that rises at least ``h`` above its saddle becomes one connected marker:
    the set of its pixels above the reconstruction. ``h_maxima`` itself keeps
    only the dome's highest pixels, and on the ridge of a pixelated building
    the distance transform reaches its highest value at many disconnected
    pixels, which would become many markers for one building.

    Args:
        edt: ``(h, w)`` float distance transform (metres).
        h: Minimum dynamic, in the unit of ``edt``.
        structure: Connectivity structuring element (``(3, 3)`` bool).

    Returns:
        ``(markers, n)``: ``(h, w)`` int32 labels ``1..n`` of the markers, 0
        elsewhere.
    """
    from scipy import ndimage
    from skimage.morphology import reconstruction

    rec = reconstruction(edt - h, edt, method="dilation", footprint=structure)
    residue = edt - rec
    eps = 1e-9 * max(1.0, float(edt.max()))
    caps, n = ndimage.label(residue > eps, structure=structure)
    if n == 0:
        return caps.astype(np.int32), 0
    height = ndimage.maximum(residue, caps, index=np.arange(1, n + 1))
    lut = np.zeros(n + 1, np.int32)
    tall = np.flatnonzero(np.asarray(height) >= h - eps) + 1
    lut[tall] = np.arange(1, len(tall) + 1)
    return lut[caps], len(tall)


def relabel(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Renumber labels ``1..n`` in increasing order of value, keeping 0.

    Args:
        labels: Integer label array of any shape (0 = background).

    Returns:
        ``(labels, n)``: int32 labels of the same shape and their count.
    """
    values = np.unique(labels)
    values = values[values > 0]
    lut = np.zeros(int(labels.max()) + 1 if labels.size else 1, np.int32)
    lut[values] = np.arange(1, len(values) + 1)
    return lut[labels], len(values)
