"""Post-processing of building footprints: split touching buildings, fill holes, regularise.

Every function takes a GeoDataFrame of footprints (geounet's columns
``class_id``, ``class_name``, ``area_m2``, ``score``, ``geometry``; any other
columns are carried along) and returns a new one with the same columns, the
same CRS and a fresh ``0..n-1`` index. Rows whose geometry changed (or whose
``area_m2`` is NaN or missing) get a new ``area_m2``; every other attribute
comes from the source polygon (pieces of a split polygon copy their parent's). Unchanged rows keep their geometry object
as is. Outputs are valid (``shapely.is_valid``) Polygons or MultiPolygons;
empty and missing geometries are dropped.

Lengths and areas are in metres and square metres on the ground, as in
:mod:`geounet.polygons`: measured in the CRS itself when it is projected
(scaled by its linear unit, so feet work) and in the local UTM zone
(``GeoDataFrame.estimate_utm_crs``) when it is geographic. Geometries are
always returned in the input CRS.

Heavy libraries (scipy, scikit-image, buildingregulariser) are imported inside
the functions, so importing this module is cheap.
"""

from __future__ import annotations

import logging
import math
import warnings

import geopandas as gpd
import numpy as np
import shapely

from geounet.errors import GeounetError, MissingCRSError
from geounet.polygons import _metric, _polygonal, _to_crs_coords

log = logging.getLogger(__name__)

DEFAULT_H_M = 1.0
"""Default marker dynamic of :func:`split_touching`, metres (2-3 px at 0.3-0.5 m GSD)."""

DEFAULT_MIN_SEPARATION_M = 2.0
"""Default minimum distance between two buildings' markers, metres."""

DEFAULT_TOLERANCE_M = 1.0
"""Default simplification tolerance of :func:`regularize`, metres (about 1-3 px)."""


# --------------------------------------------------------------------------- helpers


