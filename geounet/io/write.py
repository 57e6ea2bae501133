"""Stage 6 - write: vector files by extension and GeoTIFF rasters by windows.

Vector formats (chosen by the output's extension):

========== ============== ==============================================
extension  format         CRS written
========== ============== ==============================================
.geojson   GeoJSON        EPSG:4326 lon/lat, per RFC 7946
.json      GeoJSON        EPSG:4326 lon/lat, per RFC 7946
.gpkg      GeoPackage     the scene's CRS
.fgb       FlatGeobuf     the scene's CRS
.parquet   GeoParquet     the scene's CRS
========== ============== ==============================================

Writers write to the path they are given (a temporary path from
:mod:`geounet.io.atomic`); the caller renames it on success.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.enums import ColorInterp
from rasterio.windows import Window

from geounet.errors import UnsupportedFormatError

log = logging.getLogger(__name__)

VECTOR_DRIVERS = {
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".gpkg": "GPKG",
    ".fgb": "FlatGeobuf",
    ".parquet": "GeoParquet",
}


def vector_format(path: str | os.PathLike) -> str:
    """The format name for an output path's extension.

    Raises:
        UnsupportedFormatError: for an extension not in :data:`VECTOR_DRIVERS`.
    """
    ext = Path(path).suffix.lower()
    if ext not in VECTOR_DRIVERS:
        raise UnsupportedFormatError(
            f"output {str(path)!r} has extension {ext or '(none)'!r}: expected one of "
            f"{', '.join(VECTOR_DRIVERS)}; rename the output"
        )
    return VECTOR_DRIVERS[ext]


def write_vector(gdf: gpd.GeoDataFrame, path: str | os.PathLike, fmt: str | None = None) -> None:
    """Write polygons in the format of ``fmt`` (default: from ``path``'s extension).

    GeoJSON is reprojected to EPSG:4326 and written with GDAL's ``RFC7946=YES``
    (lon/lat order, right-hand rule, 7 decimals). Other formats keep the
    GeoDataFrame's CRS.

    Args:
        gdf: Polygons with a CRS.
        path: File to write (overwritten).
        fmt: A value of :data:`VECTOR_DRIVERS`.

    Raises:
        UnsupportedFormatError: for an unknown extension.
    """
    import pyogrio

    fmt = fmt or vector_format(path)
    path = str(path)
    if fmt == "GeoParquet":
        gdf.to_parquet(path)
        return
    opts: dict = {}
    if fmt == "GeoJSON":
        gdf = gdf.to_crs("EPSG:4326")
        opts["layer_options"] = {"RFC7946": "YES"}
    types = set(gdf.geom_type.dropna())
    geometry_type = "MultiPolygon" if "MultiPolygon" in types else "Polygon"
    pyogrio.write_dataframe(
        gdf,
        path,
        driver=fmt,
        layer="footprints" if fmt == "GPKG" else None,
        geometry_type=geometry_type,
        promote_to_multi=geometry_type == "MultiPolygon" and fmt != "GeoJSON",
        **opts,
    )


def read_vector(path: str | os.PathLike) -> gpd.GeoDataFrame:
    """Read any vector file geounet writes (or GDAL reads) into a GeoDataFrame."""
    if str(path).lower().endswith(".parquet"):
        return gpd.read_parquet(path)
    return gpd.read_file(path, engine="pyogrio")


def geotiff_profile(
    width: int, height: int, count: int, dtype: str, crs, transform, nodata=None
) -> dict:
    """Profile of a tiled, DEFLATE-compressed GeoTIFF."""
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": dtype,
        "crs": crs,
        "transform": transform,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "BIGTIFF": "IF_SAFER",
    }
    if nodata is not None:
        profile["nodata"] = nodata
    if count > 1:
        profile["interleave"] = "pixel"
    return profile


class RowWriter:
    """Writes row strips of a raster into an open GeoTIFF.

    Args:
        path: File to create.
        profile: rasterio profile (see :func:`geotiff_profile`).
        use_mask: Write validity as an internal GDAL mask band (for uint8
            probabilities, whose 0-255 range leaves no nodata value).
        band_descriptions: Optional description per band.
    """

    def __init__(self, path, profile: dict, use_mask: bool = False, band_descriptions=None):
        self.use_mask = use_mask
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
            self.ds = rasterio.open(path, "w", **profile)
        if band_descriptions:
            for i, d in enumerate(band_descriptions, start=1):
                self.ds.set_band_description(i, d)
        if profile["count"] == 1:
            self.ds.colorinterp = [ColorInterp.gray]

    def write(self, row_off: int, data: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Write ``(count, n_rows, width)`` values starting at ``row_off``."""
        window = Window(0, row_off, data.shape[2], data.shape[1])
        self.ds.write(data, window=window)
        if self.use_mask and valid is not None:
            with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
                self.ds.write_mask(np.where(valid, 255, 0).astype(np.uint8), window=window)

    def close(self) -> None:
        """Close the file."""
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
            self.ds.close()

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
