"""Stage 5 - vectorise: class raster to georeferenced polygons.

Polygons come from ``rasterio.features.shapes`` on the class raster, masked to
valid, non-background pixels; holes are kept. Areas (``area_m2``), the
``min_area_m2`` filter and the ``simplify_m`` tolerance are in metres, measured
in the scene's CRS when it is projected (scaled by its linear unit) and in the
local UTM zone (``GeoDataFrame.estimate_utm_crs``) when it is geographic.
Geometries stay in the scene's CRS.
"""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import shapely
from rasterio import features

from geounet.config import VectorizeConfig

log = logging.getLogger(__name__)

CLASS_NODATA = 255
"""Nodata value of geounet's class rasters (class ids are 0..254)."""

COLUMNS = ["class_id", "class_name", "area_m2", "score", "geometry"]


def empty_frame(crs) -> gpd.GeoDataFrame:
    """An empty GeoDataFrame with geounet's footprint columns."""
    return gpd.GeoDataFrame(
        {
            "class_id": np.array([], np.int32),
            "class_name": np.array([], object),
            "area_m2": np.array([], np.float64),
            "score": np.array([], np.float64),
        },
        geometry=gpd.GeoSeries([], crs=crs),
        crs=crs,
    )


def _metric(gdf: gpd.GeoDataFrame) -> tuple[gpd.GeoSeries, float]:
    """Geometries in a metric-ish CRS and the factor from its unit to metres."""
    crs = gdf.crs
    if crs.is_geographic:
        return gdf.geometry.to_crs(gdf.estimate_utm_crs()), 1.0
    factor = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return gdf.geometry, float(factor or 1.0)


def product_mask(classes: np.ndarray, background: int | None = 0) -> np.ndarray:
    """Pixels that become polygons: not nodata and not the background class.

    Args:
        classes: ``(h, w)`` uint8 class ids.
        background: Background class id, or ``None`` (every class is a product).

    Returns:
        ``(h, w)`` bool.
    """
    mask = classes != CLASS_NODATA
    if background is not None:
        mask &= classes != background
    return mask


def polygons_from_classes(
    classes: np.ndarray,
    transform,
    mask: np.ndarray | None = None,
    connectivity: int = 4,
    with_geojson: bool = False,
):
    """Polygonise a class raster.

    Args:
        classes: ``(h, w)`` uint8 class ids.
        transform: Affine transform of the raster (pixel -> CRS units).
        mask: ``(h, w)`` bool, True where polygons are wanted (default:
            class != 0 and != :data:`CLASS_NODATA`).
        connectivity: 4 or 8.

    Returns:
        ``(geometries, class_ids)``: valid shapely Polygons (with holes) in CRS
        units and a matching int32 array. With 8-connectivity GDAL returns a
        region joined only through a pixel corner as one self-touching (OGC
        invalid) ring; ``shapely.make_valid`` turns it into a MultiPolygon.
        With ``with_geojson``, GDAL's GeoJSON-like dicts come third (cheaper
        than shapely objects to hand to ``rasterize``).
    """
    if mask is None:
        mask = product_mask(classes)
    raw = list(features.shapes(classes, mask=mask, transform=transform,
                               connectivity=connectivity))
    geoms = _polygons_from_geojson([g for g, _ in raw])
    invalid = ~shapely.is_valid(geoms) if geoms else np.zeros(0, bool)
    for i in np.flatnonzero(invalid):
        geoms[i] = shapely.make_valid(geoms[i])
    ids = np.asarray([int(v) for _, v in raw], np.int32)
    if with_geojson:
        return geoms, ids, [g for g, _ in raw]
    return geoms, ids


