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

import json
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

    Built-in formats are :data:`VECTOR_DRIVERS`; plugins add more through the
    ``geounet_vector_writers`` hook (their format name is ``"plugin:.ext"``).

    Raises:
        UnsupportedFormatError: for an extension nobody writes.
    """
    from geounet.hooks import vector_writers

    ext = Path(path).suffix.lower()
    if ext in VECTOR_DRIVERS:
        return VECTOR_DRIVERS[ext]
    extra = vector_writers()
    if ext in extra:
        return f"plugin:{ext}"
    raise UnsupportedFormatError(
        f"output {str(path)!r} has extension {ext or '(none)'!r}: expected one of "
        f"{', '.join([*VECTOR_DRIVERS, *extra])}; rename the output"
    )


def open_sink(path, crs, fmt: str | None = None, geometry_type: str = "Polygon"):
    """A streaming writer for ``path``: :class:`VectorSink` or a plugin's writer.

    Returns:
        An object with ``write(gdf)``, ``close()`` and ``abort()``.
    """
    fmt = fmt or vector_format(path)
    if fmt.startswith("plugin:"):
        from geounet.hooks import vector_writers

        return vector_writers()[fmt.split(":", 1)[1]](str(path), crs)
    return VectorSink(path, crs, fmt, geometry_type)


def write_vector(gdf: gpd.GeoDataFrame, path: str | os.PathLike, fmt: str | None = None) -> None:
    """Write polygons in the format of ``fmt`` (default: from ``path``'s extension).

    GeoJSON is reprojected to EPSG:4326 and written with GDAL's ``RFC7946=YES``
    (lon/lat order, right-hand rule, 7 decimals). Other formats keep the
    GeoDataFrame's CRS. (One batch through :class:`VectorSink`.)

    Args:
        gdf: Polygons with a CRS and the columns of
            :func:`geounet.polygons.vectorize`.
        path: File to write (overwritten).
        fmt: A value of :data:`VECTOR_DRIVERS`.

    Raises:
        UnsupportedFormatError: for an unknown extension.
    """
    types = set(gdf.geom_type.dropna())
    sink = open_sink(path, gdf.crs, fmt, "Polygon" if types <= {"Polygon"} else "Unknown")
    try:
        sink.write(gdf)
    except BaseException:
        sink.abort()
        raise
    sink.close()


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
        colormap: Optional ``{value: "#rrggbb"}`` colour table of a one-band
            uint8 raster (GIS programs show a class raster in these colours).
        tags: Optional dataset metadata items (``{"KEY": "text"}``).
    """

    def __init__(self, path, profile: dict, use_mask: bool = False, band_descriptions=None,
                 colormap: dict[int, str] | None = None, tags: dict[str, str] | None = None):
        self.use_mask = use_mask
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
            self.ds = rasterio.open(path, "w", **profile)
        if band_descriptions:
            for i, d in enumerate(band_descriptions, start=1):
                self.ds.set_band_description(i, d)
        if tags:
            self.ds.update_tags(**tags)
        if colormap:
            self.ds.write_colormap(1, {int(k): _rgba(v) for k, v in colormap.items()})
        elif profile["count"] == 1:
            self.ds.colorinterp = [ColorInterp.gray]

    def write(self, row_off: int, data: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Write ``(count, n_rows, width)`` values starting at ``row_off``."""
        window = Window(0, row_off, data.shape[2], data.shape[1])
        self.ds.write(data, window=window)
        if self.use_mask and valid is not None:
            with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
                self.ds.write_mask(np.where(valid, 255, 0).astype(np.uint8), window=window)

    def close(self, overviews: bool = True, resampling: str = "nearest") -> None:
        """Build internal overviews (factors 2, 4, 8... down to ~256 px) and close.

        Args:
            overviews: Build overviews (GDAL, block by block).
            resampling: ``nearest`` for class rasters, ``average`` for probabilities.
        """
        if self.ds.closed:
            return
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
            if overviews:
                from rasterio.enums import Resampling

                factors = []
                f = 2
                while max(self.ds.width, self.ds.height) / f >= 128:
                    factors.append(f)
                    f *= 2
                if factors:
                    self.ds.build_overviews(factors, Resampling[resampling])
                    self.ds.update_tags(ns="rio_overview", resampling=resampling)
            self.ds.close()

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _rgba(color: str) -> tuple[int, int, int, int]:
    """``"#rrggbb"`` -> ``(r, g, b, 255)``."""
    c = color.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16), 255


class VectorSink:
    """Streams batches of polygons into one vector file as they are finished.

    OGR formats (GeoJSON, GeoPackage, FlatGeobuf) are written by
    ``pyogrio.write_arrow`` on a background thread, fed through a bounded queue
    as an Arrow record-batch stream; GeoParquet by ``pyarrow.parquet.ParquetWriter``
    with the GeoParquet 1.0 ``geo`` metadata. Nothing but the batches in flight
    is held in memory. The attribute columns (and their Arrow types) are those
    of the first batch; later batches must have the same columns.

    Args:
        path: File to write (a temporary path; the caller renames it).
        crs: CRS of the batches (GeoJSON is reprojected to EPSG:4326).
        fmt: Format name (:data:`VECTOR_DRIVERS` value); default from ``path``.
        geometry_type: ``"Polygon"``, or ``"Unknown"`` when MultiPolygons may occur.

    Raises:
        UnsupportedFormatError: for an unknown extension.
    """

    def __init__(self, path, crs, fmt: str | None = None, geometry_type: str = "Polygon"):
        import queue

        import pyarrow as pa
        from pyproj import CRS

        self.path = str(path)
        self.fmt = fmt or vector_format(path)
        self.crs = CRS.from_user_input(crs)
        self.out_crs = CRS.from_epsg(4326) if self.fmt == "GeoJSON" else self.crs
        self.geometry_type = geometry_type
        self.count = 0
        self._pa = pa
        self.schema = None
        self._error: BaseException | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=8)
        self._thread = None
        self._pq = None

    def _start(self, columns) -> None:
        """Fix the schema from the first batch's columns and open the writer."""
        import threading

        pa = self._pa
        fields = [pa.field(n, t) for n, t in columns] + [pa.field("geometry", pa.binary())]
        self.schema = pa.schema(fields)
        if self.fmt == "GeoParquet":
            import pyarrow.parquet as pq

            geo = {"version": "1.0.0", "primary_column": "geometry", "columns": {"geometry": {
                "encoding": "WKB", "geometry_types": [] if self.geometry_type == "Unknown"
                else [self.geometry_type], "crs": self.out_crs.to_json_dict()}}}
            self.schema = self.schema.with_metadata({b"geo": json.dumps(geo).encode()})
            self._pq = pq.ParquetWriter(self.path, self.schema)
        else:
            self._thread = threading.Thread(target=self._run, name="geounet-vector-writer",
                                            daemon=True)
            self._thread.start()

    def _columns_of(self, gdf) -> list:
        pa = self._pa
        attrs = gdf.drop(columns=gdf.geometry.name)
        schema = pa.Schema.from_pandas(attrs, preserve_index=False)
        def plain(t):  # GDAL's Arrow writer wants plain strings; empty columns are null
            if pa.types.is_null(t) or pa.types.is_large_string(t) or str(t) == "string_view":
                return pa.string()
            return t

        return [(f.name, plain(f.type)) for f in schema]

    def _batch(self, gdf):
        import shapely

        pa = self._pa
        if self.out_crs != self.crs:
            gdf = gdf.to_crs(self.out_crs)
        cols = [pa.array(gdf[f.name].to_numpy(), type=f.type) for f in self.schema
                if f.name != "geometry"]
        cols.append(pa.array(shapely.to_wkb(gdf.geometry.to_numpy()), type=pa.binary()))
        return pa.record_batch(cols, schema=self.schema)

    def _run(self) -> None:
        import pyogrio

        def batches():
            while True:
                item = self._queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item

        opts = {"layer_options": {"RFC7946": "YES"}} if self.fmt == "GeoJSON" else {}
        try:
            reader = self._pa.RecordBatchReader.from_batches(self.schema, batches())
            pyogrio.write_arrow(
                reader, self.path, driver=self.fmt, layer="footprints",
                geometry_name="geometry", geometry_type=self.geometry_type,
                crs=self.out_crs.to_wkt(), **opts,
            )
        except BaseException as exc:  # noqa: BLE001 - handed to the caller in close()
            self._error = exc
            while True:  # unblock a producer waiting on a full queue
                try:
                    self._queue.get_nowait()
                except Exception:  # noqa: BLE001
                    break

    def write(self, gdf) -> None:
        """Queue a GeoDataFrame (the columns of the first batch, plus geometry)."""
        if self._error is not None:
            raise self._error
        if gdf.empty:
            return
        if self.schema is None:
            self._start(self._columns_of(gdf))
        batch = self._batch(gdf)
        self.count += len(gdf)
        if self._thread is None:
            self._pq.write_batch(batch)
        else:
            self._queue.put(batch)

    def close(self) -> None:
        """Finish the file (empty, with geounet's columns, if nothing was written);
        re-raise any error of the writer thread."""
        if self.schema is None:
            from geounet.polygons import empty_frame

            self._start(self._columns_of(empty_frame(self.crs)))
        if self._thread is None:
            self._pq.close()
            return
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Stop writing after an error elsewhere (the file is left incomplete)."""
        if self.schema is None:
            return
        if self._thread is None:
            self._pq.close()
            return
        self._queue.put(RuntimeError("aborted"))
        self._thread.join()


def to_cog(src, dst, resampling: str = "nearest") -> None:
    """Copy a GeoTIFF to a Cloud Optimized GeoTIFF with GDAL's COG driver.

    Args:
        src: Source GeoTIFF.
        dst: Destination path (overwritten).
        resampling: Overview resampling (``nearest`` for classes, ``average``
            for probabilities).
    """
    from rasterio.shutil import copy

    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        copy(str(src), str(dst), driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=512,
             OVERVIEW_RESAMPLING=resampling.upper(), BIGTIFF="IF_SAFER")
