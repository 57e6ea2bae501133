"""Argument checks and the frame plumbing shared by the footprint operations.

Every operation of :mod:`geounet.footprints` checks its numbers with
:func:`check_number` and its frame with :func:`check_frame`, cleans the frame
with :func:`prepare` and builds its result with :func:`assemble`, so they all
return the same columns, CRS, index and ``area_m2`` rules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from geounet.errors import InvalidOptionError, MissingCRSError, MissingDependencyError
from geounet.geometry import areas_m2, polygonal
from geounet.models.metadata import installed

POLYGON_TYPE_IDS = (3, 6)
"""shapely type ids of Polygon (3) and MultiPolygon (6)."""


LIBRARIES = {"split_touching": ("scipy", "skimage"), "regularize": ("buildingregulariser",)}
"""The libraries each optional footprint step needs, installed by ``geounet[footprints]``."""


def require_libraries(*steps: str) -> None:
    """Check that the libraries of footprint steps are installed, before any work starts.

    Args:
        steps: Names from :data:`LIBRARIES` (``"split_touching"``, ``"regularize"``).

    Raises:
        MissingDependencyError: naming the step, the missing package and the extra.
    """
    for step in steps:
        missing = [m for m in LIBRARIES[step] if not installed(m)]
        if missing:
            names = ", ".join("scikit-image" if m == "skimage" else m for m in missing)
            verb = "is" if len(missing) == 1 else "are"
            raise MissingDependencyError(
                f"{step.replace('_', ' ')} needs {names}, which {verb} not installed; install "
                "it with: pip install 'geounet[footprints]'")


def check_number(name: str, value: Any, unit: str, fix: str, *, positive: bool = False,
                 upper: float | None = None, allow_inf: bool = True) -> float:
    """Check an option and return it as a float.

    Args:
        name: The option's name, for the message.
        value: The value passed (anything ``float()`` accepts).
        unit: The expected unit or meaning, for the message (``"metres"``).
        fix: How to fix a bad value, for the message (``"pass e.g. h_m=1.0"``).
        positive: Require more than 0 (otherwise 0 or more).
        upper: Largest accepted value, or ``None`` for no upper bound.
        allow_inf: Accept ``float('inf')``.

    Returns:
        ``value`` as a float.

    Raises:
        InvalidOptionError: when ``value`` is not a number, is NaN or lies
            outside the range; the message names the option, the expectation
            and the fix.
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidOptionError(
            f"{name} {value!r} is not a number: expected {unit}; {fix}") from None
    bad = math.isnan(v) or (v <= 0 if positive else v < 0) or (upper is not None and v > upper)
    if not allow_inf and math.isinf(v):
        bad = True
    if bad:
        want = "more than 0" if positive else "0 or more"
        if upper is not None:
            want += f" and at most {upper:g}"
        if not allow_inf:
            want += ", finite"
        raise InvalidOptionError(
            f"{name} {value!r} is out of range: expected {want} {unit}; {fix}")
    return v


def check_frame(gdf: Any, func: str) -> None:
    """Check that ``gdf`` is a GeoDataFrame with a CRS.

    Args:
        gdf: The footprints passed to ``func``.
        func: The public function's name, for the message.

    Raises:
        InvalidOptionError: when ``gdf`` is not a ``geopandas.GeoDataFrame``.
        MissingCRSError: when it has no CRS.
    """
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise InvalidOptionError(
            f"{func}() got a {type(gdf).__name__}: expected a geopandas GeoDataFrame of "
            "footprints; build one with geounet.vectorize or geopandas.read_file"
        )
    if gdf.crs is None:
        raise MissingCRSError(
            f"{func}(): the footprints have no CRS: expected a projected or geographic CRS "
            "to measure metres in; set it with gdf.set_crs(...)"
        )


def prepare(gdf: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, np.ndarray]:
    """Drop empty/missing geometries, make invalid ones valid and polygonal.

    Args:
        gdf: Footprints with a CRS.

    Returns:
        ``(frame, changed)``: the frame with a ``0..n-1`` index and an
        ``(n,)`` bool array that is True where a geometry was repaired (its
        ``area_m2`` is stale). Geometries that repair to nothing are dropped.
    """
    geoms = gdf.geometry.to_numpy()
    keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    gdf = gdf.loc[keep].reset_index(drop=True)
    geoms = gdf.geometry.to_numpy().copy()
    types = shapely.get_type_id(geoms)
    bad = ~shapely.is_valid(geoms) | ~np.isin(types, POLYGON_TYPE_IDS)
    changed = np.zeros(len(gdf), bool)
    if bad.any():
        for i in np.flatnonzero(bad):
            geoms[i] = polygonal(shapely.make_valid(geoms[i]))
        changed = bad
        gdf = gdf.copy()
        gdf[gdf.geometry.name] = gpd.GeoSeries(geoms, crs=gdf.crs, index=gdf.index)
        nonempty = ~shapely.is_empty(geoms)
        gdf, changed = gdf.loc[nonempty].reset_index(drop=True), changed[nonempty]
    return gdf, changed


def assemble(gdf: gpd.GeoDataFrame, src: Sequence[int], geoms: Sequence[Any],
             changed: Any) -> gpd.GeoDataFrame:
    """Build an operation's result from source rows and new geometries.

    Args:
        gdf: The prepared input frame (see :func:`prepare`).
        src: ``(m,)`` row positions in ``gdf`` each output row copies its
            attributes from (repeated for the pieces of a split polygon).
        geoms: ``(m,)`` output geometries, in ``gdf``'s CRS.
        changed: ``(m,)`` bools, True where the geometry changed.

    Returns:
        Rows ``gdf.iloc[src]`` with ``geoms`` as geometry and a ``0..m-1``
        index; ``area_m2`` (square metres, added when missing) measured where
        the geometry changed or the area is NaN; ``class_id`` as int32;
        ``gdf``'s columns first, in order.
    """
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
        area[changed] = areas_m2(arr[changed], gdf.crs)
        out["area_m2"] = area
    if "class_id" in out.columns:
        out["class_id"] = out["class_id"].astype(np.int32)
    return out[list(gdf.columns) + [c for c in out.columns if c not in gdf.columns]]


def assemble_per_row(gdf: gpd.GeoDataFrame, geoms: Sequence[Any],
                     changed: Any) -> gpd.GeoDataFrame:
    """:func:`assemble` for an operation that keeps one output row per input row.

    Args:
        gdf: The prepared input frame.
        geoms: ``(n,)`` output geometries, one per row of ``gdf``.
        changed: ``(n,)`` bools, True where the geometry changed.

    Returns:
        The result frame (see :func:`assemble`).
    """
    return assemble(gdf, list(range(len(gdf))), geoms, changed)


def empty_like(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """An empty frame with ``gdf``'s columns, dtypes and CRS.

    Args:
        gdf: Any GeoDataFrame.

    Returns:
        ``gdf`` without rows, with a fresh index.
    """
    return gdf.iloc[:0].reset_index(drop=True)