def _polygons_from_geojson(dicts: list) -> list:
    """Shapely Polygons from GDAL's GeoJSON-like polygon dicts, built in one vectorised
    call (``shapely.linearrings``/``shapely.polygons`` with indices) rather than one
    ``shape()`` per polygon."""
    if not dicts:
        return []
    coords, ring_sizes, ring_poly = [], [], []
    for i, g in enumerate(dicts):
        for ring in g["coordinates"]:
            coords.extend(ring)
            ring_sizes.append(len(ring))
            ring_poly.append(i)
    rings = shapely.linearrings(np.asarray(coords, np.float64),
                                indices=np.repeat(np.arange(len(ring_sizes)), ring_sizes))
    return list(shapely.polygons(rings, indices=np.asarray(ring_poly)))


def polygon_scores(
    geoms: list, class_ids: np.ndarray, probs: np.ndarray, transform
) -> np.ndarray:
    """Mean probability of each polygon's own class over the pixels inside it.

    Pixels are matched to polygons by ``rasterio.features.rasterize`` (pixel
    centre inside), which for polygons made of pixel edges selects exactly the
    pixels they were made from.

    Args:
        geoms: Polygons in the raster's CRS.
        class_ids: Class id per polygon.
        probs: ``(k, h, w)`` float probabilities in [0, 1]; ``k == 1`` for a
            binary model (the foreground probability).
        transform: The raster's affine transform.

    Returns:
        ``(n,)`` float64 scores.
    """
    n = len(geoms)
    if n == 0:
        return np.zeros(0)
    h, w = probs.shape[1:]
    ids = features.rasterize(
        ((g, i + 1) for i, g in enumerate(geoms)),
        out_shape=(h, w),
        transform=transform,
        fill=0,
        dtype="int32",
    )
    sums, counts = _label_sums(ids, class_ids, probs)
    return sums / np.maximum(counts, 1)


def _label_sums(labels: np.ndarray, class_ids: np.ndarray, probs: np.ndarray):
    """Per-label sum of each label's own class probability, and pixel counts.

    Args:
        labels: ``(h, w)`` int32, 0 = none, ``i + 1`` = polygon ``i``.
        class_ids: ``(n,)`` class id per polygon.
        probs: ``(k, h, w)``; channel 0 for every polygon when ``k == 1``
            (binary), else channel = class id.

    Returns:
        ``(sums, counts)``, two ``(n,)`` float64 arrays.
    """
    n = len(class_ids)
    flat = labels.ravel()
    counts = np.bincount(flat, minlength=n + 1)[1:].astype(np.float64)
    channel = np.zeros(n, np.int64) if probs.shape[0] == 1 else class_ids.astype(np.int64)
    sums = np.zeros(n)
    for c in np.unique(channel):
        s = np.bincount(flat, weights=probs[c].ravel(), minlength=n + 1)[1:]
        sel = channel == c
        sums[sel] = s[sel]
    return sums, counts


def vectorize(
    classes: np.ndarray,
    transform,
    crs,
    class_names: list[str],
    probs: np.ndarray | None = None,
    config: VectorizeConfig | None = None,
    mask: np.ndarray | None = None,
    background: int | None = 0,
) -> gpd.GeoDataFrame:
    """Class raster to a GeoDataFrame of polygons.

    Args:
        classes: ``(h, w)`` uint8 class ids (0 = background,
            :data:`CLASS_NODATA` = nodata).
        transform: Affine transform of the raster.
        crs: CRS of the raster (any rasterio/pyproj CRS).
        class_names: Name per class id.
        probs: Optional ``(k, h, w)`` float probabilities for the ``score``
            column (NaN scores without it).
        config: Area filter, simplification, connectivity.
        mask: Optional ``(h, w)`` bool restricting where polygons are made
            (default: class != ``background`` and != :data:`CLASS_NODATA`).
        background: Class id left out of the polygons, or ``None`` (every
            class is a product, as in land cover).

    Returns:
        GeoDataFrame in ``crs`` with columns ``class_id`` (int32),
        ``class_name`` (str), ``area_m2`` (float, square metres), ``score``
        (float in [0, 1]) and Polygon/MultiPolygon ``geometry``.
    """
    config = config or VectorizeConfig()
    if mask is None:
        mask = product_mask(classes, background)
    geoms, ids = polygons_from_classes(classes, transform, mask, config.connectivity)
    if not geoms:
        return empty_frame(crs)
    scores = polygon_scores(geoms, ids, probs, transform) if probs is not None else np.full(
        len(geoms), np.nan
    )
    names = [class_names[i] if i < len(class_names) else str(i) for i in ids]
    gdf = gpd.GeoDataFrame(
        {"class_id": ids, "class_name": names, "score": scores},
        geometry=gpd.GeoSeries(geoms, crs=crs),
        crs=crs,
    )
    return finish_polygons(gdf, config, transform)