def _check_number(name: str, value, unit: str, fix: str, *, positive: bool = False,
                  upper: float | None = None, allow_inf: bool = True) -> float:
    """``value`` as a float, or a GeounetError naming it, the expectation and the fix."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise GeounetError(f"{name} {value!r} is not a number: expected {unit}; {fix}") from None
    bad = math.isnan(v) or (v <= 0 if positive else v < 0) or (upper is not None and v > upper)
    if not allow_inf and math.isinf(v):
        bad = True
    if bad:
        want = "more than 0" if positive else "0 or more"
        if upper is not None:
            want += f" and at most {upper:g}"
        if not allow_inf:
            want += ", finite"
        raise GeounetError(f"{name} {value!r} is out of range: expected {want} {unit}; {fix}")
    return v


def _check_frame(gdf, func: str) -> None:
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise GeounetError(
            f"{func}() got a {type(gdf).__name__}: expected a geopandas GeoDataFrame of "
            "footprints; build one with geounet.polygons.vectorize or geopandas.read_file"
        )
    if gdf.crs is None:
        raise MissingCRSError(
            f"{func}(): the footprints have no CRS: expected a projected or geographic CRS "
            "to measure metres in; set it with gdf.set_crs(...)"
        )


def _prepare(gdf: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, np.ndarray]:
    """Drop empty/missing geometries, make invalid ones valid and polygonal.

    Returns:
        ``(frame, changed)``: the frame with a ``0..n-1`` index and a bool array
        that is True where a geometry was repaired (its ``area_m2`` is stale).
    """
    geoms = gdf.geometry.to_numpy()
    keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    gdf = gdf.loc[keep].reset_index(drop=True)
    geoms = gdf.geometry.to_numpy().copy()
    types = shapely.get_type_id(geoms)
    bad = ~shapely.is_valid(geoms) | ~np.isin(types, (3, 6))   # 3 Polygon, 6 MultiPolygon
    changed = np.zeros(len(gdf), bool)
    if bad.any():
        for i in np.flatnonzero(bad):
            geoms[i] = _polygonal(shapely.make_valid(geoms[i]))
        changed = bad
        gdf = gdf.copy()
        gdf[gdf.geometry.name] = gpd.GeoSeries(geoms, crs=gdf.crs, index=gdf.index)
        nonempty = ~shapely.is_empty(geoms)
        gdf, changed = gdf.loc[nonempty].reset_index(drop=True), changed[nonempty]
    return gdf, changed


def _area_m2(geoms, crs) -> np.ndarray:
    """Areas in square metres of ``geoms`` (in ``crs``), as :mod:`geounet.polygons` measures."""
    if len(geoms) == 0:
        return np.zeros(0)
    metric, factor = _metric(gpd.GeoDataFrame(geometry=gpd.GeoSeries(list(geoms), crs=crs)))
    return metric.area.to_numpy() * factor**2


def _assemble(gdf: gpd.GeoDataFrame, src: list[int], geoms: list, changed) -> gpd.GeoDataFrame:
    """Rows ``gdf.iloc[src]`` with ``geoms`` as geometry; ``area_m2`` measured where the
    geometry changed or the area is missing (NaN)."""
    changed = np.asarray(changed, bool)
    out = gdf.iloc[np.asarray(src, np.int64)].reset_index(drop=True)
    col = gdf.geometry.name
    arr = np.empty(len(geoms), dtype=object)
    arr[:] = geoms
    out[col] = gpd.GeoSeries(arr, crs=gdf.crs)
    if "area_m2" not in out.columns:
        out["area_m2"] = np.nan
    changed = changed | np.isnan(out["area_m2"].to_numpy(np.float64))   # missing: measure
    if changed.any():
        area = out["area_m2"].to_numpy(np.float64, copy=True)
        area[changed] = _area_m2(arr[changed], gdf.crs)
        out["area_m2"] = area
    if "class_id" in out.columns:
        out["class_id"] = out["class_id"].astype(np.int32)
    return out[list(gdf.columns) + [c for c in out.columns if c not in gdf.columns]]


def _empty_like(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return gdf.iloc[:0].reset_index(drop=True)


# --------------------------------------------------------------------------- split


def split_touching(
    gdf: gpd.GeoDataFrame,
    transform,
    min_separation_m: float = DEFAULT_MIN_SEPARATION_M,
    h_m: float = DEFAULT_H_M,
    min_area_m2: float | None = None,
    min_piece_px: int = 2,
) -> gpd.GeoDataFrame:
    """Split footprints of touching buildings that were merged into one polygon.

    The classic marker-controlled watershed on the distance transform of the
    building mask (Beucher & Lantuéjoul 1979, "Use of watersheds in contour
    detection"; Soille, *Morphological Image Analysis*, 2nd ed. 2003, ch. 9),
    as used to separate touching buildings in the SpaceNet challenges. For each
    polygon large enough to hold two buildings:

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
        GeounetError: for a non-positive ``h_m``, negative ``min_separation_m``,
            ``min_area_m2`` or ``min_piece_px``, or a non-invertible
            ``transform``.
        MissingCRSError: if ``gdf`` has no CRS.
    """
    import rasterio
    from affine import Affine, TransformNotInvertibleError

    _check_frame(gdf, "split_touching")
    h_m = _check_number("h_m", h_m, "metres", "pass e.g. h_m=1.0", positive=True,
                        allow_inf=False)
    min_sep = _check_number("min_separation_m", min_separation_m, "metres",
                            "pass 0 to never merge markers", allow_inf=False)
    min_area = (2 * math.pi * h_m**2 if min_area_m2 is None else _check_number(
        "min_area_m2", min_area_m2, "square metres", "pass 0 to examine every polygon"))
    min_piece = int(_check_number("min_piece_px", min_piece_px, "pixels",
                                  "pass e.g. 2", allow_inf=False))
    try:
        transform = Affine(*tuple(transform)[:6])
        inverse = ~transform
    except (TypeError, ValueError, ZeroDivisionError, TransformNotInvertibleError):
        raise GeounetError(
            f"transform {transform!r} is not an invertible affine transform: expected the "
            "scene's pixel -> CRS transform (rasterio dataset.transform)") from None
    gdf, changed = _prepare(gdf)
    if gdf.empty:
        return _empty_like(gdf)

    metric, factor = _metric(gdf)
    area = metric.area.to_numpy() * factor**2
    candidates = np.flatnonzero(area >= min_area)
    if len(candidates) == 0:
        return _assemble(gdf, list(range(len(gdf))), list(gdf.geometry.to_numpy()), changed)
    geoms = gdf.geometry.to_numpy()
    px_m = _pixel_size_m(gdf, geoms[candidates], transform, factor)   # (n, 2): row, col metres

    src, out_geoms, out_changed = [], [], []
    n_split = 0
    cand_pos = {int(i): k for k, i in enumerate(candidates)}
    with rasterio.Env():  # one GDAL environment for all the rasterize/shapes calls
        for i, geom in enumerate(geoms):
            pieces = None
            if i in cand_pos:
                pieces = _split_one(geom, transform, inverse, px_m[cand_pos[i]], h_m,
                                    min_sep, min_piece)
            if pieces is None:
                src.append(i)
                out_geoms.append(geom)
                out_changed.append(bool(changed[i]))
            else:
                n_split += 1
                src.extend([i] * len(pieces))
                out_geoms.extend(pieces)
                out_changed.extend([True] * len(pieces))
    log.info("split_touching: %d of %d polygons split into %d pieces", n_split, len(gdf),
             len(out_geoms) - (len(gdf) - n_split))
    return _assemble(gdf, src, out_geoms, out_changed)


def _pixel_size_m(gdf, geoms, transform, factor) -> np.ndarray:
    """``(n, 2)`` ground size in metres of one pixel row step and column step at each polygon."""
    col_step = math.hypot(transform.a, transform.d)
    row_step = math.hypot(transform.b, transform.e)
    if not gdf.crs.is_geographic:
        return np.tile([row_step * factor, col_step * factor], (len(geoms), 1))
    from pyproj import Transformer

    tr = Transformer.from_crs(gdf.crs, gdf.estimate_utm_crs(), always_xy=True)
    pts = shapely.get_coordinates(shapely.point_on_surface(geoms))
    x, y = pts[:, 0], pts[:, 1]
    x0, y0 = tr.transform(x, y)
    xc, yc = tr.transform(x + transform.a, y + transform.d)
    xr, yr = tr.transform(x + transform.b, y + transform.e)
    return np.column_stack([np.hypot(xr - x0, yr - y0), np.hypot(xc - x0, yc - y0)])


def _split_one(geom, transform, inverse, px_m, h_m, min_sep_m, min_piece_px):
    """Pieces of one polygon, or None when it holds fewer than two buildings."""
    from affine import Affine
    from rasterio import features
    from scipy import ndimage
    from skimage.segmentation import watershed

    pad = 2
    x0, y0, x1, y1 = geom.bounds
    corners = np.array([inverse * xy for xy in ((x0, y0), (x0, y1), (x1, y0), (x1, y1))])
    col0 = math.floor(corners[:, 0].min()) - pad
    row0 = math.floor(corners[:, 1].min()) - pad
    width = math.ceil(corners[:, 0].max()) + pad - col0
    height = math.ceil(corners[:, 1].max()) + pad - row0
    mask = features.rasterize([(geom, 1)], out_shape=(height, width), fill=0, dtype="uint8",
                              transform=transform * Affine.translation(col0, row0)) > 0
    if mask.sum() < 2:
        return None
    sampling = (float(px_m[0]), float(px_m[1]))
    edt = ndimage.distance_transform_edt(mask, sampling=sampling)
    if edt.max() < h_m:
        return None
    eight = np.ones((3, 3), bool)
    markers, n = _extended_maxima(edt, h_m, eight)
    if n >= 2 and min_sep_m > 0:
        # markers closer than min_sep_m: their min_sep_m/2 neighbourhoods overlap
        near = ndimage.distance_transform_edt(markers == 0, sampling=sampling) <= min_sep_m / 2
        groups, _ = ndimage.label(near, structure=eight)
        markers, n = _relabel(np.where(markers > 0, groups, 0))
    if n < 2:
        return None
    # only a connected part of the mask with 2+ markers holds touching buildings
    parts, n_parts = ndimage.label(mask, structure=eight)
    per_part = np.zeros((n_parts + 1, n + 1), bool)
    per_part[parts[markers > 0], markers[markers > 0]] = True
    if per_part.sum(axis=1).max() < 2:
        return None
    # other parts (of a MultiPolygon) get a marker of their own at their deepest pixel
    for p in np.flatnonzero(~per_part[1:].any(axis=1)) + 1:
        n += 1
        markers.flat[np.where(parts == p, edt, -1.0).argmax()] = n
    labels = watershed(-edt, markers, mask=mask)
    counts = np.bincount(labels.ravel(), minlength=n + 1)
    small = np.flatnonzero(counts < min_piece_px)
    small = small[small > 0]
    if len(small):
        labels[np.isin(labels, small)] = 0
        labels, n = _relabel(labels)
        if n < 2:
            return None
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
        region = _to_crs_coords(shapely.union_all(regions[v]), transform)
        piece = shapely.intersection(geom, region)
        if not piece.is_valid:
            piece = shapely.make_valid(piece)
        piece = _polygonal(piece)
        if not piece.is_empty:
            pieces.append(piece)
    return pieces if len(pieces) >= 2 else None


def _extended_maxima(edt: np.ndarray, h: float, structure: np.ndarray):
    """Labelled extended maxima (Soille's EMAX_h = RMAX(HMAX_h)) of ``edt``.

    ``HMAX_h`` is the morphological reconstruction by dilation of ``edt - h``
    under ``edt`` (what ``skimage.morphology.h_maxima`` computes). Every dome
    that rises at least ``h`` above its saddle becomes one connected marker:
    the set of its pixels above the reconstruction. ``h_maxima`` itself keeps
    only the dome's highest pixels, and on the ridge of a pixelated building
    the distance transform reaches its highest value at many disconnected
    pixels, which would become many markers for one building.

    Returns:
        ``(markers, n)``: int32 labels ``1..n`` of the markers, 0 elsewhere.
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


def _relabel(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels renumbered ``1..n`` in order of first value, 0 kept; returns ``(labels, n)``."""
    values = np.unique(labels)
    values = values[values > 0]
    lut = np.zeros(int(labels.max()) + 1 if labels.size else 1, np.int32)
    lut[values] = np.arange(1, len(values) + 1)
    return lut[labels], len(values)


# --------------------------------------------------------------------------- holes


def fill_holes(gdf: gpd.GeoDataFrame, max_hole_area_m2: float) -> gpd.GeoDataFrame:
    """Remove the interior rings (holes) smaller than ``max_hole_area_m2``.

    Each hole's area is measured in square metres (in the CRS scaled by its
    linear unit, or in the local UTM zone for a geographic CRS); the rings that
    stay keep their exact input coordinates. Works on Polygons and on each part
    of MultiPolygons.

    Args:
        gdf: Footprints in any CRS.
        max_hole_area_m2: Holes with an area strictly below this many square
            metres are filled. 0 keeps every hole; ``float('inf')`` fills every
            hole.

    Returns:
        A new GeoDataFrame in the input CRS with the same columns; ``area_m2``
        is recomputed for polygons that lost a hole, other rows (and geometry
        objects) are unchanged.

    Raises:
        GeounetError: if ``max_hole_area_m2`` is negative or NaN.
        MissingCRSError: if ``gdf`` has no CRS.
    """
    _check_frame(gdf, "fill_holes")
    limit = _check_number("max_hole_area_m2", max_hole_area_m2, "square metres",
                          "pass 0 to keep every hole or float('inf') to fill them all")
    gdf, changed = _prepare(gdf)
    if gdf.empty:
        return _empty_like(gdf)
    geoms = gdf.geometry.to_numpy()
    out = list(geoms)
    n_holes = shapely.get_num_interior_rings(shapely.get_parts(geoms))
    if limit > 0 and n_holes.sum() > 0:
        metric, factor = _metric(gdf)
        mgeoms = metric.to_numpy()
        # all parts of all geometries, in input and metric CRS (same ring order)
        parts, part_of = shapely.get_parts(geoms, return_index=True)
        mparts = shapely.get_parts(mgeoms)
        rings, ring_of = shapely.get_rings(mparts, return_index=True)
        is_hole = np.ones(len(rings), bool)
        # get_rings lists each part's exterior first
        first = np.r_[True, ring_of[1:] != ring_of[:-1]]
        is_hole[first] = False
        ring_area = shapely.area(shapely.polygons(rings)) * factor**2
        small = is_hole & (ring_area < limit)
        touched = np.unique(ring_of[small])
        for p in touched:
            part = parts[p]
            sel = np.flatnonzero(ring_of == p)[1:]     # this part's holes, in order
            keep = [part.interiors[k] for k, r in enumerate(sel) if not small[r]]
            parts[p] = shapely.Polygon(part.exterior, keep)
        for g in np.unique(part_of[touched]):
            mine = parts[part_of == g]
            geom = mine[0] if geoms[g].geom_type == "Polygon" else shapely.MultiPolygon(
                list(mine))
            if not geom.is_valid:
                geom = _polygonal(shapely.make_valid(geom))
            out[g] = geom
            changed[g] = True
        log.info("fill_holes: filled %d holes in %d polygons", int(small.sum()),
                 len(np.unique(part_of[touched])) if len(touched) else 0)
    return _assemble(gdf, list(range(len(gdf))), out, changed)


# --------------------------------------------------------------------------- regularise


def regularize(
    gdf: gpd.GeoDataFrame,
    tolerance_m: float = DEFAULT_TOLERANCE_M,
    allow_45: bool = False,
    max_area_change: float = 0.2,
    min_iou: float = 0.7,
    parallel_threshold_m: float | None = None,
) -> gpd.GeoDataFrame:
    """Make footprints right-angled and aligned with each building's main direction.

    Three steps, run in a metric CRS (the input CRS when it is projected, with
    the tolerances converted from metres to its unit; the local UTM zone when
    it is geographic):

    1. ``buildingregulariser.regularize_geodataframe`` (PyPI
       ``buildingregulariser``, after ArcGIS Pro's "Regularize Building
       Footprint"): each polygon is simplified (Douglas-Peucker,
       ``tolerance_m``), its dominant direction is the peak of a
       length-weighted histogram of edge angles modulo 90 degrees, every edge
       is rotated about its midpoint to be parallel or perpendicular to it (or
       at 45 degrees with ``allow_45``) and neighbouring edges are joined at
       their crossings. It runs on one core (no multiprocessing), without
       circle fitting; its warnings are silenced (counted in a DEBUG log).
    2. Tidy-up of what the library leaves on vectorised pixel staircases:
       edges shorter than ``parallel_threshold_m`` are removed (a step between
       two parallel edges becomes one edge at their length-weighted offset, a
       cut corner becomes the crossing of its neighbours, a spike or notch
       that narrow is cut off at its base), then every edge is shifted,
       parallel to itself, to the median offset of the raw boundary near it
       (within ``2 * parallel_threshold_m``) and the vertices are recomputed
       as the crossings of consecutive edges. This keeps the library's
       directions but puts the edges where the raw outline is: on synthetic
       pixelated rectangles and L-shapes at 0.3-1 m GSD it turns the
       library's 6-9 vertices and 2-5 % IoU loss into the expected 4 (or 6)
       vertices and an IoU with the true shape at or above the raw
       polygon's.
    3. Checks: a polygon falls back to its raw geometry (same object, same
       ``area_m2``) when its regularised version is empty or invalid, changes
       the area by more than ``max_area_change`` (relative to the raw area), or
       has an intersection-over-union with the raw polygon below ``min_iou``.
       The number of fallbacks is logged
       (``logging.getLogger("geounet.footprints")``, INFO).

    Args:
        gdf: Footprints in any CRS.
        tolerance_m: Simplification tolerance, metres (> 0). It must be at
            least about one pixel, or the staircase of vectorised pixels
            survives and the dominant direction snaps to the pixel grid; the
            default, 1 m, suits 0.3-1 m GSD.
        allow_45: Also allow edges at 45 degrees to the main direction.
        max_area_change: Largest accepted relative area change, e.g. 0.2 =
            20 %; ``float('inf')`` disables the check.
        min_iou: Smallest accepted IoU between the regularised and the raw
            polygon, in [0, 1]; 0 disables the check.
        parallel_threshold_m: Metres: adjacent parallel edges closer than
            this are merged into one line, and shorter edges are removed
            (default ``2 * tolerance_m``, the library's own ratio).

    Returns:
        A new GeoDataFrame in the input CRS with the same columns, one row per
        input row (rows with empty geometry dropped); ``area_m2`` recomputed
        for regularised rows.

    Raises:
        GeounetError: for a non-positive ``tolerance_m`` or
            ``parallel_threshold_m``, a negative ``max_area_change``, a
            ``min_iou`` outside [0, 1], or when ``buildingregulariser`` is not
            installed.
        MissingCRSError: if ``gdf`` has no CRS.
    """
    return _regularize(gdf, tolerance_m, allow_45, max_area_change, min_iou,
                       parallel_threshold_m)[0]


def _regularize(gdf, tolerance_m=DEFAULT_TOLERANCE_M, allow_45=False, max_area_change=0.2,
                min_iou=0.7, parallel_threshold_m=None) -> tuple[gpd.GeoDataFrame, int]:
    """:func:`regularize`, also returning the number of polygons that fell back."""
    _check_frame(gdf, "regularize")
    tol = _check_number("tolerance_m", tolerance_m, "metres", "pass e.g. tolerance_m=1.0",
                        positive=True, allow_inf=False)
    par = 2 * tol if parallel_threshold_m is None else _check_number(
        "parallel_threshold_m", parallel_threshold_m, "metres",
        "pass e.g. twice tolerance_m", positive=True, allow_inf=False)
    max_change = _check_number("max_area_change", max_area_change, "(relative, 0.2 = 20 %)",
                               "pass e.g. 0.2, or float('inf') to accept any change")
    min_iou = _check_number("min_iou", min_iou, "(intersection over union)",
                            "pass e.g. 0.7, or 0 to accept any overlap", upper=1.0)
    gdf, changed = _prepare(gdf)
    if gdf.empty:
        return _empty_like(gdf), 0
    try:
        import buildingregulariser
    except ImportError:
        raise GeounetError(
            "regularize needs the buildingregulariser package, which is not installed: "
            "expected it importable; install it with pip install buildingregulariser") from None

    metric, factor = _metric(gdf)
    tol_u, par_u = tol / factor, par / factor          # metres -> metric CRS units
    raw = metric.to_numpy()
    work = gpd.GeoDataFrame({"_src": np.arange(len(gdf))},
                            geometry=gpd.GeoSeries(raw, crs=metric.crs), crs=metric.crs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = buildingregulariser.regularize_geodataframe(
                work, parallel_threshold=par_u, simplify=True, simplify_tolerance=tol_u,
                allow_45_degree=bool(allow_45), allow_circles=False, num_cores=1,
                include_metadata=False, neighbor_alignment=False)
        except Exception as exc:  # noqa: BLE001 - whatever the library raises, keep the raw
            log.warning("regularize: buildingregulariser failed (%s: %s); footprints left as "
                        "they are", type(exc).__name__, exc)
            result = work.iloc[:0]
    if caught:
        log.debug("regularize: buildingregulariser warned %d times, first: %s", len(caught),
                  caught[0].message)

    reg = np.empty(len(gdf), dtype=object)
    reg[:] = None
    if len(result):
        res_src = result["_src"].to_numpy()
        res_geom = result.geometry.to_numpy()
        order = np.argsort(res_src, kind="stable")
        res_src, res_geom = res_src[order], res_geom[order]
        starts = np.flatnonzero(np.r_[True, res_src[1:] != res_src[:-1]])
        for s, e in zip(starts, np.r_[starts[1:], len(res_src)]):
            group = [g for g in res_geom[s:e] if g is not None and not g.is_empty]
            if group:
                reg[res_src[s]] = group[0] if len(group) == 1 else shapely.union_all(group)

    ok = np.zeros(len(gdf), bool)
    for i, (r, g) in enumerate(zip(reg, raw)):
        if r is None or r.is_empty:
            continue
        r = _tidy(r, g, par_u, tol_u / 2, 2 * par_u)
        if r is None:
            continue
        a_raw, a_reg = g.area, r.area
        if a_raw <= 0 or abs(a_reg - a_raw) / a_raw > max_change:
            continue
        union = shapely.union(r, g).area
        iou = shapely.intersection(r, g).area / union if union > 0 else 0.0
        if iou < min_iou:
            continue
        reg[i], ok[i] = r, True

    out = list(gdf.geometry.to_numpy())
    if ok.any():
        back = gpd.GeoSeries(reg[ok], crs=metric.crs)
        if back.crs != gdf.crs:
            back = back.to_crs(gdf.crs)
        for i, geom in zip(np.flatnonzero(ok), back.to_numpy()):
            if geom is None or geom.is_empty or not geom.is_valid:
                ok[i] = False       # reprojection broke it: keep the raw polygon
                continue
            out[i] = geom
            changed[i] = True
    n_fallback = int((~ok).sum())
    log.info("regularize: %d of %d polygons fell back to their raw geometry", n_fallback,
             len(gdf))
    return _assemble(gdf, list(range(len(gdf))), out, changed), n_fallback


def _tidy(geom, raw, min_len: float, step: float, max_d: float):
    """Step 2 of :func:`regularize` on one regularised (Multi)Polygon, CRS units.

    Returns the tidied polygonal geometry, the untidied one where tidying made
    it invalid, or None when neither is a valid non-empty polygon.
    """
    if not geom.is_valid:
        geom = _polygonal(shapely.make_valid(geom))
    elif geom.geom_type not in ("Polygon", "MultiPolygon"):
        geom = _polygonal(geom)
    if geom.is_empty or not geom.is_valid:
        return None
    boundary = shapely.boundary(raw)
    # raw outline sampled every ``step``; coarser for huge outlines (bounded memory)
    step = max(step, boundary.length / 4000)
    points = shapely.get_coordinates(shapely.segmentize(boundary, step))
    parts = []
    for part in shapely.get_parts(geom):
        rings = [part.exterior, *part.interiors]
        new = []
        for ring in rings:
            coords = _remove_short_edges(np.asarray(ring.coords), min_len)
            fitted = _refit_ring(coords, points, max_d)
            if fitted is not None:
                fitted = _remove_short_edges(fitted, min_len)
                if len(fitted) >= 4 and shapely.LinearRing(fitted).is_simple:
                    coords = fitted
            new.append(coords)
        candidate = shapely.Polygon(new[0], new[1:]) if len(new[0]) >= 4 else part
        parts.append(candidate if candidate.is_valid and not candidate.is_empty else part)
    tidy = parts[0] if len(parts) == 1 else shapely.union_all(parts)
    if tidy.is_valid and not tidy.is_empty:
        return _polygonal(tidy)
    return geom


def _line_crossing(p, u, q, v):
    """Crossing of the lines ``p + s*u`` and ``q + t*v``; None when (nearly) parallel."""
    den = u[0] * v[1] - u[1] * v[0]
    if abs(den) < 1e-9 * math.hypot(*u) * math.hypot(*v):
        return None
    d = q - p
    return p + (d[0] * v[1] - d[1] * v[0]) / den * u


def _drop_collinear(v: np.ndarray, eps: float) -> np.ndarray:
    """Open ring ``v`` without repeated vertices and vertices in the middle of a straight line."""
    while len(v) > 3:
        a = v - np.roll(v, 1, axis=0)
        b = np.roll(v, -1, axis=0) - v
        la, lb = np.hypot(a[:, 0], a[:, 1]), np.hypot(b[:, 0], b[:, 1])
        cross = np.abs(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])
        dot = a[:, 0] * b[:, 0] + a[:, 1] * b[:, 1]
        bad = (la < eps) | ((cross <= 1e-6 * la * lb) & (dot > 0))
        if not bad.any():
            break
        if bad.all():
            bad[0] = False
        v = v[~bad]
    return v


def _remove_short_edges(coords: np.ndarray, min_len: float) -> np.ndarray:
    """Remove the edges shorter than ``min_len`` from a closed ring, shortest first.

    An edge between two (nearly, within 10 degrees) parallel edges going the
    same way is a step: the three become one line at the two edges'
    length-weighted offset. Between antiparallel edges it closes a spike or
    notch, which is cut off at its base. Between other edges it is a cut
    corner, replaced by the crossing of its neighbours (when that crossing
    lies within ``2 * min_len``). A removal that would make the ring
    self-intersect is skipped. Rings stay at 4 vertices or more.

    Returns:
        The closed ring's ``(n, 2)`` coordinates.
    """
    v = np.asarray(coords, np.float64)
    if len(v) > 1 and np.array_equal(v[0], v[-1]):
        v = v[:-1]
    eps = 1e-9 * max(1.0, float(np.abs(v).max())) if len(v) else 0.0
    v = _drop_collinear(v, eps)
    sin_par = math.sin(math.radians(10))
    skip: set = set()
    for _ in range(4 * len(v)):
        n = len(v)
        if n <= 4:
            break
        e = np.roll(v, -1, axis=0) - v
        length = np.hypot(e[:, 0], e[:, 1])
        order = [int(i) for i in np.argsort(length, kind="stable")
                 if length[i] < min_len and (v[i, 0], v[i, 1]) not in skip]
        if not order:
            break
        i = order[0]
        ia, ib = (i - 1) % n, (i + 1) % n
        ua, ub = e[ia], e[ib]
        cross = ua[0] * ub[1] - ua[1] * ub[0]
        dot = ua[0] * ub[0] + ua[1] * ub[1]
        new = None
        if abs(cross) > sin_par * length[ia] * length[ib]:          # cut corner
            x = _line_crossing(v[ia], ua, v[ib], ub)
            if x is not None and math.hypot(*(x - (v[i] + v[ib]) / 2)) <= 2 * min_len:
                new = v.copy()
                new[i] = x
                new = np.delete(new, ib, axis=0)
        elif dot > 0:                                               # step
            u = ua / length[ia]
            nrm = np.array([-u[1], u[0]])
            off = (length[ia] * (nrm @ v[ia]) + length[ib] * (nrm @ v[ib])) / (
                length[ia] + length[ib])
            p = nrm * off
            i2, i3 = (i - 2) % n, (i + 2) % n
            x1 = _line_crossing(v[i2], e[i2], p, u)
            x2 = _line_crossing(p, u, v[i3], e[i3])
            if x1 is not None and x2 is not None:
                new = v.copy()
                new[ia], new[i3] = x1, x2
                new = np.delete(new, [i, ib], axis=0)
        else:                                                       # spike or notch
            new = np.delete(v, [i, ib], axis=0)
        if new is not None and len(new) >= 3:
            new = _drop_collinear(new, eps)
            if len(new) >= 3 and shapely.LinearRing(new).is_simple:
                v = new
                continue
        skip.add((v[i, 0], v[i, 1]))
    return np.vstack([v, v[:1]])


def _refit_ring(coords: np.ndarray, points: np.ndarray, max_d: float) -> np.ndarray | None:
    """Shift each edge of a closed ring parallel to itself onto the raw outline.

    Each raw outline point goes to its nearest edge (if within ``max_d``); an
    edge with 2+ points moves to their median offset along its normal (by at
    most ``max_d``), and the vertices become the crossings of consecutive
    edges' lines.

    Returns:
        The closed ring, or None when two consecutive edges are parallel.
    """
    v = np.asarray(coords, np.float64)[:-1]
    n = len(v)
    if n < 3 or len(points) == 0:
        return None
    e = np.roll(v, -1, axis=0) - v
    length = np.hypot(e[:, 0], e[:, 1])
    if (length <= 0).any():
        return None
    u = e / length[:, None]
    nrm = np.column_stack([-u[:, 1], u[:, 0]])
    off = np.einsum("ij,ij->i", nrm, v)
    # distance of every point to every edge segment, in chunks of points
    nearest = np.empty(len(points), np.int64)
    near_d = np.empty(len(points))
    chunk = max(1, 2_000_000 // n)
    for s in range(0, len(points), chunk):
        d = points[s:s + chunk, None, :] - v[None, :, :]
        t = np.clip(np.einsum("pij,ij->pi", d, u), 0.0, length[None, :])
        gap = d - t[..., None] * u[None, :, :]
        dist = np.hypot(gap[..., 0], gap[..., 1])
        k = dist.argmin(axis=1)
        nearest[s:s + chunk] = k
        near_d[s:s + chunk] = dist[np.arange(len(k)), k]
    new_off = off.copy()
    for i in range(n):
        sel = (nearest == i) & (near_d <= max_d)
        if sel.sum() >= 2:
            o = float(np.median(points[sel] @ nrm[i]))
            if abs(o - off[i]) <= max_d:
                new_off[i] = o
    out = np.empty_like(v)
    for i in range(n):
        j = (i - 1) % n
        det = nrm[j, 0] * nrm[i, 1] - nrm[j, 1] * nrm[i, 0]
        if abs(det) < 1e-6:
            return None
        out[i] = [(new_off[j] * nrm[i, 1] - new_off[i] * nrm[j, 1]) / det,
                  (nrm[j, 0] * new_off[i] - nrm[i, 0] * new_off[j]) / det]
    return np.vstack([out, out[:1]])
