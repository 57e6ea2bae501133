"""Stage 6b - post-process polygons: holes, touching buildings, areas, simplification.

The raw polygons of :mod:`geounet.pipeline.vectorize` become the footprints
that are written: holes filled, touching buildings split, ``area_m2`` measured,
small polygons dropped, outlines simplified or regularised, all in metres on the
ground (:mod:`geounet.geometry`). The order is: fill holes, split, minimum area,
simplify or regularise, minimum area again.

:func:`geounet_postprocess_footprints` is geounet's own implementation of the
``geounet_postprocess_footprints`` hook, registered like a plugin's
(:data:`geounet.hooks.DEFAULT_PLUGINS`) and run before any plugin's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from geounet.config import VectorizeConfig
from geounet.footprints import fill_holes, regularize, split_touching
from geounet.geometry import metric_geometries, polygonal
from geounet.hookspecs import hookimpl
from geounet.io.vector import COLUMNS, empty_frame


@hookimpl(tryfirst=True)
def geounet_postprocess_footprints(footprints: Any, context: dict[str, Any]) -> Any:
    """Geounet's own finishing of each batch, :func:`finish_polygons`, as a hook.

    Args:
        footprints: A batch of raw polygons (GeoDataFrame, scene CRS).
        context: The run's hook context; ``vectorize`` (a
            :class:`~geounet.config.VectorizeConfig`) and ``transform`` are used.

    Returns:
        The finished batch.
    """
    return finish_polygons(footprints, context["vectorize"], context["transform"])


def finish_polygons(gdf: Any, config: VectorizeConfig, transform: Any = None) -> Any:
    """Fill holes, split touching footprints, drop small polygons, simplify or regularise.

    All tolerances are in metres and areas in square metres on the ground
    (:func:`geounet.geometry.metric_geometries`); ``area_m2`` is measured.

    Args:
        gdf: Polygons with a CRS (GeoDataFrame with ``class_id``,
            ``class_name``, ``score``, ``geometry`` and possibly ``area_m2``).
        config: ``fill_holes_m2``, ``split_touching``, ``min_area_m2``,
            ``simplify_m``, ``regularize`` (see :class:`VectorizeConfig`).
        transform: Affine transform of the pixel grid the polygons were made
            on; needed by ``split_touching`` (which is skipped without it).

    Returns:
        A new GeoDataFrame in the same CRS with :data:`COLUMNS`; simplified
        geometries are made valid (``shapely.make_valid``) and kept polygonal.
    """
    if gdf.empty:
        return empty_frame(gdf.crs)
    if config.fill_holes_m2 > 0 or config.split_touching or config.regularize:
        gdf = _fill_and_split(gdf, config, transform)
        if gdf.empty:
            return empty_frame(gdf.crs)
    metric, factor = metric_geometries(gdf)
    area = metric.area.to_numpy() * factor**2
    keep = area >= config.min_area_m2
    gdf = gdf.loc[keep].copy()
    metric = metric.loc[keep]
    if config.regularize and len(gdf):
        gdf = regularize(
            gdf.assign(area_m2=area[keep]), tolerance_m=config.regularize_tolerance_m,
            allow_45=config.regularize_45, max_area_change=config.regularize_max_area_change,
            min_iou=config.regularize_min_iou)
        area = gdf["area_m2"].to_numpy()
        keep2 = area >= config.min_area_m2
        gdf, area = gdf.loc[keep2], area[keep2]
    elif config.simplify_m > 0 and len(gdf):
        gdf, area = _simplify(gdf, metric, factor, config)
    else:
        area = area[keep]
    gdf["area_m2"] = area
    gdf["class_id"] = gdf["class_id"].astype(np.int32)
    return gdf[COLUMNS].reset_index(drop=True)


def _fill_and_split(gdf: Any, config: VectorizeConfig, transform: Any) -> Any:
    """Hole filling and splitting of touching footprints (before areas are measured)."""
    if "area_m2" not in gdf.columns:
        gdf = gdf.assign(area_m2=np.nan)
    gdf = gdf[COLUMNS]
    if config.fill_holes_m2 > 0:
        gdf = fill_holes(gdf, config.fill_holes_m2)
    if config.split_touching and transform is not None:
        gdf = split_touching(gdf, transform, h_m=config.split_h_m)
    return gdf


def _simplify(gdf: Any, metric: Any, factor: float,
              config: VectorizeConfig) -> tuple[Any, np.ndarray]:
    """Douglas-Peucker in the metric CRS (topology kept), then the minimum area again.

    Returns:
        ``(gdf, area_m2)`` of the polygons that are still large enough.
    """
    import geopandas as gpd

    simplified = metric.simplify(config.simplify_m / factor, preserve_topology=True)
    simplified = gpd.GeoSeries(
        shapely.make_valid(simplified.to_numpy()), crs=simplified.crs, index=simplified.index
    ).apply(polygonal)
    area = simplified.area.to_numpy() * factor**2
    geoms = simplified.to_crs(gdf.crs) if simplified.crs != gdf.crs else simplified
    gdf = gdf.set_geometry(geoms.to_numpy(), crs=gdf.crs)
    # simplification changes areas: apply the minimum again to the final polygons
    keep = ~gdf.geometry.is_empty.to_numpy() & (area >= config.min_area_m2)
    return gdf.loc[keep], area[keep]