def finish_polygons(gdf: gpd.GeoDataFrame, config: VectorizeConfig,
                    transform=None) -> gpd.GeoDataFrame:
    """Fill holes, split touching footprints, drop small polygons, simplify or
    regularise (all in metres), and measure ``area_m2``.

    Args:
        gdf: Polygons with a CRS.
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
        from geounet import footprints

        if "area_m2" not in gdf.columns:
            gdf = gdf.assign(area_m2=np.nan)
        gdf = gdf[COLUMNS]
        if config.fill_holes_m2 > 0:
            gdf = footprints.fill_holes(gdf, config.fill_holes_m2)
        if config.split_touching and transform is not None:
            gdf = footprints.split_touching(gdf, transform, h_m=config.split_h_m)
        if gdf.empty:
            return empty_frame(gdf.crs)
    metric, factor = _metric(gdf)
    area = metric.area.to_numpy() * factor**2
    keep = area >= config.min_area_m2
    gdf = gdf.loc[keep].copy()
    metric = metric.loc[keep]
    if config.regularize and len(gdf):
        from geounet import footprints

        gdf = footprints.regularize(
            gdf.assign(area_m2=area[keep]), tolerance_m=config.regularize_tolerance_m,
            allow_45=config.regularize_45, max_area_change=config.regularize_max_area_change,
            min_iou=config.regularize_min_iou)
        area = gdf["area_m2"].to_numpy()
        keep2 = area >= config.min_area_m2
        gdf, area = gdf.loc[keep2], area[keep2]
    elif config.simplify_m > 0 and len(gdf):
        simplified = metric.simplify(config.simplify_m / factor, preserve_topology=True)
        simplified = gpd.GeoSeries(
            shapely.make_valid(simplified.to_numpy()), crs=simplified.crs, index=simplified.index
        )
        simplified = simplified.apply(_polygonal)
        metric = simplified
        area = metric.area.to_numpy() * factor**2
        geoms = simplified.to_crs(gdf.crs) if simplified.crs != gdf.crs else simplified
        gdf = gdf.set_geometry(geoms.to_numpy(), crs=gdf.crs)
        # simplification changes areas: apply the minimum again to the final polygons
        keep2 = ~gdf.geometry.is_empty.to_numpy() & (area >= config.min_area_m2)
        gdf = gdf.loc[keep2]
        area = area[keep2]
    else:
        area = area[keep]
    gdf["area_m2"] = area
    gdf["class_id"] = gdf["class_id"].astype(np.int32)
    return gdf[COLUMNS].reset_index(drop=True)


def _polygonal(geom):
    """Keep only the polygonal part of a geometry (after make_valid)."""
    if geom is None or geom.is_empty:
        return shapely.Polygon()
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in getattr(geom, "geoms", []) if g.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return shapely.Polygon()
    return shapely.union_all(parts)


def _to_crs_coords(geom, transform):
    """Apply an affine transform to pixel coordinates as GDAL does (c + a*x + b*y).

    ``geom`` may be one geometry or an array of them.
    """
    a, b, c, d, e, f = transform.a, transform.b, transform.c, transform.d, transform.e, transform.f

    def fn(xy: np.ndarray) -> np.ndarray:
        x, y = xy[:, 0], xy[:, 1]
        return np.column_stack([c + a * x + b * y, f + d * x + e * y])

    return shapely.transform(geom, fn)


class StreamingVectorizer:
    """Polygonise a class raster strip by strip without cutting polygons.

    Strips of rows arrive top to bottom. Each strip is polygonised with
    ``rasterio.features.shapes`` in pixel coordinates (exact integers).
    Polygons that touch the strip's bottom edge stay *open*; in the next
    strip, new polygons connected to them across the edge (same class,
    4- or 8-connected pixels, found from the two rows either side of the edge)
    are unioned with them. A polygon is finished, transformed to the scene's
    CRS and handed on as soon as it no longer touches the newest edge, so
    memory holds only the open polygons, never the scene.

    The result equals one ``features.shapes`` call over the whole raster
    (the tests check it on generated masks, with objects spanning many
    strips and with holes).

    Args:
        width: Raster width in pixels.
        transform: Affine transform of the whole raster.
        crs: Its CRS.
        class_names: Name per class id.
        on_polygons: Called with a GeoDataFrame (columns as :func:`vectorize`)
            of each batch of finished polygons.
        config: Area filter, simplification, connectivity.
        batch_size: Finished polygons are handed on in batches of at least
            this many (and at :meth:`finish`), which keeps the per-batch cost of
            building GeoDataFrames small.
        background: Class id that is not polygonised by default (0), or
            ``None`` to polygonise every class (land cover).
    """

    def __init__(self, width, transform, crs, class_names, on_polygons,
                 config: VectorizeConfig | None = None, batch_size: int = 1000,
                 background: int | None = 0) -> None:
        self.background = background
        self.width = width
        self.transform = transform
        self.crs = crs
        self.class_names = list(class_names)
        self.on_polygons = on_polygons
        self.config = config or VectorizeConfig()
        self._open: list[dict] = []          # open polygons (pixel coordinates)
        self._edge_ids = None                # (width,) index into _open + 1, 0 = none
        self._edge_cls = None                # (width,) class ids of the last row
        self._row = 0                        # next expected row
        self._done: list[dict] = []          # finished, not yet emitted
        self.batch_size = batch_size
        self.count = 0

    def add_rows(self, row_off: int, classes: np.ndarray, probs: np.ndarray | None = None,
                 mask: np.ndarray | None = None) -> None:
        """Add the strip ``classes[(n, width)]`` starting at ``row_off``.

        Args:
            row_off: First row of the strip; strips must be contiguous.
            classes: ``(n, width)`` uint8 class ids.
            probs: ``(k, n, width)`` float probabilities for scores, or None.
            mask: ``(n, width)`` bool where polygons are wanted (default:
                class != ``background`` and != :data:`CLASS_NODATA`).

        Raises:
            ValueError: if strips are not contiguous.
        """
        from rasterio.transform import Affine

        if row_off != self._row:
            raise ValueError(f"strip at row {row_off} does not follow row {self._row}")
        n = classes.shape[0]
        if mask is None:
            mask = product_mask(classes, self.background)
        t = Affine.translation(0, row_off)
        geoms, ids, raw = polygons_from_classes(classes, t, mask, self.config.connectivity,
                                                with_geojson=True)
        m = len(geoms)
        if probs is None and n > 2 and m:
            # no scores wanted: only the first and last rows' labels are needed (merging)
            edges = np.zeros((2, classes.shape[1]), np.int32)
            for j, r in enumerate((row_off, row_off + n - 1)):
                edges[j] = features.rasterize(
                    ((g, i + 1) for i, g in enumerate(raw)), out_shape=(1, classes.shape[1]),
                    transform=Affine.translation(0, r), fill=0, dtype="int32")[0]
            labels = None
            first_labels, last_labels = edges[0], edges[1]
        else:
            labels = features.rasterize(
                ((g, i + 1) for i, g in enumerate(raw)), out_shape=classes.shape, transform=t,
                fill=0, dtype="int32") if m else np.zeros(classes.shape, np.int32)
            first_labels, last_labels = labels[0], labels[-1]
        if probs is not None and m:
            sums, counts = _label_sums(labels, ids, probs)
        else:  # no probabilities: NaN scores
            sums, counts = np.zeros(m), np.zeros(m)
        new = [{"geom": g, "cls": int(k), "sum": s, "n": cnt}
               for g, k, s, cnt in zip(geoms, ids, sums, counts)]

        # union-find over open polygons (0..len(open)-1) and new ones (offset len(open))
        n_open = len(self._open)
        parent = list(range(n_open + m))

        def find(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        if n_open and m:
            top_ids, top_cls = first_labels, classes[0]
            shifts = [0] if self.config.connectivity == 4 else [-1, 0, 1]
            for s in shifts:
                a_ids = self._edge_ids[max(0, -s): self.width - max(0, s)]
                a_cls = self._edge_cls[max(0, -s): self.width - max(0, s)]
                b_ids = top_ids[max(0, s): self.width - max(0, -s)]
                b_cls = top_cls[max(0, s): self.width - max(0, -s)]
                sel = (a_ids > 0) & (b_ids > 0) & (a_cls == b_cls)
                for oa, nb in set(zip(a_ids[sel].tolist(), b_ids[sel].tolist())):
                    ra, rb = find(oa - 1), find(n_open + nb - 1)
                    if ra != rb:
                        parent[rb] = ra
        groups: dict[int, list[int]] = {}
        for i in range(n_open + m):
            groups.setdefault(find(i), []).append(i)
        items = self._open + new
        bottom = row_off + n
        still_open, finished = [], []
        for members in groups.values():
            parts = [items[i] for i in members]
            if len(parts) == 1:
                merged = dict(parts[0])
            else:
                geom = shapely.union_all([p["geom"] for p in parts]).simplify(0)
                merged = {"geom": geom, "cls": parts[0]["cls"],
                          "sum": sum(p["sum"] for p in parts), "n": sum(p["n"] for p in parts)}
            touches = merged["geom"].bounds[3] >= bottom
            (still_open if touches else finished).append((merged, members))
        # the bottom row's pixel -> open polygon map for the next strip
        edge_ids = np.zeros(self.width, np.int32)
        last = last_labels
        new_index = {}
        for j, (_, members) in enumerate(still_open):
            for i in members:
                if i >= n_open:
                    new_index[i - n_open + 1] = j + 1
        if new_index:
            lut = np.zeros(m + 1, np.int32)
            for k, v in new_index.items():
                lut[k] = v
            edge_ids = lut[last]
        self._open = [p for p, _ in still_open]
        self._edge_ids = edge_ids
        self._edge_cls = classes[-1].copy()
        self._row = bottom
        self._done.extend(p for p, _ in finished)
        if len(self._done) >= self.batch_size:
            self._emit(self._done)
            self._done = []

    def finish(self) -> None:
        """Emit every polygon still pending or open (call after the last strip)."""
        self._emit(self._done + self._open)
        self._done, self._open = [], []

    def _emit(self, polys: list[dict]) -> None:
        if not polys:
            return
        geoms = _to_crs_coords(np.array([p["geom"] for p in polys], dtype=object),
                               self.transform)
        ids = np.array([p["cls"] for p in polys], np.int32)
        scores = np.array([p["sum"] / p["n"] if p["n"] else np.nan for p in polys])
        names = [self.class_names[i] if i < len(self.class_names) else str(i) for i in ids]
        gdf = gpd.GeoDataFrame({"class_id": ids, "class_name": names, "score": scores},
                               geometry=gpd.GeoSeries(geoms, crs=self.crs), crs=self.crs)
        gdf = finish_polygons(gdf, self.config, self.transform)
        if len(gdf):
            self.count += len(gdf)
            self.on_polygons(gdf)
